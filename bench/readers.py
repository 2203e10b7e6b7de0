#!/usr/bin/env python3
"""Do readers of the admin endpoint delay a failover? (issue: readers off the writer's lock)

100k simple records plus one failover pair (an HTTP check every 200 ms,
failureThreshold 1, on a Python http.server target), standalone, release binary.
Each trial kills the primary's target (SIGKILL) and polls DNS every millisecond until
the SECONDARY answers: kill -> SECONDARY is the failover time. Then the target is
started again and the PRIMARY awaited.

Modes, in the same run:
  alone      nothing else talks to the server
  dashboard  one client GETs /status in a loop and another /readyz in a loop, as a
             dashboard and a kubelet do; their latencies are reported too

Also reported: how long one full /status takes and how much the server's RSS grows
while it streams (sampled every 5 ms from /proc).

With --cluster the same pair lives in a real kube-apiserver (scripts/control-plane.sh)
and the server runs in cluster mode; the busy mode is then a bulk apply: batches of
--apply FailoverRecords created over 16 connections while the trials run, with
/readyz polled as a kubelet does.

Usage:
  bench/readers.py [--records 100000] [--trials 8] [--binary target/release/failover-dns]
  bench/readers.py --cluster [--apply 10000] [--trials 8]
Writes bench/results/readers/<date>[-cluster].json. Only 127.0.0.1 is used; every
process it starts is stopped.
"""
import argparse
import json
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
ZONE = "example.internal"
PRIMARY, SECONDARY = "192.0.2.10", "192.0.2.20"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_manifests(directory, records, target_port):
    with open(os.path.join(directory, "bulk.yaml"), "w") as f:
        for i in range(records):
            f.write(
                "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\n"
                f"metadata: {{name: r{i}}}\nspec: {{name: r{i}.{ZONE}, type: A, values: [\"198.51.100.{i % 250 + 1}\"]}}\n"
            )
    with open(os.path.join(directory, "www.yaml"), "w") as f:
        f.write(
            "---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {name: www}\n"
            f"spec: {{type: HTTP, ipAddress: 127.0.0.1, port: {target_port}, requestInterval: 200ms, failureThreshold: 1}}\n"
        )
        for role, ip in (("PRIMARY", PRIMARY), ("SECONDARY", SECONDARY)):
            check = ", healthCheckName: www" if role == "PRIMARY" else ""
            f.write(
                "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\n"
                f"metadata: {{name: www-{role.lower()}}}\n"
                f"spec: {{name: www.{ZONE}, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: {role.lower()}, "
                f"failover: {role}{check}, values: [\"{ip}\"]}}\n"
            )


def query(sock, dns, name):
    """One A query; the first A record's address, or None."""
    qid = random.randrange(65536)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    sock.sendto(struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1), dns)
    try:
        data, _ = sock.recvfrom(4096)
    except socket.timeout:
        return None
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid or struct.unpack(">H", data[6:8])[0] == 0:
        return None
    return ".".join(str(b) for b in data[-4:])


def start_target(port):
    return subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(sock, dns, want, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(sock, dns, f"www.{ZONE}") == want:
            return True
        time.sleep(0.01)
    return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Pollers:
    """A /status loop and a /readyz loop, as a dashboard and a kubelet."""

    def __init__(self, admin):
        self.admin = admin
        self.stop = threading.Event()
        self.status_s, self.readyz_s = [], []
        self.threads = [threading.Thread(target=self.loop, args=(p, l)) for p, l in
                        (("/status", self.status_s), ("/readyz", self.readyz_s))]

    def loop(self, path, out):
        while not self.stop.is_set():
            t = time.monotonic()
            with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=60) as r:
                r.read()
            out.append(time.monotonic() - t)
            if path == "/readyz":
                time.sleep(0.01)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        for t in self.threads:
            t.join()


def trials(sock, dns, port, count):
    target = start_target(port)
    results = []
    try:
        for _ in range(count):
            if not wait_for(sock, dns, PRIMARY):
                raise SystemExit("the PRIMARY never answered")
            time.sleep(random.uniform(0.2, 0.6))
            target.send_signal(signal.SIGKILL)
            target.wait()
            t0 = time.monotonic()
            while query(sock, dns, f"www.{ZONE}") != SECONDARY:
                time.sleep(0.001)
                if time.monotonic() - t0 > 30:
                    raise SystemExit("the SECONDARY never answered")
            results.append((time.monotonic() - t0) * 1000)
            target = start_target(port)
    finally:
        target.kill()
        target.wait()
    return results


