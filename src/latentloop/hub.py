"""The Hugging Face Hub: load a checkpoint from `hf:OWNER/REPO[@REVISION][/SUBFOLDER]`, publish a run to a repo.

Downloads go through `huggingface_hub.snapshot_download`, so the library's cache (`HF_HOME`, `HF_HUB_CACHE`), tokens
and offline mode (`HF_HUB_OFFLINE=1`: the cache only) behave as everywhere else. A repo may hold our checkpoint layout
(model.safetensors + config.json, what `latentloop push` uploads) or the official HRM/TRM one (a state-dict file
next to its all_config.yaml, as in `sapientinc/HRM-checkpoint-sudoku-extreme`); training/checkpoint.py loads either.
`huggingface_hub` is an optional dependency (`latentloop[hub]`), imported only here and only when used.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentloop.errors import CheckpointError, ConfigError, LatentloopError

PREFIX = "hf:"
INSTALL = "pip install 'latentloop[hub]'"
OFFICIAL_CONFIG = "all_config.yaml"            # models/official_config.py CONFIG_FILE
NOT_WEIGHTS = (".yaml", ".yml", ".py", ".md", ".json", ".jsonl", ".txt", ".png", ".gitattributes")
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class HubPath:
    repo_id: str
    revision: str | None
    subfolder: str

    def __str__(self) -> str:
        return (PREFIX + self.repo_id + (f"@{self.revision}" if self.revision else "")
                + (f"/{self.subfolder}" if self.subfolder else ""))


def is_hub_path(path: Any) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def parse(path: str) -> HubPath:
    """`hf:OWNER/REPO[@REVISION][/SUBFOLDER]` (a revision is a branch, tag or commit without `/`)."""
    parts = path[len(PREFIX):].split("/")
    repo, _, revision = "/".join(parts[:2]).partition("@")
    if len(parts) < 2 or not _REPO.fullmatch(repo) or "@" in revision or (_ and not revision):
        raise CheckpointError(f"{path!r} is not a Hub path: write hf:OWNER/REPO[@REVISION][/SUBFOLDER]")
    subfolder = "/".join(p for p in parts[2:] if p)
    if ".." in subfolder.split("/"):
        raise CheckpointError(f"{path!r}: the subfolder must lie inside the repo")
    return HubPath(repo, revision or None, subfolder)


def _huggingface_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ConfigError(f"the Hugging Face Hub needs the huggingface_hub package: {INSTALL}") from None
    return huggingface_hub


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def download(path: str) -> Path:
    """The local snapshot of an `hf:` path (downloaded, or taken from the cache): its subfolder or file."""
    where = parse(path)
    hub = _huggingface_hub()
    from huggingface_hub import errors

    patterns = None
    if where.subfolder:  # only what the subfolder needs: its files, or a file and the all_config.yaml beside it
        parent = where.subfolder.rpartition("/")[0]
        patterns = [where.subfolder, f"{where.subfolder}/*", f"{parent}/{OFFICIAL_CONFIG}".lstrip("/")]
    try:
        root = hub.snapshot_download(where.repo_id, revision=where.revision, allow_patterns=patterns,
                                     library_name="latentloop")
    except errors.LocalEntryNotFoundError:
        raise CheckpointError(f"{where} is not in the Hugging Face cache and cannot be downloaded (offline, "
                              f"HF_HUB_OFFLINE=1, or no network): check the repo and revision, or download it "
                              f"once online") from None
    except errors.RepositoryNotFoundError:
        raise CheckpointError(f"{where}: no model repo {where.repo_id!r} on the Hub (or it is private: log in "
                              f"with `hf auth login`)") from None
    except errors.RevisionNotFoundError:
        raise CheckpointError(f"{where}: repo {where.repo_id!r} has no revision {where.revision!r}") from None
    except (errors.HfHubHTTPError, errors.HFValidationError, OSError, ValueError) as exc:
        raise CheckpointError(f"{where}: {_first_line(exc)}") from None
    local = Path(root) / where.subfolder
    if not local.exists():
        raise CheckpointError(f"{where}: revision {where.revision or 'main'} of {where.repo_id} has no "
                              f"{where.subfolder!r}")
    return local


def official_weights_file(folder: Path, source: str) -> Path:
    """The state-dict file of a folder in the official layout (all_config.yaml beside exactly one weights file:
    `checkpoint` in the HRM repos, `step_N` as pretrain.py names them; the newest step_N when there are several)."""
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                        and not p.name.endswith(NOT_WEIGHTS))
    steps = [p for p in candidates if re.fullmatch(r"step_\d+", p.name)]
    if steps:
        return max(steps, key=lambda p: int(p.name[len("step_"):]))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CheckpointError(f"{source} has {OFFICIAL_CONFIG} but no state-dict file beside it")
    raise CheckpointError(f"{source} holds several files that could be the official weights "
                          f"({', '.join(p.name for p in candidates[:4])}): name one, e.g. {source}/{candidates[0].name}")


def local_checkpoint(path: str | Path, weights: str, latest: str) -> Path:
    """A local path for any checkpoint path: an `hf:` one becomes its snapshot; a snapshot folder in the official
    layout becomes its state-dict file. One holding neither layout is refused here, naming what it holds.
    `weights` and `latest` are training/checkpoint.py's file names (passed in: that module imports this one)."""
    if not is_hub_path(path):
        return Path(path)
    local = download(str(path))
    if local.is_file():
        return local
    ours = any((root / name).exists() for root in (local, local / "checkpoints") for name in (weights, latest))
    if ours:
        return local
    if (local / OFFICIAL_CONFIG).exists():
        return official_weights_file(local, str(path))
    found = ", ".join(sorted(p.name for p in local.iterdir())[:5]) or "nothing"
    raise CheckpointError(f"{path} holds neither a latentloop checkpoint ({weights} + config.json) nor an official "
                          f"one (a state dict + {OFFICIAL_CONFIG}); it has {found}")


