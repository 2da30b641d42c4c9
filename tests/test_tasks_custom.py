"""A task of your own, end to end through the command line (docs/custom-task.md): the walkthrough's my_task.py and
reverse.toml (tests/fixtures/custom_task, the same text as the page) build data, train, evaluate, solve, view and
trace; and every way a task of your own can go wrong ends in one line on stderr and exit code 2."""

from __future__ import annotations

import json
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

import latentloop.tasks as tasks
from latentloop.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "custom_task"
DOC = Path(__file__).resolve().parents[1] / "docs" / "custom-task.md"
# A tiny model: the pipeline is under test here, not how well it learns (the walkthrough's config learns).
TINY = ["hidden_size=16", "num_heads=2", "layers=1", "n=1", "puzzle_emb_ndim=16", "global_batch_size=32",
        "epochs=2", "eval_interval=1", "lr_warmup_steps=1"]


def forget_user_tasks(registered: set[str], modules: set[str]) -> None:
    """Unregister the tasks a test's modules added (built-in ones stay: their modules are imported once)."""
    for name, cls in list(tasks._registry.items()):
        if name not in registered and not cls.__module__.startswith("latentloop."):
            del tasks._registry[name]
    tasks._loaded_modules.clear()
    for name in set(sys.modules) - modules:
        if name.startswith(("latentloop_user_task_", "my_reverse_package")):
            del sys.modules[name]


@pytest.fixture
def clean_registry():
    registered, modules = set(tasks._registry), set(sys.modules)
    yield
    forget_user_tasks(registered, modules)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The walkthrough's folder after its first steps: my_task.py, reverse.toml, data/reverse and a trained run."""
    registered, modules = set(tasks._registry), set(sys.modules)
    root = tmp_path_factory.mktemp("my-project")
    for name in ("my_task.py", "reverse.toml"):
        shutil.copy(FIXTURE / name, root / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["--task-module", "my_task.py", "data", "reverse", "--out", "data/reverse", "--num-train", "96",
                     "--num-test", "16"]) == 0
        assert main(["train", "reverse.toml", *TINY, "--no-progress"]) == 0
    yield root
    forget_user_tasks(registered, modules)


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- the walkthrough -------------------------------------------------------------------------------------------------

def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_shows_the_fixture_files():
    """docs/custom-task.md shows my_task.py and reverse.toml exactly as the tests run them."""
    assert (FIXTURE / "my_task.py").read_text() in code_blocks("python")
    assert (FIXTURE / "reverse.toml").read_text() in code_blocks("toml")


def test_data_names_the_task(project):
    for split in ("train", "test"):
        meta = json.loads((project / "data" / "reverse" / split / "dataset.json").read_text())
        assert meta["task"] == "reverse" and meta["task_params"] == {"length": 8}
        assert (meta["vocab_size"], meta["seq_len"]) == (12, 8)


def test_training_records_the_task_and_its_module(project):
    assert (project / "runs" / "reverse" / "metrics.jsonl").exists()
    saved = json.loads(next((project / "runs" / "reverse" / "checkpoints").glob("step_*/config.json")).read_text())
    config = saved["config"]
    assert config["task"] == {"name": "reverse", "params": {"length": 8}}
    assert config["data"]["task_module"] == str((project / "my_task.py").resolve())  # found from any folder


def test_solve_from_another_folder_finds_the_recorded_module(project, tmp_path, monkeypatch, capsys, clean_registry):
    monkeypatch.chdir(tmp_path)
    tasks._registry.pop("reverse", None)   # a fresh process: only the checkpoint's record names the module
    tasks._loaded_modules.clear()
    code, out, err = run(["solve", "1 2 3", "--checkpoint", str(project / "runs" / "reverse")], capsys)
    assert code == 0, err


