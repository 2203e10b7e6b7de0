#!/usr/bin/env bash
# Where a DNS server's CPU per query goes: user space (the server's own code) and
# kernel (UDP receive and send), from `perf record` samples of the server while
# dnsperf loads it. Same zone, queries and pinning as bench/dns-cpu.sh (server on
# CPU 0, dnsperf on CPU 1), gdnsd always included, servers taking turns each round.
#
#   bench/dns-profile.sh                                   # gdnsd vs target/release
#   bench/dns-profile.sh before=/path/to/old after=target/release/failover-dns
#   QPS=50000 ROUNDS=5 bench/dns-profile.sh                # a fixed rate instead of max
#
# Prints one line per server and round, then the medians. Needs root (perf), gdnsd
# and dnsperf (`INSTALL=1 bench/dns-cpu.sh` installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${SHARED_BENCH:-$here/../../shared/bench}
work=${WORK:-/tmp/failover-dns-profile}
rounds=${ROUNDS:-3} dur=${DUR:-10} hz=${HZ:-5000}
(($# > 0)) || set -- "failover-dns=$here/../target/release/failover-dns"

rm -rf "$work"; mkdir -p "$work"/gdnsd/zones
python3 "$shared/gen_data.py" "$work" >/dev/null
cp "$work/bench.test.zone" "$work/gdnsd/zones/bench.test"
python3 "$shared/zone_to_manifests.py" "$work/bench.test.zone" "$work/bench.manifests.yaml" 2>/dev/null
sed -e "s#@WORK@#$work#g" -e "s#@PORT@#15403#g" "$shared/configs/gdnsd/config" > "$work/gdnsd/config"

declare -A pid port
names=(gdnsd)
taskset -c 0 gdnsd -c "$work/gdnsd" start >/dev/null 2>&1 &
pid[gdnsd]=$! port[gdnsd]=15403
next=15404
for spec in "$@"; do
  name=${spec%%=*} binary=${spec#*=}
  names+=("$name") port[$name]=$next
  taskset -c 0 "$binary" serve --manifests "$work/bench.manifests.yaml" --zone bench.test \
    --dns-addr "127.0.0.1:$next" --admin-addr 127.0.0.1:0 --udp-sockets 1 >/dev/null 2>&1 &
  pid[$name]=$!
  next=$((next + 1))
done
trap 'kill "${pid[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
sleep 4

results=$work/results.txt
for round in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    taskset -c 1 dnsperf -s 127.0.0.1 -p "${port[$name]}" -d "$work/queries.txt" -l "$dur" -c 4 -q 200 \
      ${QPS:+-Q "$QPS"} > "$work/dnsperf.txt" &
    load=$!
    sleep 2
    perf record -F "$hz" -e cpu-clock -p "${pid[$name]}" -o "$work/perf.data" -- sleep $((dur - 4)) >/dev/null 2>&1
    wait "$load"
    qps=$(awk '/Queries per second/ {print $4}' "$work/dnsperf.txt")
    samples=$(perf script -i "$work/perf.data" -F ip 2>/dev/null | wc -l)
    user=$(perf report -i "$work/perf.data" --stdio --sort dso 2>/dev/null \
      | awk '/^ +[0-9]/ && !/kernel.kallsyms/ {sub("%", "", $1); s += $1} END {print s + 0}')
    python3 - "$round" "$name" "$qps" "$samples" "$user" "$hz" "$((dur - 4))" <<'EOF' | tee -a "$results"
import sys
r, name, qps, samples, user, hz, secs = sys.argv[1:]
per_query = int(samples) / int(hz) / int(secs) / float(qps) * 1e6
print(f"round {r} {name:14} qps {float(qps):9.0f}  CPU µs/query {per_query:6.3f}  user {float(user):4.1f} % = {per_query * float(user) / 100:.3f} µs")
EOF
    sleep 1
  done
done
echo "medians:"
for name in "${names[@]}"; do
  python3 - "$name" "$results" <<'EOF'
import re, statistics, sys
name, path = sys.argv[1:]
rows = [l for l in open(path) if l.split()[2] == name]
cpu = statistics.median(float(re.search(r"CPU µs/query +([\d.]+)", l).group(1)) for l in rows)
user = statistics.median(float(re.search(r"= ([\d.]+) µs", l).group(1)) for l in rows)
print(f"  {name:14} CPU µs/query {cpu:.3f}  of which user space {user:.3f}")
EOF
done
