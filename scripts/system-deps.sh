#!/usr/bin/env bash
# Installs the Debian tools that the tests and the benchmark drive, when they are missing.
set -euo pipefail
need=()
# ip and iptables live in sbin, which a non-root PATH may lack.
have_sbin() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v prometheus-postgres-exporter >/dev/null 2>&1 || need+=(prometheus-postgres-exporter)
# The network-fault rig (tests/netfault): namespaces, veth, bridge; packet filters inside.
have_sbin ip || need+=(iproute2)
have_sbin iptables || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "need root to apt-get install ${need[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
