#!/usr/bin/env bash
# Serves the peers' benchmark zone with failover-dns, for ../shared/bench/run.sh:
#   serve-bench-zone.sh WORK PORT
# turns WORK/bench.test.zone into FailoverRecord manifests (Simple policy) and runs
# the release binary (or FDNS_BIN) with one UDP socket (one serving thread, like the peers' single
# worker) on 127.0.0.1:PORT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$1 port=$2
shared=${SHARED_BENCH:-$here/../../shared/bench}
python3 "$shared/zone_to_manifests.py" "$work/bench.test.zone" "$work/bench.manifests.yaml" 2>/dev/null
exec "${FDNS_BIN:-$here/../target/release/failover-dns}" serve \
  --manifests "$work/bench.manifests.yaml" --zone bench.test \
  --dns-addr "127.0.0.1:$port" --admin-addr 127.0.0.1:0 \
  --udp-sockets 1 --udp-engine "${UDP_ENGINE:-fast}"
