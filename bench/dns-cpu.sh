#!/usr/bin/env bash
# Server CPU time per answered query: failover-dns against established servers, in
# one alternating run of the peers' harness (../shared/bench/run.sh): each server
# pinned to CPU 0, dnsperf to CPU 1, the 11k-record benchmark zone, 100k queries
# (80% A, 10% AAAA, 10% NXDOMAIN).
#
#   bench/dns-cpu.sh                          # gdnsd vs failover-dns, 3 rounds of 20 s
#   SERVERS="gdnsd nsd knot pdns" bench/dns-cpu.sh
#   UDP_ENGINE=hickory bench/dns-cpu.sh       # the hickory-server UDP path instead
#   INSTALL=1 bench/dns-cpu.sh                # apt-get install dnsperf and the peers first
#
# Results land in bench/results/dns-cpu/ (summary.md is the table).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
[[ -x $here/../target/release/failover-dns ]] || (cd "$here/.." && cargo build --release)
export SHARED_BENCH=$shared
export SERVERS=${SERVERS:-gdnsd}
export NEW_CMD="$here/serve-bench-zone.sh @WORK@ @PORT@"
export NEW_VERSION="failover-dns $(cd "$here/.." && git describe --always --dirty 2>/dev/null || echo dev) (udp engine ${UDP_ENGINE:-fast})"
export OUT=${OUT:-$here/results/dns-cpu${UDP_ENGINE:+-$UDP_ENGINE}}
export WORK=${WORK:-/tmp/failover-dns-bench}
exec "$shared/run.sh"
