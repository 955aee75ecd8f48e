#!/usr/bin/env bash
# Download the pure-Python wheels that a bare GPU image (PyTorch, timm, huggingface_hub already there)
# lacks for dclip's benchmark, into .whl/ (git-ignored). Versions are the pins of constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
pins() { grep -i -E "^($(IFS='|'; echo "$*"))==" constraints.txt; }
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
"$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl $(pins diffusers open_clip_torch ftfy wcwidth importlib_metadata peft accelerate transformers tokenizers safetensors huggingface_hub)
ls -la .whl
