#!/bin/sh
# Installs what the chaos suite uses on a Debian/Ubuntu host (run as root):
# ip (iproute2) for namespaces, veths and bridges, tc for tbf rate limits, and
# nftables (iptables as the fallback) for partitions and packet loss, libfaketime for
# clock jumps.
set -eu
missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v iptables >/dev/null 2>&1 || missing="$missing iptables"
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing="$missing libfaketime"
if [ -z "$missing" ]; then
  echo "chaos-setup: ip, tc, nft, iptables and libfaketime are present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "chaos-setup: need root to install:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "chaos-setup: installed$missing"
