#!/usr/bin/env bash
# `npm run test:image`: builds the image (scripts/image.sh), then runs its smoke tests
# under podman. Needs root (or rootless podman) and curl.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v curl >/dev/null || { echo "test:image needs curl" >&2; exit 1; }
export CONTAINERS_CONF="$root/deploy/podman/containers.conf"
# The smoke tests remove what they create; this catches what a run that died left
# behind (everything they create carries the io.commitlog.smoke label).
cleanup() {
  local ids
  ids=$(podman ps --all --quiet --filter label=io.commitlog.smoke) || return 0
  [ -z "$ids" ] || podman rm --force --volumes --time 0 $ids >/dev/null 2>&1 || true
  ids=$(podman network ls --quiet --filter label=io.commitlog.smoke) || return 0
  [ -z "$ids" ] || podman network rm --force $ids >/dev/null 2>&1 || true
  ids=$(podman volume ls --quiet --filter label=io.commitlog.smoke) || return 0
  [ -z "$ids" ] || podman volume rm --force $ids >/dev/null 2>&1 || true
}
trap cleanup EXIT
start=$(date +%s)
bash scripts/image.sh
echo "image: build step $(($(date +%s) - start)) s" >&2
node --enable-source-maps --test --test-reporter=spec dist/test/deploy/image.smoke.js
echo "image: build and smoke tests $(($(date +%s) - start)) s" >&2
