#!/usr/bin/env bash
# Set up .venv with vlmcompress and its dependencies. Safe to re-run: it skips what is already installed.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu ./setup.sh   # where PyPI's default torch would be a CUDA build
#   VLMCOMPRESS_TORCH=torch ./setup.sh                                 # any other torch requirement (e.g. a CUDA build)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_REQ=${VLMCOMPRESS_TORCH:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing $TORCH_REQ (a CPU build where one is available)" >&2
  "${PIP[@]}" install "$TORCH_REQ" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch" >/dev/null
fi
STAMP=.venv/.vlmcompress-installed
WANT=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! .venv/bin/python -c "import vlmcompress" >/dev/null 2>&1; then
  echo "setup: installing vlmcompress and its dependencies" >&2
  "${PIP[@]}" install -e ".[dev,onnx]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import vlmcompress, transformers, bitsandbytes, peft, accelerate, datasets, mlxtend, onnxruntime" 
  echo "$WANT" > "$STAMP"
fi
echo "setup: ready (.venv)" >&2
