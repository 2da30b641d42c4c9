"""A static HTML page to browse puzzles, labels and predictions: one file, no server, no network."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from latentloop.data.format import read_split
from latentloop.errors import DataError
from latentloop.paths import check_output_file, ensure_output_file
from latentloop.tasks import Task, get_task, infer_task, task_class

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
        if "task" in arrays:  # written by `eval --save-predictions`: {"name", "params"} as JSON
            info["task"] = json.loads(str(arrays["task"]))
    else:
        split_dir = source / "test" if (source / "test" / "dataset.json").exists() else source
        split, meta = read_split(split_dir)
        arrays = {"inputs": np.asarray(split.inputs), "labels": np.asarray(split.labels).astype(np.int64)}
        if meta.ignore_label_id is not None:
            arrays["labels"][arrays["labels"] == meta.ignore_label_id] = -100
        info = {"vocab_size": meta.vocab_size, "seq_len": meta.seq_len, "root": split_dir.parent}
        if meta.task:
            info["task"] = {"name": meta.task, "params": meta.task_params}
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


def _task_of(info: dict, task: str = "") -> Task:
    """The items' task: named with the data, else inferred once by the registry (or checked against `task`)."""
    if "task" in info:
        return get_task(info["task"]["name"], info["task"].get("params") or {})
    meta = SimpleNamespace(vocab_size=info["vocab_size"], seq_len=info["seq_len"])
    root = info.get("root")
    if task:
        found = task_class(task).infer(meta, root)
        if found is None:
            raise DataError(f"these puzzles (vocab_size {meta.vocab_size}, seq_len {meta.seq_len}) are not {task!r}")
        return found
    return infer_task(meta, root)


def write_viewer(source: str | Path, out: str | Path, limit: int = 2000, title: str | None = None,
                 task: str = "") -> Path:
    check_output_file(out)
    info, items = load_items(source, limit)
    style = _task_of(info, task).viewer_style()
    payload = {"cols": style.cols or info["seq_len"], "vocab": style.labels, "colors": style.colors,
               "blank": style.blank, "items": items}
    html = PAGE.replace("__TITLE__", title or f"latentloop: {Path(source).name}")
    html = html.replace("__DATA__", json.dumps(payload, separators=(",", ":")))
    out = ensure_output_file(out)
    out.write_text(html, encoding="utf-8")
    return out