# -------------------------------------------------------------------------------------------------------- publish

def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


# Sizes the dataset sets and machine-local settings: a command that repeats the run leaves them out (and the
# task.* keys, which training records).
_NOT_IN_COMMAND = ("model.vocab_size", "model.seq_len", "model.num_puzzle_identifiers", "train.out_dir",
                   "train.device", "train.threads", "train.logger")


def training_command(cfg) -> str:
    """`latentloop train PRESET key=value ...` for the settings that differ from the preset the run was made from;
    for a run from a config file, the config.json shipped with it."""
    from latentloop.config import load_preset

    try:
        preset = _flat(load_preset(cfg.name).to_dict())
    except ConfigError:
        return "latentloop train train_config.json"
    mine = _flat(cfg.to_dict())

    def text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    overrides = [f"{k}={text(v)}" for k, v in mine.items() if k not in _NOT_IN_COMMAND and preset.get(k) != v
                 and not k.startswith("task.") and isinstance(v, (str, int, float, bool))]
    return " ".join(["latentloop train", cfg.name, *overrides])


def _eval_at(run_dir: Path, step: int) -> dict[str, Any]:
    """The run's held-out evaluation record of this step in metrics.jsonl (it has the per-step accuracies that the
    checkpoint's own config.json lacks); empty when there is none."""
    found: dict[str, Any] = {}
    path = run_dir / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "eval/exact_accuracy" in record and record.get("step") == step:
            found = record
    return found


def model_card(repo_id: str, cfg, step: int, num_params: int, task: str, data: dict[str, Any],
               evaluation: dict[str, Any], has_curves: bool) -> str:
    """The README.md of a pushed run: what it solves, the model, how it was trained, what it scores, how to load it."""
    from latentloop.models import describe
    from latentloop.tasks import task_class

    m, t = cfg.model, cfg.train
    lines = ["---", "library_name: latentloop", "tags:", "- recursive-reasoning", f"- {m.arch}", "---", "",
             f"# {repo_id.split('/')[-1]}", "",
             f"A {describe(m)} model for {task}, trained with deep supervision by latentloop.", "",
             "## Model", "",
             f"- architecture: {describe(m)} (`arch={m.arch}`), hidden size {m.hidden_size}, layers {m.layers}"
             + (f" (H level: {m.H_layers})" if m.arch == "hrm" else "")
             + f", T={m.T}, n={m.n}, N_sup={m.N_sup} supervision steps",
             f"- parameters: {num_params:,} (dense; the puzzle-embedding table, {m.num_puzzle_identifiers:,} "
             f"x {m.puzzle_emb_ndim}, is a buffer)",
             f"- vocabulary {m.vocab_size}, sequence length {m.seq_len}, forward dtype {m.forward_dtype}", "",
             "## Training", "",
             f"- dataset: `{t.data_path}` ({data.get('train_puzzles', '?')} training puzzles; its dataset.json "
             f"and identifiers are in `dataset/`)",
             f"- {t.epochs:,} epochs, global batch {t.global_batch_size}, lr {t.lr:g} (warm-up {t.lr_warmup_steps}), "
             f"weight decay {t.weight_decay:g}, loss {t.loss}" + (f", EMA {t.ema_rate:g}" if t.ema else "")
             + f", seed {t.seed}; {step:,} optimizer steps",
             "- command:", "", "```", training_command(cfg), "```", "", "## Held-out results", ""]
    if evaluation:
        lines.append(f"At step {evaluation.get('step', step):,}: exact accuracy "
                     f"{evaluation['eval/exact_accuracy']:.2%}, cell accuracy {evaluation.get('eval/accuracy', 0):.2%}"
                     f" on the test split.")
        per_step = evaluation.get("eval/per_step_exact_accuracy") or []
        if per_step:
            lines += ["", "| supervision step | " + " | ".join(str(i) for i in range(1, len(per_step) + 1)) + " |",
                      "|---|" + "---|" * len(per_step),
                      "| exact accuracy | " + " | ".join(f"{a:.2%}" for a in per_step) + " |"]
    else:
        lines.append("The run has no held-out evaluation in its metrics.jsonl.")
    if has_curves:
        lines += ["", "![training curves](curves.png)"]
    build = (task_class(cfg.data.task).data_command(Path("DATASET"), cfg.data) if cfg.data.task
             else f"# DATASET: a build of the same task, vocabulary {m.vocab_size}, length {m.seq_len}")
    lines += ["", "## Use", "", "```", "pip install 'latentloop[hub]'", build,
              f"latentloop eval hf:{repo_id} --data DATASET",
              f"latentloop solve PUZZLE --checkpoint hf:{repo_id}", "```", "", "```python",
              "import latentloop as ll",
              f'model, cfg = ll.load_checkpoint("hf:{repo_id}")', "```", "",
              "Files: `model.safetensors` (evaluation weights: the EMA ones when EMA was on), `config.json` (the "
              "run config, step and metrics), `train_config.json` (the config alone), `metrics.jsonl`, "
              "`dataset/` (the dataset's metadata and identifiers).", ""]
    return "\n".join(lines)


