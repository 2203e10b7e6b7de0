#!/usr/bin/env bash
# Runs every test of failover-dns. Installs what the tests need when it is missing
# (dig from Debian's dnsutils, openssl; etcd, kube-apiserver, kubectl, helm, CoreDNS and
# promtool built once from Go modules into a cache outside the repository), so it works
# on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v dig >/dev/null 2>&1 || packages+=(dnsutils)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing ${packages[*]} for the tests" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# The cluster and deployment tests run a real API server, helm and CoreDNS, the
# monitoring test promtool; a no-op when the cached binaries are current.
./scripts/control-plane.sh build

cargo test --locked "$@"
