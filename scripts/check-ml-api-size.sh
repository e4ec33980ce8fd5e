#!/usr/bin/env bash
# Size proxy of ml-api's slim (torch-free) variant, run by scripts/check-deploy.sh and used by
# ml-api/tests/test_slim.py (no Docker engine is needed or used).
# Installs ml-api/requirements/cpu-slim.txt the way ml-api/Dockerfile installs a lock (uv pip sync --require-hashes
# --only-binary :all:, bytecode compiled) into a venv kept in .bench/ (rebuilt only when the lock changes), then
#   - checks that no torch / FlagEmbedding / transformers / CUDA wheel is in it, and exactly the lock is;
#   - checks that the service imports with it alone (`ml-api serve` on ONNX models needs nothing else);
#   - checks that the venv stays under the budget below, and prints its size.
# Then, for information only: gpu-slim.txt (Python 3.12, which may be missing here) installed with
# `uv pip install --target --python-platform --python-version` plus its bytecode compiled by the local Python
# (an estimate: no interpreter files), and the full CPU venv (ml-api/.venv, with the dev tools) for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- the budget, in one place (MB = 10^6 bytes, as the issue states it) -------------------------------------------
SLIM_BUDGET_MB=${ML_API_SLIM_BUDGET_MB:-600}
# ------------------------------------------------------------------------------------------------------------------

UV=${UV:-.tools/bin/uv}
PYTHON=${ML_API_SIZE_PYTHON:-python3}
VENV=${ML_API_SLIM_VENV:-.bench/ml-api-slim-venv}
GPU_TARGET=${ML_API_GPU_SLIM_TARGET:-.bench/ml-api-gpu-slim-target}
LOCK=ml-api/requirements/cpu-slim.txt
GPU_LOCK=ml-api/requirements/gpu-slim.txt
FORBIDDEN='^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*|transformers|sentence-transformers|flagembedding|accelerate|peft)$'

# shellcheck source=/dev/null
source scripts/size-proxy-lib.sh
mb() { du -sb "$1" | awk '{printf "%d", ($1 + 999999) / 1000000}'; }

# The lock is compiled for one Python (the Makefile's `lock` target); measure with that one.
want_minor=$(grep -B2 -- '-o requirements/cpu-slim.txt' Makefile | grep -oE -- '--python-version [0-9.]+' | cut -d' ' -f2)
local_minor=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ -n $want_minor ]] || fail "Makefile: no --python-version on the line that compiles cpu-slim.txt"
[[ $want_minor == "$local_minor" ]] || fail "$LOCK is compiled for Python $want_minor but $PYTHON is $local_minor"
ok "$LOCK targets Python $want_minor = local Python $local_minor"

for lock in "$LOCK" "$GPU_LOCK"; do
  bad=$(lock_names "$lock" | grep -E "$FORBIDDEN" || true)
  [[ -z $bad ]] || fail "$lock holds: $(tr '\n' ' ' <<<"$bad")"
done
ok "$LOCK and $GPU_LOCK lock no torch, FlagEmbedding, transformers or CUDA wheels"

lock_venv "$VENV" "$PYTHON" "$LOCK" "$FORBIDDEN"
ok "$(lock_names "$LOCK" | wc -l) distributions, exactly the lock"

# What `ml-api serve` imports, with none of the full variant's packages importable or loaded.
PYTHONPATH=ml-api "$VENV/bin/python" - <<'EOF' || fail "ml_api does not import with $LOCK alone, or loads torch"
import importlib.util
import sys

import ml_api.api.app, ml_api.cli, ml_api.engine, ml_api.onnx_reranker  # noqa: E401, F401

full_only = ("torch", "transformers", "FlagEmbedding")
assert not [m for m in full_only if importlib.util.find_spec(m)], "a full-variant package is importable"
assert not [m for m in sys.modules if m.split(".")[0] in full_only], "a full-variant package was loaded"
EOF
PYTHONPATH=ml-api "$VENV/bin/python" -m ml_api --help >/dev/null || fail "python -m ml_api --help failed"
ok "the service imports and its CLI starts with the slim lock alone; torch is not importable"

size=$(mb "$VENV")
echo "  slim CPU venv ($LOCK, Python $local_minor, bytecode compiled): ${size} MB (budget ${SLIM_BUDGET_MB} MB)"
((size <= SLIM_BUDGET_MB)) || fail "slim CPU venv ${size} MB is over its budget of ${SLIM_BUDGET_MB} MB"
ok "slim CPU venv ${size} MB <= ${SLIM_BUDGET_MB} MB budget"

# --- for information: the slim GPU lock and the full CPU venv -------------------------------------------------------
gpu_python=$(grep -B2 -- '-o requirements/gpu-slim.txt' Makefile | grep -oE -- '--python-version [0-9.]+' | cut -d' ' -f2)
gpu_stamp="$GPU_TARGET/.lock-sha256"
gpu_want=$(sha256sum "$GPU_LOCK" | cut -d' ' -f1)
if [[ $(cat "$gpu_stamp" 2>/dev/null) != "$gpu_want" ]]; then
  rm -rf "$GPU_TARGET"
  if "$UV" pip install -q --target "$GPU_TARGET" --python-platform x86_64-manylinux_2_28 \
    --python-version "$gpu_python" --require-hashes --only-binary :all: -r "$GPU_LOCK" 2>"$VENV/.gpu-install.log"; then
    "$PYTHON" -m compileall -q "$GPU_TARGET" >/dev/null 2>&1 || true
    echo "$gpu_want" >"$gpu_stamp"
  fi
fi
if [[ -f $gpu_stamp ]]; then
  echo "  slim GPU venv ($GPU_LOCK, Python $gpu_python) estimate: $(mb "$GPU_TARGET") MB =" \
    "--target install for manylinux/cp${gpu_python/./} + bytecode compiled by Python $local_minor (no budget)"
else
  echo "  skip slim GPU estimate: $GPU_LOCK could not be installed here ($(tail -1 "$VENV/.gpu-install.log"))"
fi
[[ -d ml-api/.venv ]] && echo "  full CPU venv (ml-api/.venv: requirements/cpu.txt, dev tools included): $(mb ml-api/.venv) MB"
exit 0
