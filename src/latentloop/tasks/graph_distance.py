"""Graph distances: the BFS hop count from a source node to every node of a small random undirected graph.

Encoding, for a task of N nodes (``nodes``, stored with the data); one token row is N + 1 rows of N cells:

    rows 0..N-1  the adjacency matrix, row-major: cell (i, j) is 2 when i and j share an edge, else 1 (the diagonal
                 is always 1: no self-loops)
    row N        the source marker: 3 at the source node, 1 at every other node

The label row repeats the adjacency matrix (as Sudoku labels repeat the givens and maze labels the walls) and holds,
in row N, each node's distance from the source: token 5 + d for d hops (0 at the source itself, at most N - 1),
token 4 for a node the source cannot reach. So ``seq_len`` = N * N + N and ``vocab_size`` = N + 5:

    0 PAD (unused; the dataset's ignore_label_id)   1 no edge / not the source   2 edge   3 source   4 unreachable
    5 + d distance d

Why the copy rather than PAD (unsupervised) over the adjacency part: an answer row is then a whole picture: trace
pictures and the viewer show the graph and the distances with wrong cells marked, instead of whatever an unsupervised
output happens to be. The copy costs little: it is learned within the first few dozen steps, after which its loss
and gradient are near zero. Because the copied cells dominate cell accuracy, the evaluation adds
``distance_accuracy`` (the share of nodes whose distance is right) and ``graph_accuracy`` (every distance right).

Random graphs are G(N, p) graphs (every pair joined with probability ``edge_prob``) with a uniformly drawn source;
no puzzle appears twice and no test puzzle is a training puzzle. The distances are unique, so an answer is right when
it equals the BFS distances.

A puzzle of your own (``latentloop solve``) is an edge list and a source, e.g. ``"0-1 1-2 2-3; source 0"``: edges
``u-v`` (node numbers 0..N-1) separated by spaces or commas, and ``source S``, the two parts separated by ``;`` in
either order. Nodes that no edge names are isolated. The answer is printed as ``node: distance`` lines
(``unreachable`` for a node with no path), and on one line as ``0:0 1:1 2:2 3:-``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentloop.errors import ConfigError, DataError
from latentloop.tasks import register
from latentloop.tasks.augmentation import CellPermutation
from latentloop.tasks.base import GridStyle, Log, Task, TaskOptions, ViewerStyle, sum_over_ranks

PAD = 0            # unused in rows (the dataset's ignore_label_id)
NO_EDGE = 1        # adjacency cell without an edge; also every node but the source in the marker row
EDGE = 2           # adjacency cell with an edge
SOURCE = 3         # the source in the marker row
UNREACHABLE = 4    # label: no path from the source
DISTANCE = 5       # label: token DISTANCE + d for a node d hops from the source

UNREACHED = -1     # an answer's distance for an unreachable node
INVALID = -2       # an answer's distance where the model wrote no distance token (never right)

MIN_NODES, MAX_NODES = 2, 64
COLORS = {PAD: "white", NO_EDGE: "white", EDGE: "#2d3436", SOURCE: "#27ae60", UNREACHABLE: "#bbbbbb"}


@dataclass(frozen=True, eq=False)
class Graph:
    """One puzzle: an undirected graph on nodes 0..N-1 (symmetric boolean adjacency, empty diagonal) and a source."""

    adjacency: np.ndarray
    source: int

    @property
    def nodes(self) -> int:
        return len(self.adjacency)

    def edges(self) -> list[tuple[int, int]]:
        rows, cols = np.nonzero(np.triu(self.adjacency, 1))
        return [(int(u), int(v)) for u, v in zip(rows, cols)]

    def notation(self) -> str:
        """The graph in the notation `GraphDistanceTask.parse` reads."""
        return " ".join(f"{u}-{v}" for u, v in self.edges()) + f"; source {self.source}"


def bfs_distances(adjacency: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Hop counts from each source, -1 where unreachable: adjacency bool [B, N, N], sources int [B] -> int64 [B, N]."""
    adjacency = np.asarray(adjacency, dtype=bool)
    batch, n = adjacency.shape[0], adjacency.shape[-1]
    dist = np.full((batch, n), UNREACHED, dtype=np.int64)
    frontier = np.zeros((batch, n), dtype=bool)
    frontier[np.arange(batch), sources] = True
    dist[frontier] = 0
    links = adjacency.astype(np.float32)
    for hops in range(1, n):
        reached = np.einsum("bi,bij->bj", frontier.astype(np.float32), links) > 0
        frontier = reached & (dist == UNREACHED)
        if not frontier.any():
            break
        dist[frontier] = hops
    return dist


