"""A static HTML page to browse puzzles, labels and predictions: one file, no server, no network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from latentloop.data.format import read_split
from latentloop.errors import DataError

PREDICTION_KEYS = ("inputs", "labels", "predictions")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.bar { display: flex; gap: .6em; align-items: center; margin-bottom: 1em; flex-wrap: wrap; }
.grids { display: flex; gap: 2em; flex-wrap: wrap; }
.grid { display: grid; gap: 1px; background: #999; border: 2px solid #333; }
.cell { width: 26px; height: 26px; display: flex; align-items: center; justify-content: center; background: #fff;
        font-size: 14px; }
.given { font-weight: bold; background: #eef; }
.wrong { background: #f8c4c4; color: #a00; }
h3 { margin: .2em 0; font-size: 15px; }
#stats { color: #555; }
</style></head><body>
<h2>__TITLE__</h2>
<div class="bar">
  <button id="prev">&larr; previous</button>
  <input id="index" type="number" min="1" value="1" style="width:6em"> of <span id="count"></span>
  <button id="next">next &rarr;</button>
  <label>show <select id="filter"><option value="all">all</option><option value="wrong">wrong only</option>
  <option value="right">right only</option></select></label>
  <span id="stats"></span>
</div>
<div id="meta"></div>
<div class="grids" id="grids"></div>
<script>
const DATA = __DATA__;
const items = DATA.items;
let shown = items.map((_, i) => i);
let position = 0;
function isRight(item) { return item.prediction && item.prediction.every((t, i) => item.label[i] < 0 || t === item.label[i]); }
function gridElement(tokens, reference, input) {
  const el = document.createElement("div");
  el.className = "grid";
  el.style.gridTemplateColumns = `repeat(${DATA.cols}, 26px)`;
  tokens.forEach((t, i) => {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.textContent = DATA.vocab[t] ?? "";
    if (DATA.colors && DATA.colors[t]) cell.style.background = DATA.colors[t];
    if (input && input[i] !== DATA.blank && input[i] !== 0) cell.classList.add("given");
    if (reference && reference[i] >= 0 && reference[i] !== t) cell.classList.add("wrong");
    el.appendChild(cell);
  });
  return el;
}
function panel(title, tokens, reference, input) {
  const box = document.createElement("div");
  const h = document.createElement("h3");
  h.textContent = title;
  box.appendChild(h);
  box.appendChild(gridElement(tokens, reference, input));
  return box;
}
function render() {
  document.getElementById("count").textContent = shown.length;
  const grids = document.getElementById("grids");
  grids.innerHTML = "";
  if (!shown.length) { document.getElementById("meta").textContent = "nothing to show"; return; }
  position = Math.max(0, Math.min(position, shown.length - 1));
  document.getElementById("index").value = position + 1;
  const item = items[shown[position]];
  let meta = `example ${item.index}`;
  if (item.steps !== undefined) meta += ` · ${item.steps} supervision step(s) · halt p=${item.halt.toFixed(2)}`;
  if (item.prediction) meta += isRight(item) ? " · correct" : " · wrong";
  document.getElementById("meta").textContent = meta;
  grids.appendChild(panel("puzzle", item.input, null, item.input));
  grids.appendChild(panel("label", item.label.map(t => Math.max(t, 0)), null, item.input));
  if (item.prediction) grids.appendChild(panel("prediction", item.prediction, item.label, item.input));
}
function applyFilter() {
  const mode = document.getElementById("filter").value;
  shown = items.map((_, i) => i).filter(i => mode === "all" || !items[i].prediction || (mode === "right") === isRight(items[i]));
  position = 0;
  render();
}
document.getElementById("prev").onclick = () => { position -= 1; render(); };
document.getElementById("next").onclick = () => { position += 1; render(); };
document.getElementById("index").onchange = e => { position = Number(e.target.value) - 1; render(); };
document.getElementById("filter").onchange = applyFilter;
const withPred = items.filter(i => i.prediction);
if (withPred.length) {
  const right = withPred.filter(isRight).length;
  document.getElementById("stats").textContent = `${right} of ${withPred.length} exactly right`;
}
render();
</script></body></html>
"""


def _vocab_labels(vocab_size: int, kind: str) -> tuple[list[str], list[str] | None]:
    """Cell text (and colours) per token: Sudoku digits, maze characters, or ARC colours."""
    if kind == "maze":
        return ["", "#", " ", "S", "G", "o"][:vocab_size], None
    if kind == "arc":
        palette = ["#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B",
                   "#7FDBFF", "#870C25"]
        return ["", "|"] + [""] * 10, ["#ffffff", "#dddddd"] + palette
    return ["", "."] + [str(d) if d < 10 else chr(ord("A") + d - 10) for d in range(1, vocab_size - 1)], None


def _guess_kind(vocab_size: int, seq_len: int) -> str:
    if seq_len == 900 and vocab_size == 6:
        return "maze"
    if seq_len == 900 and vocab_size == 12:
        return "arc"
    return "sudoku"


def load_items(source: str | Path, limit: int) -> tuple[dict, list[dict]]:
    """Items from a dataset folder (its test split, or a split folder) or a predictions .npz from `eval`."""
    source = Path(source)
    if source.suffix == ".npz":
        try:
            data = np.load(source)
            arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"{source}: cannot read predictions ({exc.__class__.__name__})") from None
        missing = [k for k in PREDICTION_KEYS if k not in arrays]
        if missing:
            raise DataError(f"{source}: missing arrays {missing}; write it with `latentloop eval --save-predictions`")
        vocab = int(arrays.get("vocab_size", max(arrays["inputs"].max(), arrays["labels"].max()) + 1))
        info = {"vocab_size": vocab, "seq_len": arrays["inputs"].shape[1]}
    else:
        split_dir = source / "test" if (source / "test" / "dataset.json").exists() else source
        split, meta = read_split(split_dir)
        arrays = {"inputs": np.asarray(split.inputs), "labels": np.asarray(split.labels).astype(np.int64)}
        if meta.ignore_label_id is not None:
            arrays["labels"][arrays["labels"] == meta.ignore_label_id] = -100
        info = {"vocab_size": meta.vocab_size, "seq_len": meta.seq_len}
    items = []
    for i in range(min(limit, len(arrays["inputs"]))):
        item = {"index": i, "input": arrays["inputs"][i].tolist(), "label": arrays["labels"][i].tolist()}
        if "predictions" in arrays:
            item["prediction"] = arrays["predictions"][i].tolist()
        if "steps" in arrays:
            item["steps"] = int(arrays["steps"][i])
            item["halt"] = float(arrays["halt_probability"][i])
        items.append(item)
    return info, items


def write_viewer(source: str | Path, out: str | Path, limit: int = 2000, title: str | None = None) -> Path:
    info, items = load_items(source, limit)
    side = math.isqrt(info["seq_len"])
    cols = side if side * side == info["seq_len"] else info["seq_len"]
    kind = _guess_kind(info["vocab_size"], info["seq_len"])
    vocab, colors = _vocab_labels(info["vocab_size"], kind)
    payload = {"cols": cols, "vocab": vocab, "colors": colors, "blank": 1 if kind == "sudoku" else -1,
               "items": items}
    html = PAGE.replace("__TITLE__", title or f"latentloop: {Path(source).name}")
    html = html.replace("__DATA__", json.dumps(payload, separators=(",", ":")))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
