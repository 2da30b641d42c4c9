#!/usr/bin/env bash
# Create .venv with latentloop and its test tools. PyTorch: a wheel already on this machine if there is one,
# a CUDA build where an NVIDIA GPU is present, otherwise the CPU-only build (never a multi-GB CUDA build by accident).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if pip install --no-index --no-deps "torch==$TORCH_VERSION" 2>/dev/null; then
        pip install "torch==$TORCH_VERSION"   # its dependencies; torch itself is already satisfied
        echo "setup: installed torch $TORCH_VERSION from a local wheel"
    elif command -v nvidia-smi >/dev/null 2>&1; then
        pip install "torch==$TORCH_VERSION"
    else
        pip install "torch==$TORCH_VERSION" --index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
    fi
fi
pip install -e ".[test]"
echo "setup: $("$VENV/bin/python" -c 'import torch, latentloop; print("torch", torch.__version__, "latentloop", latentloop.__version__)')"
