#!/usr/bin/env python3
"""The status write budget (spec section 10, issue 20) against a real kube-apiserver + etcd.

Two measurements, each with its own control plane (scripts/control-plane.sh) and the
release binary in cluster mode:

* flap: a HealthCheck probing a loopback HTTP target every 100 ms with
  failureThreshold 1, and a failover pair using it, next to --calm ordinary records.
  The target switches between 200 and 503 every 200 ms for --minutes. Per minute:
  status writes and Event writes (from /metrics: only the flapping objects change),
  DNS answer switches for the pair (sampled every 10 ms: DNS still follows the
  verdicts), and, every 10 s, the time from a calm record's edit (its PATCH
  acknowledged) to its status' observedGeneration matching (the other objects' status
  stays current). Goal: <= 12 status writes and <= 2 Event writes a minute.
* bulk: --bulk new FailoverRecords (a namespace of their own, created over 16
  keep-alive connections) while the server already serves --calm records; the time
  from the first create to every one of them showing Accepted=True, polled every 5 s
  (chunked lists). Once per --qps value (the server's --status-qps; 50 is the
  default), each with a fresh server. Goal: all Accepted within 60 s at the default
  budget, or the budget and the time side by side.

Usage:
  bench/budget.py [--minutes 3] [--bulk 20000] [--qps 50,400] [--calm 1000]
                  [--only flap|bulk] [--binary target/release/failover-dns]
Writes bench/results/budget/<date>.json and prints a Markdown summary.
Only 127.0.0.1 is used; every process it starts is stopped.
"""
import argparse
import json
import multiprocessing
import os
import signal
import socketserver
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cluster import GROUP, SCRIPT, Api, check_object, control_plane, http_get, namespace, record_object, stop  # noqa: E402
from recovery import Server, wait_until  # noqa: E402
from scale import BINARY, free_port  # noqa: E402

ZONE = "budget.test"
NS = "bench"
FLAP = f"flap.{ZONE}"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
DOWN = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown"