def test_eval_solve_view_and_trace(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    code, out, err = run(["eval", "runs/reverse"], capsys)
    assert code == 0, err
    assert "(reverse, 16 puzzles" in out and "exact accuracy" in out
    code, out, err = run(["solve", "1 2 3", "--checkpoint", "runs/reverse"], capsys)
    assert code == 0, err
    answer, verdict = out.strip().splitlines()[-2:]
    assert re.fullmatch(r"[0-9? ]*", answer) and "supervision step" in verdict
    assert verdict.startswith(("right: the list reversed", "NOT right"))
    code, out, err = run(["solve", "1 2 3 4 5", "--checkpoint", "runs/reverse", "--trace", "trace.png",
                          "--out", "answers.txt"], capsys)
    assert code == 0, err
    assert (project / "trace.png").stat().st_size > 1000 and (project / "answers.txt").read_text().count("\n") == 1
    (project / "lists.txt").write_text("# one list a line\n1 2 3\n4 5\n")
    code, out, err = run(["solve", "lists.txt", "--checkpoint", "runs/reverse"], capsys)
    assert code == 0, err
    assert "of 2 puzzles" in out
    code, out, err = run(["--task-module", "my_task.py", "view", "data/reverse", "-o", "view.html"], capsys)
    assert code == 0, err
    assert (project / "view.html").stat().st_size > 1000


def test_view_finds_the_module_in_the_environment(project, monkeypatch, capsys, clean_registry):
    monkeypatch.chdir(project)
    monkeypatch.setenv("LATENTLOOP_TASK_MODULES", str(project / "my_task.py"))
    code, _, err = run(["view", "data/reverse", "-o", "env-view.html"], capsys)
    assert code == 0, err
    assert (project / "env-view.html").exists()


def test_an_installed_package_registers_through_its_entry_point(tmp_path, monkeypatch, capsys, clean_registry):
    """The page's last section: a package with a `latentloop.tasks` entry point needs no --task-module."""
    package = tmp_path / "site" / "my_reverse_package"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    source = (FIXTURE / "my_task.py").read_text()
    (package / "task.py").write_text(source.replace('name = "reverse"', 'name = "reverse-installed"'))
    write_distribution(tmp_path / "site", "my_reverse_package", "reverse-installed = my_reverse_package.task:ReverseTask")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "reverse-installed" in tasks.task_names()
    code, out, err = run(["data", "reverse-installed", "--out", str(tmp_path / "d"), "--num-train", "8",
                          "--num-test", "4"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "d" / "test" / "dataset.json").read_text())["task"] == "reverse-installed"


def write_distribution(site: Path, package: str, entry: str) -> None:
    info = site / f"{package}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[latentloop.tasks]\n{entry}\n")


