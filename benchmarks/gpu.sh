#!/usr/bin/env bash
# GPU throughput of the paper configs: bf16 eager (the official precision, without compile) against bf16 with
# compile=true, at the paper's global batch of 768 on one GPU, plus the cpu-sudoku6 preset. Prints samples/s, ms per
# step, model FLOP utilisation against a bf16 matmul measured in the same process, and peak GPU memory. Each config's
# table is printed as soon as it is done, and the whole script stops within 8 minutes (compilation is most of it).
#
#   bash benchmarks/gpu.sh                  # uses .venv/bin/python, or $PYTHON
#   BATCH=384 bash benchmarks/gpu.sh        # a GPU with less memory
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BATCH=${BATCH:-768}
OUT=${OUT:-gpu-throughput}

"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true

# 3 interleaved rounds of 10 timed steps per variant, after 3 warmup steps (they include compilation).
timeout 380 "$PYTHON" benchmarks/throughput.py --device cuda --batch "$BATCH" \
    --configs trm-sudoku-att trm-sudoku-mlp hrm-sudoku-1k \
    --variants base compile=true --steps 10 --warmup 3 --rounds 3 --json "$OUT-paper.json" || echo "stopped early"
# The small preset at its own batch (64), where launch overhead is what a GPU sees.
timeout 90 "$PYTHON" benchmarks/throughput.py --device cuda --configs cpu-sudoku6 \
    --variants base forward_dtype=bfloat16 forward_dtype=bfloat16,compile=true --steps 20 --warmup 3 --rounds 3 \
    --json "$OUT-small.json" || echo "stopped early"
