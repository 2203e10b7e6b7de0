#!/usr/bin/env python3
"""Failover / failback time of failover-dns, in the peers' scenario, in the same run.

Scenario and trial loop are those of the shared peers' driver
(../shared/bench/failover/run_failover.py, imported as a module, see
../shared/bench/ANCHORS-FAILOVER.md):

  www.example.internal A -> PRIMARY 127.0.0.11 while http://127.0.0.11:28080/health
  answers 200, else SECONDARY 127.0.0.12.  Each target is its own python http.server
  process (the shared health_target.py).  One trial: wait for {PRIMARY}; poll for
  U(0, J) s (J = the check interval); SIGTERM the primary target and reap it (t0);
  poll every 5 ms until {SECONDARY} holds for 1 s (failover = first poll of that
  streak - t0); wait U(0, J) s, restart the primary, poll until {PRIMARY} holds
  (failback).

failover-dns runs standalone (release binary target/release/failover-dns) from a
manifest written here: one HTTP HealthCheck (ipAddress 127.0.0.11, port 28080,
resourcePath /health) and a PRIMARY/SECONDARY pair of Failover records, TTL 1.
Variants:
  fodns-200ms-x1   requestInterval 200ms, failureThreshold 1
  fodns-1s-x3      requestInterval 1s,    failureThreshold 3
  gdnsd-simplefo   the shared driver's variant (when gdnsd is installed)
  pdns             the shared driver's variant (when pdns_server + bind backend are installed)

Usage:
  bench/failover/run.py                         # all variants installed, default trials
  bench/failover/run.py --trials 5              # every variant 5 trials
  bench/failover/run.py --variants fodns-1s-x3 --trials 3
  bench/failover/run.py --build                 # cargo build --release first (nice -n 19)

Needs dnspython (pip install dnspython, or python3-dnspython for /usr/bin/python3).
Peers: apt-get install -y gdnsd pdns-server pdns-backend-bind.
Only 127.0.0.0/8 is used.  Every process started is stopped by its PID.
Writes bench/failover/results/<variant>.json and results/summary.{json,md};
server logs under /tmp/fobench/<variant>/.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DEFAULT_SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "bench", "failover"))
BINARY = os.path.join(REPO, "target", "release", "failover-dns")


def import_driver(path):
    if not os.path.isfile(os.path.join(path, "run_failover.py")):
        sys.exit(f"shared driver not found: {path}/run_failover.py (use --shared DIR)")
    sys.path.insert(0, path)
    try:
        import run_failover
    except ImportError as e:  # dnspython, most likely
        sys.exit(f"cannot import the shared driver: {e} (pip install dnspython)")
    return run_failover


FODNS = dict(server="failover-dns", dns_port=25355, admin_port=28053, record_ttl=1, settle=0.0)
FODNS_VARIANTS = {
    "fodns-200ms-x1": dict(FODNS, interval=0.2, threshold=1,
                           desc="failover-dns, HTTP check requestInterval 200ms, failureThreshold 1, TTL 1"),
    "fodns-1s-x3": dict(FODNS, interval=1.0, threshold=3,
                        desc="failover-dns, HTTP check requestInterval 1s, failureThreshold 3, TTL 1"),
}
PEER_VARIANTS = ["gdnsd-simplefo", "pdns"]
DEFAULT_TRIALS = {"fodns-200ms-x1": 20, "fodns-1s-x3": 20, "gdnsd-simplefo": 10, "pdns": 10}

MANIFEST = """\
apiVersion: failoverdns.io/v1alpha1
kind: HealthCheck
metadata: {{name: web-primary, namespace: default}}
spec: {{type: HTTP, ipAddress: "{primary}", port: {http_port}, resourcePath: /health,
        requestInterval: {interval_ms}ms, failureThreshold: {threshold}}}
---
apiVersion: failoverdns.io/v1alpha1
kind: FailoverRecord
metadata: {{name: www-primary, namespace: default}}
spec: {{name: www.example.internal, type: A, ttl: {ttl}, routingPolicy: Failover, setIdentifier: primary,
        failover: PRIMARY, healthCheckName: web-primary, values: ["{primary}"]}}
---
apiVersion: failoverdns.io/v1alpha1
kind: FailoverRecord
metadata: {{name: www-secondary, namespace: default}}
spec: {{name: www.example.internal, type: A, ttl: {ttl}, routingPolicy: Failover, setIdentifier: secondary,
        failover: SECONDARY, values: ["{secondary}"]}}