@dataclass
class GraphDistanceOptions(TaskOptions):
    nodes: int = field(default=10, metadata={"help": f"nodes per graph ({MIN_NODES}..{MAX_NODES})"})
    edge_prob: float = field(default=0.25, metadata={"help": "probability that two nodes share an edge"})
    num_train: int = field(default=1000, metadata={"help": "generated training graphs"})
    num_test: int = field(default=1000, metadata={"help": "generated held-out graphs"})


def generate(nodes: int, edge_prob: float, count: int, rng: np.random.Generator,
             seen: set[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """`count` random graphs and sources whose input rows are not in `seen` (which gains them): (adjacency bool
    [count, N, N], sources int64 [count])."""
    upper = np.triu(np.ones((nodes, nodes), dtype=bool), 1)
    kept_adj: list[np.ndarray] = []
    kept_src: list[np.ndarray] = []
    have, rounds = 0, 0
    while have < count:
        rounds += 1
        if rounds > 100:
            raise ConfigError(f"cannot draw {count:,} different graphs of {nodes} nodes with edge_prob {edge_prob}; "
                              f"ask for fewer, or more nodes")
        want = count - have
        draw = rng.random((want, nodes, nodes)) < edge_prob
        adj = draw & upper
        adj = adj | adj.transpose(0, 2, 1)
        src = rng.integers(0, nodes, size=want)
        rows = _input_rows(adj, src)
        fresh = []
        for i, row in enumerate(rows):
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                fresh.append(i)
        kept_adj.append(adj[fresh])
        kept_src.append(src[fresh])
        have += len(fresh)
    return np.concatenate(kept_adj)[:count], np.concatenate(kept_src)[:count].astype(np.int64)


def _input_rows(adjacency: np.ndarray, sources: np.ndarray) -> np.ndarray:
    batch, n = adjacency.shape[0], adjacency.shape[-1]
    marker = np.full((batch, n), NO_EDGE, dtype=np.uint8)
    marker[np.arange(batch), sources] = SOURCE
    cells = np.where(adjacency, EDGE, NO_EDGE).astype(np.uint8).reshape(batch, n * n)
    return np.concatenate([cells, marker], axis=1)


def _label_rows(adjacency: np.ndarray, distances: np.ndarray) -> np.ndarray:
    batch, n = distances.shape
    cells = np.where(adjacency, EDGE, NO_EDGE).astype(np.uint8).reshape(batch, n * n)
    answer = np.where(distances >= 0, DISTANCE + distances, UNREACHABLE).astype(np.uint8)
    return np.concatenate([cells, answer], axis=1)


def _distances_of_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """The distance row of answer rows -> int64 [B, N]: -1 unreachable, -2 where it holds no distance token."""
    row = np.asarray(rows).reshape(-1, n * n + n)[:, n * n:].astype(np.int64)
    return np.where(row >= DISTANCE, row - DISTANCE, np.where(row == UNREACHABLE, UNREACHED, INVALID))


def _graphs_of_rows(inputs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Input rows -> (adjacency bool [B, N, N], sources [B]); a row without a source marker gets source 0."""
    inputs = np.asarray(inputs)
    adjacency = inputs[:, :n * n].reshape(-1, n, n) == EDGE
    return adjacency, np.argmax(inputs[:, n * n:] == SOURCE, axis=1)


@dataclass
class DistanceTally:
    """Distance scores gathered batch by batch (an evaluation observer): the copied adjacency cells dominate cell
    accuracy, so these count only the distance row, against BFS on the input graph."""

    nodes: int
    right_nodes: int = 0
    right_graphs: int = 0
    count: int = 0

    def update(self, ids: np.ndarray, inputs: np.ndarray, predictions: np.ndarray, halt: np.ndarray) -> None:
        n = self.nodes
        adjacency, sources = _graphs_of_rows(inputs, n)
        truth = bfs_distances(adjacency, sources)
        right = _distances_of_rows(predictions, n) == truth
        self.right_nodes += int(right.sum())
        self.right_graphs += int(right.all(axis=1).sum())
        self.count += len(inputs)

    def metrics(self) -> dict[str, float]:
        """Shares over every rank's examples (a sum all-reduce under torch.distributed; all ranks call it)."""
        nodes, graphs, count = sum_over_ranks([self.right_nodes, self.right_graphs, self.count]).tolist()
        return {"distance_accuracy": nodes / (count * self.nodes) if count else 0.0,
                "graph_accuracy": graphs / count if count else 0.0}

    def report(self) -> str:
        m = self.metrics()
        return (f"  graph-distance: {m['distance_accuracy']:.2%} of node distances right, every distance right in "
                f"{m['graph_accuracy']:.2%} of graphs")


_EDGE = re.compile(r"(\d+)-(\d+)")
_SOURCE = re.compile(r"source\s*[=:]?\s*(\S+)", re.IGNORECASE)


@register
class GraphDistanceTask(Task):
    """BFS distances from a source node in a small undirected graph (see the module docstring for the tokens)."""

    name = "graph-distance"
    summary = "generate random graphs and label each node's BFS distance from a source node"
    Options = GraphDistanceOptions
    verdicts = {True: "right: every distance is the shortest hop count from the source",
                False: "NOT right: some distance is not the shortest hop count from the source"}

    def __init__(self, nodes: int = 10) -> None:
        if isinstance(nodes, bool) or not isinstance(nodes, int) or not MIN_NODES <= nodes <= MAX_NODES:
            raise DataError(f"graph-distance takes {MIN_NODES}..{MAX_NODES} nodes, got {nodes!r}")
        self.nodes = nodes

    def params(self) -> dict[str, Any]:
        return {"nodes": self.nodes}

    @property
    def vocab_size(self) -> int:
        return DISTANCE + self.nodes       # distances 0..N-1

    @property
    def seq_len(self) -> int:
        return self.nodes * self.nodes + self.nodes

    # --- data -------------------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, out: Path, options: TaskOptions, log: Log) -> str:
        assert isinstance(options, GraphDistanceOptions)
        o = options
        if not 0.0 <= o.edge_prob <= 1.0:
            raise ConfigError(f"data.edge_prob is a probability in [0, 1], got {o.edge_prob}")
        if o.num_train < 1 or o.num_test < 1:
            raise ConfigError(f"data.num_train and data.num_test must be at least 1, got {o.num_train} and "
                              f"{o.num_test}")
        task = cls(o.nodes)
        graphs = 1 if o.edge_prob in (0.0, 1.0) else 2 ** (o.nodes * (o.nodes - 1) // 2)
        if o.num_train + o.num_test > graphs * o.nodes:
            raise ConfigError(f"cannot draw {o.num_train + o.num_test:,} different graphs of {o.nodes} nodes with "
                              f"edge_prob {o.edge_prob}: there are only {graphs * o.nodes:,} (graphs x sources)")
        log(f"generating {o.num_train:,} + {o.num_test:,} graphs of {o.nodes} nodes (edge_prob {o.edge_prob}) into "
            f"{out} (seed {o.seed})")
        rng = np.random.default_rng(o.seed)
        seen: set[bytes] = set()
        splits, samples = [], []
        for count in (o.num_train, o.num_test):
            adjacency, sources = generate(o.nodes, o.edge_prob, count, rng, seen)
            splits.append((_input_rows(adjacency, sources),
                           _label_rows(adjacency, bfs_distances(adjacency, sources))))
            samples.append([Graph(adjacency[i], int(sources[i])) for i in range(min(count, 1000))])
        summary = task.write_dataset(out, splits[0], splits[1], puzzles=(samples[0], samples[1]))
        labels = splits[0][1][:, o.nodes * o.nodes:]
        unreachable = float((labels == UNREACHABLE).mean())
        reach = labels[labels != UNREACHABLE].astype(int) - DISTANCE
        return (f"{summary}; training nodes: {unreachable:.1%} unreachable, the others at mean distance "
                f"{reach.mean() if reach.size else 0:.2f} (max {reach.max() if reach.size else 0})")

    # --- one puzzle -------------------------------------------------------------------------------------------------

    def parse(self, text: str, where: str = "puzzle") -> Graph:
        n = self.nodes
        expected = (f"expected edges and a source like '0-1 1-2 2-3; source 0' (nodes 0..{n - 1}, edges u-v "
                    f"separated by spaces or commas, then '; source S')")
        parts = [part.strip() for part in str(text).strip().split(";")]
        sources = [part for part in parts if part.lower().startswith("source")]
        edge_parts = [part for part in parts if part and not part.lower().startswith("source")]
        if len(sources) != 1 or len(edge_parts) > 1:
            raise DataError(f"{where}: {expected}, got {_shorten(text)!r}")
        match = _SOURCE.fullmatch(sources[0])
        if match is None or not match.group(1).isdigit():
            raise DataError(f"{where}: the source must be a node number like 'source 0', got {sources[0]!r}")
        source = int(match.group(1))
        adjacency = np.zeros((n, n), dtype=bool)
        for item in (edge_parts[0].replace(",", " ").split() if edge_parts else []):
            edge = _EDGE.fullmatch(item)
            if edge is None:
                raise DataError(f"{where}: {item!r} is not an edge u-v; {expected}")
            u, v = int(edge.group(1)), int(edge.group(2))
            if u == v:
                raise DataError(f"{where}: {item!r} joins node {u} to itself; edges join two different nodes")
            for node in (u, v):
                if node >= n:
                    raise DataError(f"{where}: {_out_of_range(node, n)}")
            adjacency[u, v] = adjacency[v, u] = True
        if source >= n:
            raise DataError(f"{where}: the source: {_out_of_range(source, n)}")
        return Graph(adjacency, source)

    def encode(self, puzzles: list[Graph]) -> np.ndarray:
        for puzzle in puzzles:
            if puzzle.nodes != self.nodes:
                raise DataError(f"a graph of {puzzle.nodes} nodes given to a graph-distance task of {self.nodes}")
        adjacency = np.stack([p.adjacency for p in puzzles]).astype(bool)
        sources = np.array([p.source for p in puzzles], dtype=np.int64)
        return _input_rows(adjacency, sources).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Answer rows -> distances int64 [B, N]: -1 unreachable, -2 where the row holds no distance token."""
        return _distances_of_rows(tokens, self.nodes)

    def check(self, puzzle: Graph, answer: np.ndarray) -> bool:
        truth = bfs_distances(puzzle.adjacency[None], np.array([puzzle.source]))[0]
        return bool(np.array_equal(np.asarray(answer).reshape(-1), truth))

    def format(self, answer: np.ndarray) -> str:
        return "\n".join(f"{node}: {_distance_text(int(d), 'unreachable')}" for node, d in enumerate(answer))

    def one_line(self, answer: np.ndarray) -> str:
        return " ".join(f"{node}:{_distance_text(int(d), '-')}" for node, d in enumerate(answer))

    def reference(self, puzzle: Graph) -> np.ndarray:
        """The label row: the distances are unique."""
        distances = bfs_distances(puzzle.adjacency[None], np.array([puzzle.source]))
        return _label_rows(puzzle.adjacency[None], distances)[0].astype(np.int64)

    def givens(self, puzzle: Graph) -> np.ndarray:
        return self.encode([puzzle])[0] > NO_EDGE

    # --- augmentations ----------------------------------------------------------------------------------------------

    def augmentation_count(self) -> int:
        """Every renumbering of the nodes. The source need not stay put: its marker moves with it, and so does each
        node's distance, so the renumbered puzzle's answer is the original's renumbered."""
        return math.factorial(self.nodes)

    def random_augmentation(self, rng: np.random.Generator, index: int) -> CellPermutation:
        """New node i is old node perm[i]: adjacency cell (i, j) comes from (perm[i], perm[j]), marker or distance
        cell i from perm[i]; the tokens stay."""
        n = self.nodes
        perm = rng.permutation(n)
        cells = np.concatenate([(perm[:, None] * n + perm[None, :]).reshape(-1), n * n + perm])
        return CellPermutation(f"nodes-{index}", cells, np.arange(self.vocab_size))

    # --- pictures ---------------------------------------------------------------------------------------------------

    def style(self) -> GridStyle:
        """N + 1 rows of N cells: the adjacency matrix (dark = edge), then the source / distance row."""
        return GridStyle(rows=self.nodes + 1, cols=self.nodes, text=_cell_text,
                         color=lambda t: COLORS.get(t, "#dfe6e9"))

    def viewer_style(self) -> ViewerStyle:
        labels = ["", "", "", "S", "-"] + [str(d) for d in range(self.nodes)]
        colors = [COLORS[t] for t in range(DISTANCE)] + ["#dfe6e9"] * self.nodes
        return ViewerStyle(labels=labels, colors=colors, cols=self.nodes, blank=NO_EDGE)

    def metrics(self, data_path: Path | None, split: Any, meta: Any) -> DistanceTally:
        return DistanceTally(self.nodes)


def _cell_text(token: int) -> str:
    if token == SOURCE:
        return "S"
    if token == UNREACHABLE:
        return "-"
    return str(token - DISTANCE) if token >= DISTANCE else ""


def _distance_text(d: int, unreachable: str) -> str:
    return str(d) if d >= 0 else unreachable if d == UNREACHED else "?"


def _out_of_range(node: int, n: int) -> str:
    return f"node {node} is out of range; this task's graphs have nodes 0..{n - 1}"


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
