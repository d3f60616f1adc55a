#!/usr/bin/env bash
# `npm run test:image`: builds the image (scripts/image.sh), then runs its smoke tests
# under podman. Needs root (or rootless podman) and curl.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v curl >/dev/null || { echo "test:image needs curl" >&2; exit 1; }
start=$(date +%s)
bash scripts/image.sh
echo "image: build step $(($(date +%s) - start)) s" >&2
node --enable-source-maps --test --test-reporter=spec dist/test/deploy/image.smoke.js
echo "image: build and smoke tests $(($(date +%s) - start)) s" >&2
