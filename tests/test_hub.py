"""The Hugging Face Hub, offline: repos are laid out by hand in the Hub's own cache layout
(models--OWNER--REPO/snapshots/<commit>/..., refs/<branch>) under a temporary cache, with HF_HUB_OFFLINE=1, and read
by the real huggingface_hub.snapshot_download. Nothing here touches the network."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("huggingface_hub")

import latentloop
from latentloop.cli import main
from latentloop.data import sudoku_grid
from latentloop.data.format import read_split
from latentloop.errors import CheckpointError
from latentloop.hub import HubPath, parse
from latentloop.models.official_weights import load_official_state_dict
from test_models_official_config import HRM_CONFIG
from test_models_official_weights import hrm_config, official_hrm_state_dict

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_in_cache(cache: Path, repo_id: str, files: dict[str, Path | str | bytes], commit: str = COMMIT,
                 ref: str = "main") -> Path:
    """A repo as snapshot_download leaves it in the cache: files under snapshots/<commit>/, refs/<ref> naming it."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    for name, content in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copytree(content, target) if content.is_dir() else shutil.copyfile(content, target)
        else:
            target.write_bytes(content.encode() if isinstance(content, str) else content)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private, offline Hub cache (the constants are read when huggingface_hub is imported, so set them too)."""
    from huggingface_hub import constants

    folder = tmp_path / "hf" / "hub"
    folder.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real (tiny, two-epoch) run on 4x4 Sudoku: what `latentloop train` writes, which push publishes."""
    root = tmp_path_factory.mktemp("hub")
    data, run = root / "sudoku4", root / "run"
    assert main(["train", "cpu-sudoku6", f"data_path={data}", f"out_dir={run}", "data.size=4", "data.num_train=64",
                 "data.num_test=16", "hidden_size=16", "num_heads=2", "layers=1", "puzzle_emb_ndim=16",
                 "global_batch_size=32", "epochs=2", "eval_interval=2", "--no-progress"]) == 0
    return data, run


def a_puzzle(data: Path) -> str:
    split, _ = read_split(data / "test")
    return sudoku_grid.to_string(sudoku_grid.from_tokens(split.inputs[0], sudoku_grid.shape_for_size(4)))


def test_hub_paths_parse_and_bad_ones_say_how_to_write_them():
    assert parse("hf:me/tiny") == HubPath("me/tiny", None, "")
    assert parse("hf:me/tiny@v1/runs/a/") == HubPath("me/tiny", "v1", "runs/a")
    assert str(parse("hf:me/tiny@v1/runs/a")) == "hf:me/tiny@v1/runs/a"
    for bad in ("hf:tiny", "hf:me/tiny@", "hf:/tiny", "hf:me/tiny/../x"):
        with pytest.raises(CheckpointError, match="Hub path|inside the repo"):
            parse(bad)


