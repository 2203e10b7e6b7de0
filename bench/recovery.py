#!/usr/bin/env python3
"""Watch recovery: how soon is an edit served after an API-server outage? (issue 20)

A real kube-apiserver + etcd (scripts/control-plane.sh) holds --records FailoverRecords
plus the one that is edited; each --binary runs in cluster mode against it, all at
once (each with a Lease and CheckerReports of its own), so every build sees the same
outages. Each trial:

  1. stops the API server (etcd keeps the data) for OUTAGE seconds, polling every
     server's /readyz once a second meanwhile;
  2. starts it again (`control-plane.sh start-apiserver` returns once its /readyz
     answers) and at once PATCHes the record's value (retried while the server still
     refuses it);
  3. polls every server's DNS every 5 ms until it answers the new value: the time
     from the PATCH's acknowledgement (and from the API server's readiness) to that
     answer is the recovery time;
  4. reads `failoverdns_source_stale_seconds{kind}` just before the restart (the
     outage as the server saw it) and polls it until every kind is 0 again (builds
     without the metric report none).

Outages alternate in the order given, --trials times over. Goal (spec section 10):
an edit made after an outage of any length is served within 5 s.

Usage:
  bench/recovery.py [--outages 120,10] [--trials 5] [--records 1000]
                    [--binary target/release/failover-dns]... [--label NAME]
Writes bench/results/recovery/<date>[-label].json and prints a Markdown summary.
Only 127.0.0.1 is used; every process it starts is stopped.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cluster import GROUP, SCRIPT, Api, control_plane, http_get, record_object, stop  # noqa: E402
from scale import BINARY, free_port, query  # noqa: E402

ZONE = "recovery.test"
NS = "bench"
HOST = f"edit.{ZONE}"
KINDS = ("HealthCheck", "FailoverRecord", "CheckerReport")
SERVED_BOUND = 240.0


class Server:
    """The binary in cluster mode against `kubeconfig`, with its own Lease and log (also
    bench/budget.py's). `label` defaults to what the binary's name adds to failover-dns."""

    def __init__(self, binary, kubeconfig, directory, label=None, zone=ZONE, extra=()):
        self.label = label or os.path.basename(binary).replace("failover-dns", "").strip("-") or "current"
        self.dns, self.admin = free_port(), free_port()
        self.log = os.path.join(directory, f"server-{self.label}.log")
        command = [binary, "serve", "--zone", zone, "--dns-addr", f"127.0.0.1:{self.dns}",
                   "--admin-addr", f"127.0.0.1:{self.admin}", "--lease-name", f"bench-{self.label}", *extra]
        env = {**os.environ, "KUBECONFIG": kubeconfig, "POD_NAME": f"bench-{self.label}"}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL, env=env)

    def answer(self, host=HOST):
        return query(self.dns, host, timeout=0.2)

    def readyz(self):
        try:
            return http_get(self.admin, "/readyz")[0]
        except OSError:
            return 0

    def stale(self):
        """{kind: seconds}, empty for a build without the metric."""
        try:
            _, text = http_get(self.admin, "/metrics")
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("failoverdns_source_stale_seconds{"):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                out[kind] = float(line.rsplit(" ", 1)[1])
        return out


def wait_until(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def patch(api, value):
    """The edit, as soon as the API server takes it; the time of its acknowledgement."""
    deadline = time.monotonic() + 60
    while True:
        body = {"spec": {"values": [value]}}
        status, out = api.call("PATCH", f"{GROUP}/namespaces/{NS}/failoverrecords/edit", body,
                               "application/merge-patch+json")
        if status == 200:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"PATCH kept failing: {status} {out}")
        time.sleep(0.05)


def trial(cp_dir, api, servers, outage, value):
    subprocess.run(["bash", SCRIPT, "stop-apiserver", cp_dir], check=True)
    stopped = time.monotonic()
    not_ready = {s.label: 0 for s in servers}
    while time.monotonic() - stopped < outage:
        for s in servers:
            if s.readyz() != 200:
                not_ready[s.label] += 1
        time.sleep(max(0.0, min(1.0, outage - (time.monotonic() - stopped))))
    stale_before = {s.label: s.stale() for s in servers}
    subprocess.run(["bash", SCRIPT, "start-apiserver", cp_dir], check=True, stdout=subprocess.DEVNULL)
    ready = time.monotonic()
    ready_at = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
    acknowledged = patch(api, value)
    served, current = {}, {}
    deadline = ready + SERVED_BOUND
    next_stale = 0.0
    while time.monotonic() < deadline and (len(served) < len(servers) or len(current) < len(servers)):
        for s in servers:
            if s.label not in served and s.answer() == [value]:
                served[s.label] = time.monotonic()
        if time.monotonic() >= next_stale:
            next_stale = time.monotonic() + 0.1
            for s in servers:
                if s.label not in current:
                    stale = s.stale()
                    if not stale or all(v == 0 for v in stale.values()):
                        current[s.label] = time.monotonic()
        time.sleep(0.005)
    result = {"outage_s": outage, "ready_at": ready_at, "ack_after_ready_s": round(acknowledged - ready, 3),
              "servers": {}}
    for s in servers:
        r = {"readyz_not_200_during_outage": not_ready[s.label],
             "stale_s_at_restart": stale_before[s.label] or None}
        if s.label in served:
            r["served_after_ack_s"] = round(served[s.label] - acknowledged, 3)
            r["served_after_ready_s"] = round(served[s.label] - ready, 3)
        else:
            r["served_after_ack_s"] = None
        if stale_before[s.label] and s.label in current:
            r["current_after_ready_s"] = round(current[s.label] - ready, 3)
        result["servers"][s.label] = r
    return result


def summary(trials, labels):
    rows = []
    for outage in sorted({t["outage_s"] for t in trials}, reverse=True):
        for label in labels:
            ts = [t["servers"][label] for t in trials if t["outage_s"] == outage]
            served = [t["served_after_ack_s"] for t in ts]
            done = [v for v in served if v is not None]
            current = [t["current_after_ready_s"] for t in ts if t.get("current_after_ready_s") is not None]
            rows.append({
                "outage_s": outage, "binary": label, "trials": len(ts),
                "served_after_ack_s_median": round(statistics.median(done), 2) if done else None,
                "served_after_ack_s_max": round(max(done), 2) if done else None,
                "not_served_within_bound": len(served) - len(done),
                "stale_current_after_ready_s_median": round(statistics.median(current), 2) if current else None,
                "readyz_not_200": sum(t["readyz_not_200_during_outage"] for t in ts),
            })
    return rows


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop what was started
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outages", default="120,10", help="seconds, comma-separated")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--binary", action="append", help="repeatable; default target/release/failover-dns")
    parser.add_argument("--label", default="", help="added to the result file's name")
    args = parser.parse_args()
    binaries = args.binary or [BINARY]
    outages = [float(o) for o in args.outages.split(",")]

    directory = tempfile.mkdtemp(prefix="fodns-recovery-")
    servers = []
    try:
        kubeconfig = control_plane(directory)
        api = Api(directory)
        api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        objects = [record_object(NS, f"r{i}", f"r{i}.{ZONE}", f"198.51.100.{i % 250 + 1}") for i in range(args.records)]
        objects.append(record_object(NS, "edit", HOST, "192.0.2.1"))
        api.create_all(objects)
        servers = [Server(b, kubeconfig, directory) for b in binaries]
        for s in servers:
            wait_until(f"{s.label} answering", lambda s=s: s.answer() == ["192.0.2.1"], 120)
            wait_until(f"{s.label} ready", lambda s=s: s.readyz() == 200, 30)
        time.sleep(5)  # every watch settled (CheckerReports written and listed)
        trials = []
        for k in range(args.trials):
            for outage in outages:
                value = f"192.0.2.{len(trials) % 250 + 2}"
                t = trial(directory, api, servers, outage, value)
                trials.append(t)
                print(json.dumps(t), flush=True)
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "records": args.records + 1,
            "binaries": {s.label: b for s, b in zip(servers, binaries)},
            "cpus": os.cpu_count(),
            "summary": summary(trials, [s.label for s in servers]),
            "trials": trials,
        }
    finally:
        for s in servers:
            stop(s.proc)
        subprocess.run(["bash", SCRIPT, "stop", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out_dir = os.path.join(HERE, "results", "recovery")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, time.strftime("%Y-%m-%d") + (f"-{args.label}" if args.label else "") + ".json")
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print("\n| outage | binary | edit served after its PATCH, median / max | not within "
          f"{SERVED_BOUND:.0f} s | stale gauge 0 again after ready (median) | /readyz not 200 |")
    print("|---|---|---|---|---|---|")
    for r in report["summary"]:
        def s(v):
            return "–" if v is None else f"{v:.2f} s"
        print(f"| {r['outage_s']:.0f} s | {r['binary']} | {s(r['served_after_ack_s_median'])} / "
              f"{s(r['served_after_ack_s_max'])} | {r['not_served_within_bound']} | "
              f"{s(r['stale_current_after_ready_s_median'])} | {r['readyz_not_200']} |")
    print(f"\n{out}")


if __name__ == "__main__":
    main()
