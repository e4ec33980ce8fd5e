#!/usr/bin/env bash
# Image-size proxy of the backend, run by scripts/check-deploy.sh (no Docker engine is needed or used).
# Installs backend/requirements/prod.txt the way backend/Dockerfile does (uv pip sync --require-hashes
# --only-binary :all:, bytecode compiled) into a throw-away venv, then checks that
#   - no torch / CUDA / triton / onnxruntime / transformers distribution is in it,
#   - the app imports and starts its CLI with it alone (nothing the image needs lives only in the dev lock),
#   - the venv, which is what the image adds to its base besides ~1 MiB of app, stays under the budget below.
# The venv is kept in .bench/ and rebuilt only when the lock changes (scripts/size-proxy-lib.sh, shared with
# check-ml-api-size.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- the budget, in one place -----------------------------------------------------------------------------------
# Image target: < 500 MB. python:3.11-slim-bookworm is about 125 MiB unpacked and the app under 1 MiB, so the venv
# may take 320 MiB: 320 + 125 + 1 = 446 MiB, leaving room for growth before the image reaches the target. (300 until
# access control: Authlib's OIDC client needs cryptography, 16 of the 22 MiB it added.)
VENV_BUDGET_MIB=${BACKEND_VENV_BUDGET_MIB:-320}
BASE_IMAGE_MIB=125
IMAGE_TARGET_MB=500
# ------------------------------------------------------------------------------------------------------------------

UV=${UV:-.tools/bin/uv}
PYTHON=${BACKEND_SIZE_PYTHON:-python3}
VENV=${BACKEND_SIZE_VENV:-.bench/backend-prod-venv}
LOCK=backend/requirements/prod.txt
DOCKERFILE=backend/Dockerfile
FORBIDDEN='^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*|jax|jaxlib|tensorflow.*|onnxruntime.*|transformers|sentence-transformers|flagembedding)$'

# shellcheck source=/dev/null
source scripts/size-proxy-lib.sh

# The measurement is honest only with the image's Python: the Dockerfile's base, the lock's target and the local
# interpreter must be the same minor version.
base_minor=$(sed -n 's/^FROM python:\([0-9]*\.[0-9]*\)\..*-slim.* AS base$/\1/p' "$DOCKERFILE")
local_minor=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ -n $base_minor ]] || fail "$DOCKERFILE: no 'FROM python:X.Y.Z-slim... AS base' line"
[[ $base_minor == "$local_minor" ]] ||
  fail "$DOCKERFILE uses Python $base_minor but $PYTHON is $local_minor: compile $LOCK for $local_minor and match the base"
ok "image base Python $base_minor = local Python $local_minor"

lock_venv "$VENV" "$PYTHON" "$LOCK" "$FORBIDDEN"
ok "$(lock_names "$LOCK" | wc -l) distributions, exactly the lock; no torch, CUDA, triton, onnxruntime or transformers"

PYTHONPATH=backend "$VENV/bin/python" -c "import rag_backend.api.app, rag_backend.cli" ||
  fail "rag_backend does not import with $LOCK alone"
PYTHONPATH=backend "$VENV/bin/python" -m rag_backend --help >/dev/null || fail "python -m rag_backend --help failed"
ok "the app imports and its CLI starts with the production lock alone"

bytes=$(du -sb "$VENV" | cut -f1)
mib=$(((bytes + 1048575) / 1048576))
estimate=$((mib + BASE_IMAGE_MIB + 1))
echo "  backend venv: ${mib} MiB (budget ${VENV_BUDGET_MIB} MiB); image estimate ${estimate} MiB =" \
  "venv + ${BASE_IMAGE_MIB} MiB base + 1 MiB app (target < ${IMAGE_TARGET_MB} MB)"
((mib <= VENV_BUDGET_MIB)) || fail "backend venv ${mib} MiB is over its budget of ${VENV_BUDGET_MIB} MiB"
ok "backend venv ${mib} MiB <= ${VENV_BUDGET_MIB} MiB budget"
