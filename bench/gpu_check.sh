#!/usr/bin/env bash
# One-command GPU check for issue #5 (about 6-9 minutes on one H100):
#   1. the CUDA tests of the fast path (tests/test_fast.py; the torch.compile test is left to step 2),
#   2. the benchmark on the 256² CelebA-HQ architecture in the reference, fast and cuda-max modes,
#      with the issue's targets checked (exit status 1 if one fails),
#   3. LoRA at the 256² architecture (issue 24): one full-mode update with checkpointing, peak in fp32 and bf16.
# Prints the tables; writes bench/results-<gpu>.json, and copies it and the log to $OUT when set.
#
# On a bare GPU image without diffusers/open_clip: run bench/fetch_wheels.sh first where pip can
# reach the registry; the wheels in .whl/ are installed to /tmp/dclip-site here (no network needed).
# Extra benchmark flags: BENCH_ARGS="--quick" bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONUNBUFFERED=1 DCLIP_PROGRESS=0 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"

if ! "$PY" -c "import diffusers, open_clip" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/dclip-site .whl/*.whl
    export PYTHONPATH="$PWD:/tmp/dclip-site:${PYTHONPATH}"
  else
    echo "diffusers/open_clip missing: run bench/fetch_wheels.sh where pip works, and carry .whl" >&2
    exit 2
  fi
fi
"$PY" - <<'PY'
import torch, diffusers
assert torch.cuda.is_available(), "no CUDA device visible"
print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | CUDA {torch.version.cuda} | diffusers {diffusers.__version__}")
PY

LOG=${OUT:-/tmp}/gpu_check.log
{
  set +e
  echo "== 1/3 CUDA tests of the fast path"
  "$PY" -m pytest tests/test_fast.py -q -p no:cacheprovider -k "not compiled" -rs
  tests=$?
  echo "== 2/3 benchmark (reference vs fast vs cuda-max) with target checks"
  "$PY" bench/bench.py --check-targets --max --ablate ${BENCH_ARGS:-}
  bench=$?
  echo "== 3/3 LoRA at 256²: adapter size, CPU-method estimate and the measured CUDA peak (fp32, bf16)"
  "$PY" bench/recipes.py --memory-256 | tee "${OUT:-/tmp}/lora_memory_256.json"
  [ -n "${OUT:-}" ] && cp bench/results-*.json "$OUT"/ 2>/dev/null
  echo "== tests exit $tests, benchmark/targets exit $bench"
  [ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
} 2>&1 | tee "$LOG"