def cluster_run(args, report):
    """The pair in the API server; trials alone, then during bulk applies."""
    sys.path.insert(0, HERE)
    import cluster  # noqa: E402  (bench/cluster.py: control plane, API client)

    directory = tempfile.mkdtemp(prefix="fodns-readers-cluster-")
    kubeconfig = cluster.control_plane(directory)
    api = cluster.Api(directory)
    target_port, dns_port, admin_port = free_port(), free_port(), free_port()
    base = "/apis/failoverdns.io/v1alpha1/namespaces/default"
    meta = {"apiVersion": "failoverdns.io/v1alpha1"}
    check = {"type": "HTTP", "ipAddress": "127.0.0.1", "port": target_port, "requestInterval": "200ms",
             "failureThreshold": 1}
    api.call("POST", f"{base}/healthchecks", {**meta, "kind": "HealthCheck", "metadata": {"name": "www"}, "spec": check})
    for role, ip in (("PRIMARY", PRIMARY), ("SECONDARY", SECONDARY)):
        spec = {"name": f"www.{ZONE}", "type": "A", "ttl": 1, "routingPolicy": "Failover",
                "setIdentifier": role.lower(), "failover": role, "values": [ip]}
        if role == "PRIMARY":
            spec["healthCheckName"] = "www"
        body = {**meta, "kind": "FailoverRecord", "metadata": {"name": f"www-{role.lower()}"}, "spec": spec}
        api.call("POST", f"{base}/failoverrecords", body)
    admin = f"127.0.0.1:{admin_port}"
    log = open(os.path.join(directory, "server.log"), "w")
    server = subprocess.Popen(
        [args.binary, "serve", "--zone", ZONE, "--dns-addr", f"127.0.0.1:{dns_port}", "--admin-addr", admin],
        stderr=log, env={**os.environ, "KUBECONFIG": kubeconfig, "POD_NAME": "bench"},
    )
    dns = ("127.0.0.1", dns_port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    stop_apply = threading.Event()
    batches = []

    def bulk_apply():
        batch = 0
        while not stop_apply.is_set():
            objects = [(f"{base}/failoverrecords", {**meta, "kind": "FailoverRecord",
                        "metadata": {"name": f"bulk-{batch}-{i}"},
                        "spec": {"name": f"b{batch}-{i}.{ZONE}", "type": "A", "values": [f"198.51.100.{i % 250 + 1}"]}})
                       for i in range(args.apply)]
            t = time.monotonic()
            api.create_all(objects)
            batches.append(time.monotonic() - t)
            batch += 1

    try:
        alone = trials(sock, dns, target_port, args.trials)
        applier = threading.Thread(target=bulk_apply)
        readyz = []
        stop_readyz = threading.Event()

        def poll_readyz():
            while not stop_readyz.is_set():
                t = time.monotonic()
                with urllib.request.urlopen(f"http://{admin}/readyz", timeout=60) as r:
                    r.read()
                readyz.append(time.monotonic() - t)
                time.sleep(0.01)

        poller = threading.Thread(target=poll_readyz)
        applier.start()
        poller.start()
        try:
            busy = trials(sock, dns, target_port, args.trials)
        finally:
            stop_apply.set()
            stop_readyz.set()
            applier.join()
            poller.join()
        for name, values in (("alone", alone), ("during_apply", busy)):
            report[name] = {"failover_ms_median": round(statistics.median(values), 1),
                            "failover_ms_max": round(max(values), 1), "failover_ms": [round(v, 1) for v in values]}
        report["during_apply"]["apply_batch"] = args.apply
        report["during_apply"]["batch_seconds"] = [round(b, 1) for b in batches]
        report["during_apply"]["readyz_ms_p99"] = round(1000 * percentile(readyz, 99), 2)
        report["during_apply"]["readyz_ms_median"] = round(1000 * statistics.median(readyz), 2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
        subprocess.run(["bash", os.path.join(REPO, "scripts", "control-plane.sh"), "stop", directory],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--binary", default=os.path.join(REPO, "target", "release", "failover-dns"))
    parser.add_argument("--cluster", action="store_true", help="cluster mode, busy with bulk applies")
    parser.add_argument("--apply", type=int, default=10_000, help="objects per bulk apply (--cluster)")
    args = parser.parse_args()
    if args.cluster:
        report = {"mode": "cluster", "trials": args.trials, "binary": os.path.relpath(args.binary, REPO)}
        cluster_run(args, report)
        write_report(report, "-cluster")
        return

    tmp = tempfile.mkdtemp(prefix="fodns-readers-")
    target_port, dns_port, admin_port = free_port(), free_port(), free_port()
    write_manifests(tmp, args.records, target_port)
    dns, admin = ("127.0.0.1", dns_port), f"127.0.0.1:{admin_port}"
    log = open(os.path.join(tmp, "server.log"), "w")
    server = subprocess.Popen(
        [args.binary, "serve", "--manifests", tmp, "--zone", ZONE, "--dns-addr", f"127.0.0.1:{dns_port}",
         "--admin-addr", admin],
        stderr=log,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    report = {"records": args.records, "trials": args.trials, "binary": os.path.relpath(args.binary, REPO)}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://{admin}/readyz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        # One full /status, with the server's RSS sampled meanwhile.
        base = rss_kib(server.pid)
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(server.pid))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t = time.monotonic()
        with urllib.request.urlopen(f"http://{admin}/status", timeout=120) as r:
            size = len(r.read())
        report["status_once"] = {"seconds": round(time.monotonic() - t, 3), "bytes": size,
                                 "rss_before_kib": base, "rss_peak_kib": peak[0],
                                 "extra_pct": round(100 * (peak[0] - base) / base, 1)}
        done.set()
        sampler.join()

        alone = trials(sock, dns, target_port, args.trials)
        with Pollers(admin) as pollers:
            busy = trials(sock, dns, target_port, args.trials)
        for name, values in (("alone", alone), ("dashboard", busy)):
            report[name] = {"failover_ms_median": round(statistics.median(values), 1),
                            "failover_ms_max": round(max(values), 1), "failover_ms": [round(v, 1) for v in values]}
        report["dashboard"]["status_calls"] = len(pollers.status_s)
        report["dashboard"]["status_s_median"] = round(statistics.median(pollers.status_s), 3) if pollers.status_s else None
        report["dashboard"]["readyz_ms_p99"] = round(1000 * percentile(pollers.readyz_s, 99), 2)
        report["dashboard"]["readyz_ms_median"] = round(1000 * statistics.median(pollers.readyz_s), 2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
    write_report(report, "")


def write_report(report, suffix):
    out_dir = os.path.join(HERE, "results", "readers")
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(report["binary"]).replace("failover-dns", "").strip("-")
    out = os.path.join(out_dir, time.strftime("%Y-%m-%d") + suffix + (f"-{name}" if name else "") + ".json")
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
