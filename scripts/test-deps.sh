#!/usr/bin/env bash
# Installs the system packages some tests drive, so `npm test` runs them instead of
# skipping them: Debian's chromium (the console's browser tests), nftables/iptables,
# iproute2 and libfaketime (the fault-injection suite's partitions, loss and clock
# jumps). Idempotent and quick when everything is present. Needs root or passwordless
# sudo and Debian's apt; without them it says which tests will skip and carries on,
# because those tests skip with a reason rather than fail.
set -uo pipefail

missing=()
{ [ -x /usr/bin/chromium ] && /usr/bin/chromium --version >/dev/null 2>&1; } || missing+=(chromium fonts-dejavu-core)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing+=(libfaketime)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

skip() {
  echo "test-deps: $1; tests that need ${missing[*]} will skip and say why" >&2
  exit 0
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else skip "not root"; fi
fi
command -v apt-get >/dev/null 2>&1 || skip "no apt-get"

echo "test-deps: installing ${missing[*]} (apt-get)…" >&2
export DEBIAN_FRONTEND=noninteractive
# A stale package index is the usual cause of a failed install, so refresh it first.
"${SUDO[@]}" apt-get update -qq >/dev/null 2>&1 || skip "apt-get update failed"
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/commitlog-test-deps.log 2>&1; then
  tail -5 /tmp/commitlog-test-deps.log >&2
  skip "apt-get install failed (log: /tmp/commitlog-test-deps.log)"
fi
echo "test-deps: installed ${missing[*]}" >&2