def test_push_dry_run_writes_every_file_and_the_card_has_the_numbers(trained, tmp_path, capsys):
    data, run = trained
    out = tmp_path / "push"
    assert main(["push", str(run), "me/tiny-sudoku", "--dry-run", str(out)]) == 0
    assert "nothing uploaded" in capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "README.md", "config.json", "curves.png", "dataset/identifiers.json", "dataset/test/dataset.json",
        "dataset/train/dataset.json", "metrics.jsonl", "model.safetensors", "train_config.json"]
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text()
    weights, published = load_file(str(latest / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert weights.keys() == published.keys() and all(torch.equal(weights[k], published[k]) for k in weights)
    assert json.loads((out / "config.json").read_text()) == json.loads((latest / "config.json").read_text())
    assert (out / "metrics.jsonl").read_bytes() == (run / "metrics.jsonl").read_bytes()
    assert (out / "dataset/test/dataset.json").read_bytes() == (data / "test/dataset.json").read_bytes()
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    card = (out / "README.md").read_text()
    model, cfg = latentloop.load_checkpoint(run)
    assert f"parameters: {latentloop.count_parameters(model):,}" in card and "TRM-MLP" in card and "sudoku" in card
    assert f"exact accuracy {final['eval/exact_accuracy']:.2%}" in card
    assert "| exact accuracy | " + " | ".join(f"{a:.2%}" for a in final["eval/per_step_exact_accuracy"]) in card
    assert "latentloop train cpu-sudoku6 model.hidden_size=16" in card and "data.size=4" in card
    assert "latentloop data sudoku --size 4" in card and "latentloop eval hf:me/tiny-sudoku" in card
    assert "![training curves](curves.png)" in card
    for name in ("latest", latest.name):   # a pointer or a checkpoint folder under checkpoints/
        again = tmp_path / f"push-{name}"
        assert main(["push", str(run), "me/tiny-sudoku", "--checkpoint", name, "--dry-run", str(again)]) == 0
        assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
        assert (again / "README.md").read_text() == card
    assert main(["push", str(run), "me/tiny-sudoku", "--dry-run", str(out)]) == 2   # would mix two runs' files
    assert "is not empty" in capsys.readouterr().err


def test_our_layout_loads_evaluates_and_solves_from_the_hub(trained, cache, tmp_path, capsys):
    data, run = trained
    main(["push", str(run), "me/tiny-sudoku", "--dry-run", str(tmp_path / "push")])
    put_in_cache(cache, "me/tiny-sudoku", {name.name: name for name in (tmp_path / "push").iterdir()})
    model, cfg = latentloop.load_checkpoint("hf:me/tiny-sudoku")
    reference, _ = latentloop.load_checkpoint(run)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert main(["eval", "hf:me/tiny-sudoku", "--data", str(data), "--max-examples", "8"]) == 0
    assert "hf:me/tiny-sudoku on" in capsys.readouterr().out
    assert main(["solve", a_puzzle(data), "--checkpoint", "hf:me/tiny-sudoku"]) == 0
    assert "supervision step(s)" in capsys.readouterr().out
    assert main(["info", "hf:me/tiny-sudoku"]) == 0
    assert f"{latentloop.count_parameters(model):,}" in capsys.readouterr().out
    # a run folder in a subfolder, at a tag
    put_in_cache(cache, "me/runs", {"sudoku/run": run}, commit="f" * 40, ref="v1")
    assert latentloop.load_checkpoint("hf:me/runs@v1/sudoku/run")[1].model.seq_len == 16
    assert main(["export", "hf:me/runs@v1/sudoku/run", str(tmp_path / "exported")]) == 0


def test_the_official_layout_loads_with_sizes_from_the_dataset(trained, cache, tmp_path, capsys):
    data, _ = trained   # 4x4 Sudoku: vocabulary 6, length 16 (the official RoPE weights do not store it)
    state = official_hrm_state_dict()
    weights = tmp_path / "checkpoint"
    torch.save(state, weights)
    put_in_cache(cache, "sapientinc/HRM-checkpoint-tiny", {"checkpoint": weights, "all_config.yaml": HRM_CONFIG,
                                                           "hrm_act_v1.py": "# model code, never run\n"})
    with pytest.raises(CheckpointError, match="pass the dataset"):
        latentloop.load_checkpoint("hf:sapientinc/HRM-checkpoint-tiny")
    model, cfg = latentloop.load_checkpoint("hf:sapientinc/HRM-checkpoint-tiny", data=data)
    assert (cfg.model.arch, cfg.model.vocab_size, cfg.model.seq_len) == ("hrm", 6, 16)
    reference = latentloop.build_model(dataclasses.replace(hrm_config(), seq_len=16))
    load_official_state_dict(reference, state)
    mine, theirs = model.state_dict(), reference.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert main(["eval", "hf:sapientinc/HRM-checkpoint-tiny", "--data", str(data), "--max-examples", "8"]) == 0
    assert "exact accuracy" in capsys.readouterr().out
    assert main(["solve", a_puzzle(data), "--checkpoint", "hf:sapientinc/HRM-checkpoint-tiny", "--data",
                 str(data)]) == 0
    assert "supervision step(s)" in capsys.readouterr().out
    # pretrain.py's own names (step_N), in a subfolder: the newest step is taken
    torch.save(state, tmp_path / "step_5")
    put_in_cache(cache, "me/official", {"run/all_config.yaml": HRM_CONFIG, "run/step_5": tmp_path / "step_5",
                                        "run/step_40": weights})
    assert latentloop.load_checkpoint("hf:me/official/run", data=data)[1].name == "step_40"
    assert latentloop.load_checkpoint("hf:me/official/run/step_5", data=data)[1].name == "step_5"


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_inputs_give_one_line_and_exit_2(trained, cache, tmp_path, capsys):
    data, run = trained
    args = ["--data", str(data), "--max-examples", "4"]
    assert main(["eval", "hf:me/not-cached", *args]) == 2
    assert "not in the Hugging Face cache" in error_line(capsys)
    put_in_cache(cache, "me/ours", {"run": run})
    assert main(["eval", "hf:me/ours@v9/run", *args]) == 2
    assert "hf:me/ours@v9/run is not in the Hugging Face cache" in error_line(capsys)
    put_in_cache(cache, "me/notes", {"README.md": "# only words\n"})
    assert main(["eval", "hf:me/notes", *args]) == 2
    assert "holds neither a latentloop checkpoint" in error_line(capsys)
    assert main(["eval", "hf:me/notes/missing", *args]) == 2
    assert "has no 'missing'" in error_line(capsys)
    assert main(["eval", "hf:me", *args]) == 2
    assert "is not a Hub path" in error_line(capsys)
    torch.save(official_hrm_state_dict(vocab=7), tmp_path / "checkpoint")
    put_in_cache(cache, "me/official-7", {"checkpoint": tmp_path / "checkpoint", "all_config.yaml": HRM_CONFIG})
    assert main(["eval", "hf:me/official-7", *args]) == 2
    assert "wrong vocabulary" in error_line(capsys)
    other = tmp_path / "other"   # our layout, evaluated on a dataset of another vocabulary
    from conftest import write_toy_dataset
    write_toy_dataset(other, num_train=8, num_test=8, seq_len=16, vocab=9)
    assert main(["eval", "hf:me/ours/run", "--data", str(other)]) == 2
    assert "vocab_size 9" in error_line(capsys)
    put_in_cache(cache, "me/two", {"all_config.yaml": HRM_CONFIG, "a.pt": b"x", "b.pt": b"y"})
    assert main(["eval", "hf:me/two", *args]) == 2
    assert "several files that could be the official weights (a.pt, b.pt): name one, e.g. hf:me/two/a.pt" in \
        error_line(capsys)
    put_in_cache(cache, "me/none", {"all_config.yaml": HRM_CONFIG, "model.py": ""})
    assert main(["eval", "hf:me/none", *args]) == 2
    assert "has all_config.yaml but no state-dict file" in error_line(capsys)
    assert main(["push", str(run), "not a repo", "--dry-run", str(tmp_path / "p")]) == 2
    assert "is not a Hub repo id" in error_line(capsys)


def test_without_huggingface_hub_the_error_names_the_extra(trained, monkeypatch, capsys):
    _, run = trained
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)   # what `import` meets when it is not installed
    assert main(["eval", "hf:me/tiny-sudoku"]) == 2
    assert "pip install 'latentloop[hub]'" in error_line(capsys)
    assert main(["push", str(run), "me/tiny-sudoku"]) == 2
    assert "pip install 'latentloop[hub]'" in error_line(capsys)


def test_push_uploads_the_folder_it_builds(trained, monkeypatch, capsys):
    import huggingface_hub

    calls = []

    class FakeApi:   # stands in for the Hub's HTTP API; records what push asks of it
        def __init__(self, **kwargs):
            calls.append(("api", kwargs))

        def create_repo(self, repo_id, exist_ok):
            calls.append(("create", repo_id, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message):
            files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
            calls.append(("upload", repo_id, files, commit_message))
            return type("CommitInfo", (), {"oid": "c0ffee" * 7})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    _, run = trained
    assert main(["push", str(run), "me/tiny-sudoku"]) == 0
    assert "uploaded" in capsys.readouterr().out
    assert calls[1] == ("create", "me/tiny-sudoku", True)
    _, repo, files, message = calls[2]
    assert repo == "me/tiny-sudoku" and "model.safetensors" in files and "README.md" in files and run.name in message
