#!/usr/bin/env bash
# Runs every test of failover-dns. Installs what the tests need when it is missing
# (dig, from Debian's dnsutils), so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dig >/dev/null 2>&1; then
  echo "installing dnsutils (dig) for the end-to-end tests" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dnsutils >/dev/null
fi

cargo test --locked "$@"