def build_push_folder(run_dir: str | Path, repo_id: str, out: str | Path, checkpoint: str | None = None) -> Path:
    """Write everything `push` uploads into `out`: model.safetensors, config.json, train_config.json, dataset/,
    metrics.jsonl, curves.png (if the run has one) and a README.md model card."""
    from latentloop.data.format import IDENTIFIERS_FILE, METADATA_FILE
    from latentloop.models import count_parameters
    from latentloop.paths import check_output_dir, ensure_output_dir
    from latentloop.tasks import task_of_config
    from latentloop.training.checkpoint import CONFIG, WEIGHTS, load_checkpoint, resolve_checkpoint

    if not _REPO.fullmatch(repo_id):
        raise ConfigError(f"{repo_id!r} is not a Hub repo id: write OWNER/REPO")
    run_dir = Path(run_dir)
    chosen = run_dir / "checkpoints" / checkpoint if checkpoint else run_dir
    if chosen.is_file():   # the `best` or `latest` pointer
        chosen = chosen.parent / chosen.read_text().strip()
    source = resolve_checkpoint(chosen)
    check_output_dir(out)
    if Path(out).is_dir() and any(Path(out).iterdir()):   # files of an earlier run would be uploaded with it
        raise ConfigError(f"{out} is not empty: push writes its folder into an empty or new one")
    model, cfg = load_checkpoint(source)   # reads and checks the weights before anything is written
    saved = json.loads((source / CONFIG).read_text())
    folder = ensure_output_dir(out)
    shutil.copyfile(source / WEIGHTS, folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(saved, indent=2))
    (folder / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    data, info = Path(cfg.train.data_path), {}
    for name in ("train", "test"):
        if (data / name / METADATA_FILE).exists():
            (folder / "dataset" / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data / name / METADATA_FILE, folder / "dataset" / name / METADATA_FILE)
            info[f"{name}_puzzles"] = f"{json.loads((data / name / METADATA_FILE).read_text())['total_puzzles']:,}"
    if (data / IDENTIFIERS_FILE).exists():
        (folder / "dataset").mkdir(exist_ok=True)
        shutil.copyfile(data / IDENTIFIERS_FILE, folder / "dataset" / IDENTIFIERS_FILE)
    for name in ("metrics.jsonl", "curves.png"):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, folder / name)
    try:
        task = task_of_config(cfg).name
    except LatentloopError:   # plain token data of no known task
        task = "token puzzles"
    step = int(saved.get("step", 0))
    evaluation = _eval_at(run_dir, step) or {f"eval/{k}": v for k, v in saved.get("metrics", {}).items()}
    card = model_card(repo_id, cfg, step, count_parameters(model), task, info, evaluation,
                      (folder / "curves.png").exists())
    (folder / "README.md").write_text(card)
    return folder


def push(run_dir: str | Path, repo_id: str, dry_run: str | Path | None = None,
         checkpoint: str | None = None) -> str:
    """Build the folder (in `dry_run`, or a temporary one) and, unless `dry_run`, upload it with
    `HfApi.upload_folder` (creating the repo if needed). Returns a line saying what was done."""
    import tempfile

    if dry_run:
        folder = build_push_folder(run_dir, repo_id, dry_run, checkpoint)
        return f"wrote {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))}); nothing uploaded"
    hub = _huggingface_hub()
    from huggingface_hub import errors

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_push_folder(run_dir, repo_id, Path(tmp) / "push", checkpoint)
        try:
            api = hub.HfApi(library_name="latentloop")
            api.create_repo(repo_id, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=folder,
                                       commit_message=f"latentloop push {Path(run_dir).name}")
        except (errors.HfHubHTTPError, errors.HFValidationError, errors.LocalTokenNotFoundError, OSError) as exc:
            raise CheckpointError(f"could not upload to {repo_id}: {_first_line(exc)}") from None
    return f"uploaded {Path(run_dir)} to https://huggingface.co/{repo_id} ({commit.oid[:8]}); load it with " \
           f"latentloop eval hf:{repo_id}"