"""


def peers_installed():
    have = {"gdnsd-simplefo": shutil.which("gdnsd") is not None}
    bind_backend = glob.glob("/usr/lib/*/pdns/libbindbackend.so") + glob.glob("/usr/lib/pdns/libbindbackend.so")
    have["pdns"] = shutil.which("pdns_server") is not None and bool(bind_backend)
    return have


def ensure_binary(build):
    if build or not os.path.exists(BINARY):
        print("building the release binary (nice -n 19 cargo build --release)", flush=True)
        subprocess.run(["nice", "-n", "19", "cargo", "build", "--release"], cwd=REPO, check=True)
    built = os.path.getmtime(BINARY)
    newest = max(os.path.getmtime(p) for p in glob.glob(os.path.join(REPO, "src", "**", "*.rs"), recursive=True))
    if newest > built:
        print(f"WARNING: {BINARY} is older than the sources; rerun with --build to measure them", flush=True)


def install_failover_dns(rf, current):
    """Teach the shared driver to start failover-dns (its start_server knows gdnsd and
    pdns only), and scrape /metrics just before the server is stopped."""
    orig_start, orig_stop = rf.start_server, rf.stop

    def start_server(v, workdir):
        if v["server"] != "failover-dns":
            return orig_start(v, workdir)
        mdir = os.path.join(workdir, "manifests")
        os.makedirs(mdir, exist_ok=True)
        with open(os.path.join(mdir, "www.yaml"), "w") as f:
            f.write(MANIFEST.format(primary=rf.PRIMARY, secondary=rf.SECONDARY, http_port=rf.HTTP_PORT,
                                    interval_ms=round(v["interval"] * 1000), threshold=v["threshold"],
                                    ttl=v["record_ttl"]))
        log = open(os.path.join(workdir, "server.log"), "w")
        cmd = [BINARY, "serve", "--manifests", mdir, "--zone", "example.internal",
               "--dns-addr", f"{rf.DNS_ADDR}:{v['dns_port']}", "--admin-addr", f"127.0.0.1:{v['admin_port']}"]
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        rf.STARTED.append(p)
        current.clear()
        current.update(proc=p, admin_port=v["admin_port"])
        return p

    def stop(proc, grace=5.0):
        if proc is not None and proc is current.get("proc") and proc.poll() is None:
            current["metrics"] = scrape_metrics(current["admin_port"])
        return orig_stop(proc, grace)

    rf.start_server, rf.stop = start_server, stop


def scrape_metrics(admin_port):
    """The prober's counters, from the admin endpoint's Prometheus text."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError as e:
        return {"error": str(e)}
    out = {}
    for line in text.splitlines():
        if line.startswith(("failoverdns_probe_results_total", "failoverdns_probe_early_total",
                            "failoverdns_health_check_transitions_total")):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def summarize(rf, trials):
    fo = [t["failover_ms"] for t in trials]
    fb = [t["failback_ms"] for t in trials]
    return dict(
        n=len(trials),
        failover=dict(median=statistics.median(fo), p90=rf.pct(fo, 90), p99=rf.pct(fo, 99), min=min(fo), max=max(fo)),
        failover_first_median=statistics.median(t["failover_first_ms"] for t in trials),
        failback=dict(median=statistics.median(fb), max=max(fb)),
        wrong_after_failover=sum(t["failover_flaps"] for t in trials),
        wrong_after_failback=sum(t["failback_flaps"] for t in trials),
        wrong_before_kill=sum(t["pre_kill_wrong_answers"] for t in trials),
    )


def table(rows):
    out = ["| variant | n | failover median | p90 | p99 | min | max | failback median | failback max "
           "| wrong answers after first switch (failover / failback) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in rows:
        f = s["failover"]
        out.append(f"| {name} | {s['n']} | {f['median']:.0f} | {f['p90']:.0f} | {f['p99']:.0f} | {f['min']:.0f} "
                   f"| {f['max']:.0f} | {s['failback']['median']:.0f} | {s['failback']['max']:.0f} "
                   f"| {s['wrong_after_failover']} / {s['wrong_after_failback']} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", default=None,
                    help="default: both failover-dns variants, plus each peer that is installed")
    ap.add_argument("--trials", type=int, default=None, help="trials per variant (default 20 failover-dns, 10 peers)")
    ap.add_argument("--stable", type=float, default=1.0, help="answer must stay the new one this long (s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--shared", default=DEFAULT_SHARED, help="directory of the shared run_failover.py")
    ap.add_argument("--build", action="store_true", help="nice -n 19 cargo build --release first")
    a = ap.parse_args()

    rf = import_driver(a.shared)
    rf.VARIANTS.update(FODNS_VARIANTS)
    installed = peers_installed()
    if a.variants is None:
        a.variants = list(FODNS_VARIANTS)
        for peer in PEER_VARIANTS:
            if installed[peer]:
                a.variants.append(peer)
            else:
                print(f"skipping {peer}: not installed (apt-get install -y gdnsd pdns-server pdns-backend-bind)")
    unknown = [v for v in a.variants if v not in rf.VARIANTS]
    if unknown:
        sys.exit(f"unknown variants {unknown}; known: {sorted(rf.VARIANTS)}")
    if any(v in FODNS_VARIANTS for v in a.variants):
        ensure_binary(a.build)

    current = {}
    install_failover_dns(rf, current)
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(rf.TMP, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows, summary = [], {}
    t_start = time.time()
    try:
        for name in a.variants:
            n = a.trials or DEFAULT_TRIALS.get(name, 10)
            print(f"== {name}: {rf.VARIANTS[name]['desc']} ({n} trials)", flush=True)
            res = rf.run_variant(name, n, a.stable, a.seed)
            s = summarize(rf, res["trials"])
            if name in FODNS_VARIANTS:
                res["metrics"] = current.get("metrics")
                s["metrics"] = res["metrics"]
            res["bench_summary"] = s
            with open(os.path.join(a.out, f"{name}.json"), "w") as f:
                json.dump(res, f, indent=1)
            rows.append((name, s))
            summary[name] = dict(desc=res["desc"], summary=s, check_log=res["check_log"])
            print(table([(name, s)]).splitlines()[-1], flush=True)
    finally:
        rf.stop_all()
    md = table(rows)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(md + "\n")
    print(f"\nall times in ms; {time.time() - t_start:.0f} s in all\n{md}")
    for name, s in rows:
        if s.get("metrics"):
            m = s["metrics"]
            early = m.get("failoverdns_probe_early_total")
            print(f"{name}: early (burst) probes {early}, probe results "
                  f"{ {k.split('reason=')[-1].rstrip('}'): v for k, v in m.items() if 'results' in k} }")


if __name__ == "__main__":
    main()