def toggled_target(port, up, stopping):
    """A keep-alive HTTP target answering 200 while `up`, else 503 (its own process)."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            seen = b""
            while not stopping.value:
                try:
                    data = self.request.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                seen += data
                while b"\r\n\r\n" in seen:
                    seen = seen.split(b"\r\n\r\n", 1)[1]
                    self.request.sendall(OK if up.value else DOWN)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler) as server:
        server.serve_forever()


def flipper(up, stopping, every):
    while not stopping.value:
        time.sleep(every)
        up.value = 1 - up.value


def ok_writes(server):
    """(status writes, Event writes) that succeeded, from /metrics."""
    _, text = http_get(server.admin, "/metrics")
    status = events = 0.0
    for line in text.splitlines():
        if 'result="ok"' not in line:
            continue
        if line.startswith("failoverdns_status_writes_total{"):
            status += float(line.rsplit(" ", 1)[1])
        elif line.startswith("failoverdns_events_total{"):
            events += float(line.rsplit(" ", 1)[1])
    return status, events


def fresh_control_plane():
    directory = tempfile.mkdtemp(prefix="fodns-budget-")
    kubeconfig = control_plane(directory)
    api = Api(directory)
    namespace(api, NS)
    return directory, kubeconfig, api


def calm_records(n):
    return [record_object(NS, f"c{i}", f"c{i}.{ZONE}", f"198.51.100.{i % 250 + 1}") for i in range(n)]


def generation_written(api, name):
    status, out = api.call("GET", f"{GROUP}/namespaces/{NS}/failoverrecords/{name}")
    return status == 200 and out.get("status", {}).get("observedGeneration") == out["metadata"]["generation"]


def flap(args):
    directory, kubeconfig, api = fresh_control_plane()
    port = free_port()
    up, stopping = multiprocessing.Value("i", 1), multiprocessing.Value("i", 0)
    target = multiprocessing.Process(target=toggled_target, args=(port, up, stopping), daemon=True)
    target.start()
    server, flips = None, None
    try:
        path, check = check_object(NS, "flappy", port, "100ms", threshold=1)
        check["spec"].update({"type": "HTTP", "resourcePath": "/health"})
        pair = []
        for name, role, value in (("flap-p", "PRIMARY", "192.0.2.1"), ("flap-s", "SECONDARY", "192.0.2.2")):
            p, body = record_object(NS, name, FLAP, value, check="flappy" if role == "PRIMARY" else None)
            body["spec"].update({"ttl": 1, "routingPolicy": "Failover", "setIdentifier": role.lower(), "failover": role})
            pair.append((p, body))
        api.create_all([(path, check), *pair, *calm_records(args.calm)])
        server = Server(args.binary, kubeconfig, directory, "flap", ZONE)
        wait_until("the PRIMARY", lambda: server.answer(FLAP) == ["192.0.2.1"], 120)
        wait_until("the calm records' status", lambda: generation_written(api, f"c{args.calm - 1}"), 300)
        time.sleep(6)  # first statuses written, --status-min-interval passed
        flips = multiprocessing.Process(target=flipper, args=(up, stopping, 0.2), daemon=True)
        flips.start()
        minutes = []
        for minute in range(args.minutes):
            start = time.monotonic()
            writes0 = ok_writes(server)
            switches, last = 0, server.answer(FLAP)
            current = []
            next_edit = start + 5
            while time.monotonic() - start < 60:
                now = server.answer(FLAP)
                if now != last:
                    switches, last = switches + 1, now
                if time.monotonic() >= next_edit:
                    next_edit += 10
                    name = f"c{(minute * 6 + len(current)) % args.calm}"
                    body = {"spec": {"values": [f"203.0.113.{len(current) + 1 + minute * 6}"]}}
                    status, out = api.call("PATCH", f"{GROUP}/namespaces/{NS}/failoverrecords/{name}", body,
                                           "application/merge-patch+json")
                    if status != 200:
                        raise RuntimeError(f"PATCH {name}: {status} {out}")
                    acknowledged = time.monotonic()
                    while not generation_written(api, name):
                        if time.monotonic() - acknowledged > 60:
                            raise RuntimeError(f"{name}'s status not written within 60 s")
                        time.sleep(0.02)
                    current.append(time.monotonic() - acknowledged)
                time.sleep(0.01)
            writes1 = ok_writes(server)
            row = {"minute": minute + 1,
                   "status_writes": writes1[0] - writes0[0] - len(current),
                   "event_writes": writes1[1] - writes0[1],
                   "dns_switches": switches,
                   "calm_edit_status_s_median": round(statistics.median(current), 3),
                   "calm_edit_status_s_max": round(max(current), 3)}
            print(json.dumps(row), flush=True)
            minutes.append(row)
        _, hc = api.call("GET", f"{GROUP}/namespaces/{NS}/healthchecks/flappy")
        flapping = [c for c in hc.get("status", {}).get("conditions", []) if c["type"] == "Flapping"]
        return {"calm_records": args.calm, "minutes": minutes, "flapping_condition": flapping}
    finally:
        stopping.value = 1
        if server:
            stop(server.proc)
        for p in (flips, target):
            if p:
                p.terminate()
        subprocess.run(["bash", SCRIPT, "stop", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def accepted_count(api, ns):
    """How many records in `ns` show Accepted=True (chunked lists)."""
    count, token = 0, ""
    while True:
        path = f"{GROUP}/namespaces/{ns}/failoverrecords?limit=2000" + (f"&continue={token}" if token else "")
        status, out = api.call("GET", path)
        if status != 200:
            raise RuntimeError(f"list: {status}")
        for item in out["items"]:
            for c in item.get("status", {}).get("conditions", []):
                if c["type"] == "Accepted" and c["status"] == "True":
                    count += 1
        token = out["metadata"].get("continue")
        if not token:
            return count


def bulk(args, qps):
    directory, kubeconfig, api = fresh_control_plane()
    server = None
    try:
        api.create_all(calm_records(args.calm))
        server = Server(args.binary, kubeconfig, directory, f"bulk-{qps}", ZONE, ["--status-qps", str(qps)])
        wait_until("the calm records' status", lambda: generation_written(api, f"c{args.calm - 1}"), 300)
        time.sleep(6)
        ns = "bulk"
        namespace(api, ns)
        objects = [record_object(ns, f"b{i}", f"b{i}.{ZONE}", f"198.51.100.{i % 250 + 1}") for i in range(args.bulk)]
        writes0 = ok_writes(server)[0]
        start = time.monotonic()
        api.create_all(objects)
        created = time.monotonic() - start
        samples = []
        while True:
            n = accepted_count(api, ns)
            samples.append((round(time.monotonic() - start, 1), n))
            print(f"  qps {qps}: {samples[-1][0]:.0f} s: {n} of {args.bulk} Accepted", flush=True)
            if n >= args.bulk:
                break
            if time.monotonic() - start > args.bulk / qps * 3 + 300:
                raise RuntimeError(f"only {n} of {args.bulk} Accepted")
            time.sleep(5)
        all_accepted = time.monotonic() - start
        served = server.answer(f"b{args.bulk - 1}.{ZONE}")
        return {"qps": qps, "records": args.bulk, "calm_records": args.calm,
                "created_s": round(created, 1), "all_accepted_s": round(all_accepted, 1),
                "status_writes": ok_writes(server)[0] - writes0, "last_record_served": served, "samples": samples}
    finally:
        if server:
            stop(server.proc)
        subprocess.run(["bash", SCRIPT, "stop", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop what was started
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--bulk", type=int, default=20000)
    parser.add_argument("--qps", default="50,400", help="--status-qps values for the bulk run, comma-separated")
    parser.add_argument("--calm", type=int, default=1000)
    parser.add_argument("--only", choices=("flap", "bulk"))
    parser.add_argument("--binary", default=BINARY)
    args = parser.parse_args()
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "binary": args.binary, "cpus": os.cpu_count()}
    if args.only != "bulk":
        report["flap"] = flap(args)
    if args.only != "flap":
        report["bulk"] = [bulk(args, int(q)) for q in args.qps.split(",")]
    out_dir = os.path.join(HERE, "results", "budget")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, time.strftime("%Y-%m-%d") + ".json")
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    if "flap" in report:
        print("\n| minute | status writes | Event writes | DNS answer switches | calm edit → status, median / max |")
        print("|---|---|---|---|---|")
        for r in report["flap"]["minutes"]:
            print(f"| {r['minute']} | {r['status_writes']:.0f} | {r['event_writes']:.0f} | {r['dns_switches']} | "
                  f"{r['calm_edit_status_s_median']:.2f} s / {r['calm_edit_status_s_max']:.2f} s |")
    if "bulk" in report:
        print("\n| --status-qps | new records | created in | all Accepted after | status writes |")
        print("|---|---|---|---|---|")
        for r in report["bulk"]:
            print(f"| {r['qps']} | {r['records']} | {r['created_s']:.0f} s | {r['all_accepted_s']:.0f} s | "
                  f"{r['status_writes']:.0f} |")
    print(f"\n{out}")


if __name__ == "__main__":
    main()
