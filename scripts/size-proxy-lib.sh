# shellcheck shell=bash
# Sourced by the image-size proxies (check-backend-size.sh, check-ml-api-size.sh) after they set $UV: their output
# lines, and a venv that holds exactly a lock, installed the way the Dockerfiles install one, kept until it changes.

fail() {
  echo "  FAIL $*" >&2
  exit 1
}
ok() { echo "  ok  $*"; }

export UV_PYTHON_DOWNLOADS=never
[[ -x $UV ]] || fail "$UV not found; run \`make check-deploy\` (it installs uv into .tools)"

# lock_venv VENV PYTHON LOCK FORBIDDEN: (re)build VENV from LOCK unless it was built from this very file, then fail
# unless it holds exactly the lock and no distribution whose name matches the regex FORBIDDEN.
lock_venv() {
  local venv=$1 python=$2 lock=$3 forbidden=$4 stamp want installed bad
  stamp="$venv/.lock-sha256"
  want=$(sha256sum "$lock" | cut -d' ' -f1)
  if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
    rm -rf "$venv"
    "$UV" venv -q --python "$python" "$venv"
    # Same flags as the Dockerfiles. A package without a cp3xx manylinux wheel fails here, as it would in the build.
    "$UV" pip sync -q --python "$venv/bin/python" --require-hashes --only-binary :all: --compile-bytecode "$lock"
    echo "$want" >"$stamp"
  fi
  ok "$lock installs from wheels alone, hashes checked ($venv)"
  installed=$("$UV" pip list -q --python "$venv/bin/python" --format freeze | cut -d= -f1 | tr 'A-Z_' 'a-z-' | sort)
  bad=$(grep -E "$forbidden" <<<"$installed" || true)
  [[ -z $bad ]] || fail "$venv holds: $(tr '\n' ' ' <<<"$bad")"
  [[ $installed == "$(lock_names "$lock")" ]] || fail "installed distributions differ from $lock"
}

# The distribution names a lock pins, normalised and sorted.
lock_names() { grep -oE '^[A-Za-z0-9_.-]+==' "$1" | tr -d = | tr 'A-Z_' 'a-z-' | sort; }
