"""The graph-distance task: seeded random graphs, exact BFS labels, the edge-list notation, and the CLI."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pytest

from latentloop.cli import main
from latentloop.config import load_preset
from latentloop.data.format import read_split
from latentloop.errors import DataError
from latentloop.tasks import BUILTIN, get_task, task_names, task_of_dataset
from latentloop.tasks.graph_distance import (DISTANCE, EDGE, NO_EDGE, SOURCE, UNREACHABLE, Graph,
                                             GraphDistanceOptions, GraphDistanceTask, bfs_distances)


def build(out, **options):
    options = {"nodes": 6, "edge_prob": 0.3, "num_train": 64, "num_test": 16, "seed": 0, **options}
    return GraphDistanceTask.build(out, GraphDistanceOptions(task="graph-distance", **options), log=lambda _: None)


def python_bfs(adjacency: np.ndarray, source: int) -> list[int]:
    dist = [-1] * len(adjacency)
    dist[source] = 0
    queue = deque([source])
    while queue:
        u = queue.popleft()
        for v in np.nonzero(adjacency[u])[0]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue.append(int(v))
    return dist


def graphs_of(inputs: np.ndarray, n: int) -> list[Graph]:
    inputs = np.asarray(inputs)
    return [Graph(row[:n * n].reshape(n, n) == EDGE, int(np.argmax(row[n * n:] == SOURCE))) for row in inputs]


def test_registered_as_builtin():
    assert BUILTIN["graph-distance"] == "latentloop.tasks.graph_distance"
    assert "graph-distance" in task_names()
    task = get_task("graph-distance", {"nodes": 8})
    assert (task.seq_len, task.vocab_size) == (8 * 8 + 8, 8 + 5)
    assert task.params() == {"nodes": 8}


@pytest.mark.parametrize("nodes", [1, 65, "8", True])
def test_bad_node_counts(nodes):
    with pytest.raises(DataError, match="nodes"):
        GraphDistanceTask(nodes)


def test_bfs_matches_a_plain_python_bfs():
    rng = np.random.default_rng(1)
    for n, p in ((5, 0.3), (9, 0.2), (12, 0.15)):
        upper = np.triu(rng.random((40, n, n)) < p, 1)
        adjacency = upper | upper.transpose(0, 2, 1)
        sources = rng.integers(0, n, size=40)
        dist = bfs_distances(adjacency, sources)
        for a, s, d in zip(adjacency, sources, dist):
            assert d.tolist() == python_bfs(a, int(s))


def test_build_is_deterministic(tmp_path):
    build(tmp_path / "a")
    build(tmp_path / "b")
    build(tmp_path / "c", seed=1)
    for split in ("train", "test"):
        a, b, c = (read_split(tmp_path / name / split)[0] for name in "abc")
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)
        assert not np.array_equal(a.inputs, c.inputs)


def test_labels_pass_the_checker_and_splits_do_not_overlap(tmp_path):
    summary = build(tmp_path / "d", nodes=7, num_train=300, num_test=100)
    assert "300 training and 100 test graph-distance puzzles" in summary
    task = task_of_dataset(tmp_path / "d")
    assert isinstance(task, GraphDistanceTask) and task.nodes == 7
    rows = {}
    for split in ("train", "test"):
        data, meta = read_split(tmp_path / "d" / split)
        assert (meta.vocab_size, meta.seq_len, meta.task) == (12, 56, "graph-distance")
        inputs, labels = np.asarray(data.inputs), np.asarray(data.labels)
        assert np.array_equal(labels[:, :49], inputs[:, :49])                 # the adjacency is copied
        assert set(np.unique(inputs[:, :49])) <= {NO_EDGE, EDGE}
        assert ((inputs[:, 49:] == SOURCE).sum(1) == 1).all()
        puzzles = graphs_of(inputs, 7)
        answers = task.decode(labels)
        assert all(task.check(p, a) for p, a in zip(puzzles, answers))
        assert all(a.tolist() == python_bfs(p.adjacency, p.source) for p, a in zip(puzzles, answers))
        for p in puzzles:                                                      # undirected, no self-loops
            assert np.array_equal(p.adjacency, p.adjacency.T) and not p.adjacency.diagonal().any()
        rows[split] = {row.tobytes() for row in inputs}
        assert len(rows[split]) == len(inputs)
    assert not rows["train"] & rows["test"]


def test_parse_encode_decode_round_trip():
    task = GraphDistanceTask(6)
    graph = task.parse("0-1 1-2, 2-3 4-5; source 1")
    assert graph.edges() == [(0, 1), (1, 2), (2, 3), (4, 5)] and graph.source == 1
    assert task.parse(graph.notation()).edges() == graph.edges()
    assert task.parse("source=2; 3-0").edges() == [(0, 3)]
    row = task.encode([graph])[0]
    assert row.shape == (task.seq_len,) and row.dtype == np.int64
    back = graphs_of(row[None], 6)[0]
    assert np.array_equal(back.adjacency, graph.adjacency) and back.source == 1
    label = task.reference(graph)
    assert label[36:].tolist() == [DISTANCE + 1, DISTANCE, DISTANCE + 1, DISTANCE + 2, UNREACHABLE, UNREACHABLE]
    answer = task.decode(label[None])[0]
    assert answer.tolist() == [1, 0, 1, 2, -1, -1] and task.check(graph, answer)
    assert task.format(answer).splitlines() == ["0: 1", "1: 0", "2: 1", "3: 2", "4: unreachable", "5: unreachable"]
    assert task.one_line(answer) == "0:1 1:0 2:1 3:2 4:- 5:-"
    wrong = answer.copy()
    wrong[3] = 1
    assert not task.check(graph, wrong)
    garbage = label.copy()
    garbage[-1] = SOURCE                                   # no distance token: decoded as -2, never right
    assert task.decode(garbage[None])[0][-1] == -2 and "?" in task.format(task.decode(garbage[None])[0])
    assert task.givens(graph).sum() == 2 * 4 + 1           # the edges (both halves of the matrix) and the source


@pytest.mark.parametrize("text, message", [
    ("0-1 1-2", "expected edges and a source like '0-1 1-2 2-3; source 0'"),
    ("", "expected edges and a source"),
    ("0-1; source 0; source 1", "expected edges and a source"),
    ("0-1; 1-2; source 0", "expected edges and a source"),
    ("0-1; source x", "the source must be a node number"),
    ("0-1; source 6", "node 6 is out of range; this task's graphs have nodes 0..5"),
    ("0-9; source 0", "node 9 is out of range"),
    ("0-0; source 0", "joins node 0 to itself"),
    ("0--1; source 0", "'0--1' is not an edge u-v"),
    ("a-b; source 0", "'a-b' is not an edge u-v"),
])
def test_parse_errors_say_what_was_expected(text, message):
    with pytest.raises(DataError, match="^puzzle: ") as info:
        GraphDistanceTask(6).parse(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_read_a_file_of_puzzles(tmp_path):
    path = tmp_path / "graphs.txt"
    path.write_text("# two graphs\n0-1; source 0\n\n2-3 3-4; source 4\n")
    graphs = GraphDistanceTask(5).read(str(path))
    assert [g.source for g in graphs] == [0, 4]
    path.write_text("0-1; source 0\n0-7; source 0\n")
    with pytest.raises(DataError, match="graphs.txt:2: node 7 is out of range"):
        GraphDistanceTask(5).read(str(path))


def test_pictures_cover_the_row():
    task = GraphDistanceTask(9)
    style = task.style()
    assert style.rows * style.cols == task.seq_len
    assert style.text(SOURCE) == "S" and style.text(DISTANCE + 3) == "3" and style.text(UNREACHABLE) == "-"
    assert all(isinstance(style.color(t), str) for t in range(task.vocab_size))
    viewer = task.viewer_style()
    assert len(viewer.labels) == len(viewer.colors) == task.vocab_size and viewer.cols == 9


def test_metrics_score_the_distances_only(tmp_path):
    build(tmp_path / "d")
    data, meta = read_split(tmp_path / "d" / "test")
    task = task_of_dataset(tmp_path / "d")
    inputs, labels = np.asarray(data.inputs), np.asarray(data.labels)
    tally = task.metrics(tmp_path / "d", data, meta)
    tally.update(None, inputs, labels, None)
    assert tally.metrics() == {"distance_accuracy": 1.0, "graph_accuracy": 1.0}
    wrong = labels.copy()
    wrong[:, 36] = UNREACHABLE if wrong[0, 36] != UNREACHABLE else DISTANCE   # node 0 wrong in every graph
    wrong[:, 0] = EDGE                                                        # the copied part does not count
    tally = task.metrics(tmp_path / "d", data, meta)
    tally.update(None, inputs, wrong, None)
    m = tally.metrics()
    assert m["graph_accuracy"] < 1.0 and m["distance_accuracy"] < 1.0
    assert "node distances right" in tally.report()


def test_presets_load():
    for name in ("cpu-graph-distance", "trm-graph-distance"):
        cfg = load_preset(name)
        assert cfg.data.task == "graph-distance" and isinstance(cfg.data, GraphDistanceOptions)
        assert cfg.model.arch == "trm"
    assert load_preset("cpu-graph-distance").data.nodes == 8


def test_cli_data_writes_the_task(tmp_path, capsys):
    out = tmp_path / "graphs"
    code = main(["data", "graph-distance", "--out", str(out), "--nodes", "5", "--num-train", "40", "--num-test", "8",
                 "--edge-prob", "0.4", "--seed", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for split in ("train", "test"):
        meta = json.loads((out / split / "dataset.json").read_text())
        assert meta["task"] == "graph-distance" and meta["task_params"] == {"nodes": 5}
        assert (meta["seq_len"], meta["vocab_size"]) == (30, 10)
    assert "40 training and 8 test graph-distance puzzles" in captured.out


@pytest.mark.parametrize("flags, message", [
    (["--nodes", "1"], "2..64 nodes"),
    (["--edge-prob", "1.5"], "edge_prob"),
    (["--num-train", "500", "--nodes", "2"], "cannot draw 501 different graphs of 2 nodes with edge_prob 0.25: there are only 4"),
])
def test_cli_data_bad_options(tmp_path, capsys, flags, message):
    code = main(["data", "graph-distance", "--out", str(tmp_path / "g"), "--num-test", "1", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_train_solve_and_trace_a_tiny_model(tmp_path, capsys, monkeypatch):
    """One training step of a tiny TRM, then the user's path: solve an edge list, draw its trace, view the data."""
    monkeypatch.chdir(tmp_path)
    code = main(["train", "cpu-graph-distance", "data_path=g", "out_dir=run", "data.nodes=4", "data.num_train=32",
                 "data.num_test=8", "hidden_size=16", "num_heads=2", "puzzle_emb_ndim=16", "global_batch_size=32",
                 "eval_batch_size=8", "lr_warmup_steps=1", "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    code = main(["eval", "run"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "(graph-distance, 8 puzzles" in out.out and "node distances right" in out.out
    code = main(["solve", "0-1 1-2; source 0", "--checkpoint", "run", "--trace", "trace.png", "--out", "answers.txt"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "0: " in out.out and "3: " in out.out and "supervision step" in out.out
    assert (tmp_path / "trace.png").stat().st_size > 1000
    assert len((tmp_path / "answers.txt").read_text().split()) == 4
    code = main(["solve", "0-1 1-2; source 9", "--checkpoint", "run"])
    err = capsys.readouterr().err
    assert code == 2 and "node 9 is out of range; this task's graphs have nodes 0..3" in err
    assert len(err.strip().splitlines()) == 1
    code = main(["view", "g", "-o", "view.html"])
    assert code == 0 and (tmp_path / "view.html").stat().st_size > 1000
