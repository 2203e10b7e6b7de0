#!/usr/bin/env bash
# Server CPU time per answered UDP query, two builds of failover-dns side by side
# (did a change cost the answer path anything?). The peers' harness data and
# measurement (../shared/bench: gen_data.py's 11k-record zone, 80% A / 10% AAAA /
# 10% NXDOMAIN queries; measure.py: dnsperf pinned to CPU 1, the server's CPU over the
# steady window): both builds serve the zone at once, each pinned to CPU 0 with one
# UDP socket, and are loaded in turn A B A B ... at the same fixed rate, then at full
# speed.
#
#   bench/dns-cpu-ab.sh OLD_BINARY [NEW_BINARY]     # NEW defaults to target/release
#   ROUNDS=5 DUR=20 QPS=50000 OLD_DESC="build of abc123" bench/dns-cpu-ab.sh BEFORE
#
# Results: bench/results/dns-cpu-ab/ (results.jsonl, raw/, summary.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
old=${1:?usage: dns-cpu-ab.sh OLD_BINARY [NEW_BINARY]}
new=${2:-$here/../target/release/failover-dns}
work=${WORK:-/tmp/failover-dns-ab}
out=${OUT:-$here/results/dns-cpu-ab}
rounds=${ROUNDS:-5} dur=${DUR:-20} qps=${QPS:-50000}
declare -A bin=([old]=$old [new]=$new) port=([old]=15316 [new]=15315) pid=()

rm -rf "$work" "$out/raw" "$out/results.jsonl"; mkdir -p "$work" "$out"
python3 "$shared/gen_data.py" "$work" >/dev/null
stop() { for s in "${!pid[@]}"; do kill "${pid[$s]}" 2>/dev/null || true; wait "${pid[$s]}" 2>/dev/null || true; done; }
trap stop EXIT
for s in old new; do
  FDNS_BIN=${bin[$s]} taskset -c 0 "$here/serve-bench-zone.sh" "$work" "${port[$s]}" \
    >"$work/$s.log" 2>&1 &
  pid[$s]=$!
done
for s in old new; do
  for _ in $(seq 100); do
    [[ $(dig +short +time=1 +tries=1 @127.0.0.1 -p "${port[$s]}" h5.bench.test A 2>/dev/null) == 10.0.0.5 ]] && break
    sleep 0.2
  done
  [[ $(dig +short @127.0.0.1 -p "${port[$s]}" h5.bench.test A) == 10.0.0.5 ]] || { echo "$s does not answer" >&2; exit 1; }
done
{
  echo "date: $(date -u +%FT%TZ)"
  echo "old: ${OLD_DESC:-$("$old" --version)}"
  echo "new: ${NEW_DESC:-$("$new" --version)}"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/versions.txt"
measure() {  # server phase label [args]
  python3 "$shared/measure.py" --server "$1" --phase "$2" --label "$3" --server-pid "${pid[$1]}" \
    --port "${port[$1]}" --queries "$work/queries.txt" --out-dir "$out" --duration "$dur" "${@:4}"
  sleep 2
}
for r in $(seq "$rounds"); do
  for s in old new; do measure "$s" common "common$qps-r$r-$s" --qps "$qps"; done
done
for r in $(seq "$rounds"); do
  for s in new old; do measure "$s" max "max-r$r-$s"; done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/versions.txt"
python3 - "$out" > "$out/summary.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/results.jsonl")]
print(open(sys.argv[1] + "/versions.txt").read())
print("| phase | build | runs | answered q/s (median) | server CPU µs per query: median (min–max) |")
print("|---|---|---|---|---|")
med = {}
for phase in ("common", "max"):
    for s in ("old", "new"):
        rs = [r for r in rows if r["phase"] == phase and r["server"] == s]
        us = [r["server_cpu_pct"] / 100 / r["qps"] * 1e6 for r in rs if r["qps"]]
        med[phase, s] = statistics.median(us)
        print(f"| {phase} | {s} | {len(rs)} | {statistics.median(r['qps'] for r in rs):,.0f} | "
              f"{med[phase, s]:.2f} ({min(us):.2f}–{max(us):.2f}) |")
for phase in ("common", "max"):
    print(f"\n{phase}: new / old CPU per query = {med[phase, 'new'] / med[phase, 'old']:.3f}")
PY
cat "$out/summary.md"