def test_a_broken_installed_task_stops_only_its_own_commands(tmp_path, monkeypatch, capsys, clean_registry):
    package = tmp_path / "site" / "my_reverse_package_broken"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('this plugin needs scipy')\n")
    write_distribution(tmp_path / "site", "my_reverse_package_broken",
                       "reverse-broken = my_reverse_package_broken:ReverseTask")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    code, _, err = run(["data", "reverse-broken", "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "ImportError: this plugin needs scipy" in one_line(err)
    code, out, err = run(["presets"], capsys)
    assert code == 0, err


# --- what can go wrong -----------------------------------------------------------------------------------------------

def test_a_dataset_naming_an_unknown_task(project, tmp_path, monkeypatch, capsys):
    data = tmp_path / "unknown"
    shutil.copytree(project / "data" / "reverse", data)
    for split in ("train", "test"):
        path = data / split / "dataset.json"
        path.write_text(path.read_text().replace('"reverse"', '"no-such-task"'))
    code, _, err = run(["view", str(data), "-o", str(tmp_path / "v.html")], capsys)
    line = one_line(err)
    assert code == 2 and "unknown task 'no-such-task'; known tasks: " in line
    assert "graph-distance" in line and "maze" in line and "sudoku" in line and "--task-module FILE.py" in line
    assert not (tmp_path / "v.html").exists()


def test_training_on_a_dataset_naming_an_unknown_task(project, tmp_path, monkeypatch, capsys):
    data = tmp_path / "unknown"
    shutil.copytree(project / "data" / "reverse", data)
    for split in ("train", "test"):
        path = data / split / "dataset.json"
        path.write_text(path.read_text().replace('"reverse"', '"no-such-task"'))
    monkeypatch.chdir(project)
    code, _, err = run(["train", "reverse.toml", *TINY, f"data_path={data}", f"out_dir={tmp_path / 'run'}",
                        "--no-progress"], capsys)
    assert code == 2 and "unknown task 'no-such-task'" in one_line(err)


def test_a_dataset_of_a_task_whose_module_is_not_given(project, tmp_path, capsys, clean_registry):
    tasks._registry.pop("reverse", None)   # a fresh process: only --task-module would define it
    tasks._loaded_modules.clear()
    code, _, err = run(["view", str(project / "data" / "reverse"), "-o", str(tmp_path / "v.html")], capsys)
    assert code == 2 and "unknown task 'reverse'" in one_line(err) and "--task-module" in err


@pytest.mark.parametrize("source, message", [
    ("def broken(:\n    pass\n", "SyntaxError: "),
    ("raise RuntimeError('cannot reach the lab server')\n", "RuntimeError: cannot reach the lab server"),
    ("import no_such_package_for_latentloop\n", "ModuleNotFoundError: No module named"),
])
def test_a_task_module_that_fails_to_import(tmp_path, monkeypatch, capsys, clean_registry, source, message):
    monkeypatch.chdir(tmp_path)
    Path("bad_task.py").write_text(source)
    for argv in (["--task-module", "bad_task.py", "data", "--help"],
                 ["--task-module=bad_task.py", "presets"],
                 ["train", "cpu-sudoku6", "task_module=bad_task.py"]):
        code, out, err = run(argv, capsys)
        line = one_line(err)
        assert code == 2 and "task module bad_task.py failed to import" in line and message in line, line
    Path("bad.toml").write_text('[data]\ntask_module = "bad_task.py"\ntask = "reverse"\n')
    code, _, err = run(["train", "bad.toml"], capsys)
    assert code == 2 and "task module bad_task.py failed to import" in one_line(err)
    code, _, err = run(["--task-module", "missing_task.py", "presets"], capsys)
    assert code == 2 and "task module missing_task.py: file not found" in one_line(err)


def test_a_puzzle_that_does_not_parse(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    for puzzle in ("1 2 x", "1 2 3 4 5 6 7 8 9", "12 3"):
        code, _, err = run(["solve", puzzle, "--checkpoint", "runs/reverse"], capsys)
        line = one_line(err)
        assert code == 2 and "expected 1 to 8 digits separated by spaces, like '1 2 3'" in line, line
    code, _, err = run(["solve", "0-1; source 0", "--checkpoint", "runs/reverse"], capsys)
    assert code == 2 and "expected 1 to 8 digits" in one_line(err)


def broken_task(body: str, name: str) -> str:
    """my_task.py with one method replaced (the class renamed so it does not clash with "reverse")."""
    source = (FIXTURE / "my_task.py").read_text().replace('name = "reverse"', f'name = "{name}"')
    return source + textwrap.dedent(body)


@pytest.mark.parametrize("name, body, message", [
    ("reverse-out-of-range", """
        _encode = ReverseTask.encode
        ReverseTask.encode = lambda self, puzzles: _encode(self, puzzles) + 5
     """, "hold token 16, outside the task's vocabulary 0..11"),
    ("reverse-bad-decode", """
        def _decode(self, tokens):
            raise ValueError("my decoder is unfinished")
        ReverseTask.decode = _decode
     """, "decode/check of the train labels failed: ValueError: my decoder is unfinished"),
    ("reverse-wrong-labels", """
        ReverseTask.check = lambda self, puzzle, answer: list(answer) == list(puzzle)
     """, "the train label of puzzle 0 does not pass the task's own check"),
    ("reverse-short-rows", """
        _encode = ReverseTask.encode
        ReverseTask.encode = lambda self, puzzles: _encode(self, puzzles)[:, :-1]
     """, "train inputs must be integer rows [N, 8], got int64 (40, 7)"),
])
def test_a_task_that_breaks_the_contract(tmp_path, monkeypatch, capsys, clean_registry, name, body, message):
    monkeypatch.chdir(tmp_path)
    Path("broken_task.py").write_text(broken_task(body, name))
    code, _, err = run(["--task-module", "broken_task.py", "data", name, "--out", "d", "--num-train", "40",
                        "--num-test", "8"], capsys)
    line = one_line(err.replace("latentloop: writing 40 + 8 lists of up to 8 digits to d\n", ""))
    assert code == 2 and f"task {name!r}: " in line and message in line, line
    assert not Path("d").exists()
    Path("broken.toml").write_text((FIXTURE / "reverse.toml").read_text()
                                   .replace('"my_task.py"', '"broken_task.py"').replace('"reverse"', f'"{name}"'))
    code, _, err = run(["train", "broken.toml", *TINY, "data.num_train=40", "data.num_test=8", "--no-progress"],
                       capsys)
    assert code == 2 and message in one_line(err)
    assert not Path("data").exists() and not Path("runs").exists()
