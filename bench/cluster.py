#!/usr/bin/env python3
"""Cluster mode against a real kube-apiserver + etcd (scripts/control-plane.sh).

    bench/cluster.py [--sizes 10000,100000] [--checks 10000] [--edits 1000] [--mass 1000]

For each size N (FailoverRecords in the API server; the first --checks of them name
a TCP HealthCheck probing a loopback listener every 30 s):

* start: the release binary starts in cluster mode with everything already in the
  API server; time to /readyz 200 and a correct answer for the last record, resident
  memory then and 6 s later; the same objects served standalone from manifest files
  for comparison (goal: cluster memory within 1.5x of standalone);
* edits: --edits sequential merge patches of one record's value; the time from the
  API server's acknowledgement of the write (the PATCH response) to the first DNS
  answer with the new value; p50 / p99 / max;
* mass transition (once, at the first size): --mass TCP checks (interval 1 s,
  failureThreshold 1) and one Simple record each, in their own namespace; once their
  statuses are written, their listener closes and all of them fail at once. Reports
  status writes per second (max over any 1 s window, from /metrics) against
  --status-qps, and the time until every one of those checks shows healthy=false.

Objects are created over the API with 16 parallel keep-alive connections (the
admin token of the local control plane). DNS goes over UDP with the minimal client
of bench/scale.py. Results are printed as Markdown and appended to
bench/results/cluster.jsonl.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
from scale import BINARY, free_port, ip, query, rss_mib  # noqa: E402

SCRIPT = os.path.join(ROOT, "scripts", "control-plane.sh")
GROUP = "/apis/failoverdns.io/v1alpha1"


class Api:
    """A tiny client for the local API server: one keep-alive connection per thread."""

    def __init__(self, directory):
        with open(os.path.join(directory, "apiserver.port")) as f:
            self.port = int(f.read().strip())
        with open(os.path.join(directory, "tokens.csv")) as f:
            self.token = f.readline().split(",")[0]
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.local = threading.local()

    def call(self, method, path, body=None, content_type="application/json"):
        for attempt in range(5):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=60)
                self.local.conn = conn
            try:
                headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
                conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.status == 429 or response.status >= 500:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                return response.status, (json.loads(data) if data else None)
            except (OSError, http.client.HTTPException):
                self.local.conn = None
                time.sleep(0.2)
        raise RuntimeError(f"{method} {path} kept failing")

    def create_all(self, objects):
        def create(item):
            path, body = item
            status, out = self.call("POST", path, body)
            if status not in (200, 201, 409):
                raise RuntimeError(f"POST {path}: {status} {out}")
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, objects, chunksize=64))


def control_plane(directory):
    subprocess.run(["bash", SCRIPT, "build"], check=True)
    subprocess.run(["bash", SCRIPT, "start", directory], check=True, stdout=subprocess.DEVNULL)
    kubectl = os.path.join(subprocess.run(["bash", SCRIPT, "bin-dir"], capture_output=True, text=True).stdout.strip(), "kubectl")
    kubeconfig = os.path.join(directory, "kubeconfig")
    subprocess.run([kubectl, "--kubeconfig", kubeconfig, "apply", "-f", os.path.join(ROOT, "crds")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"],
                   check=True, stdout=subprocess.DEVNULL)
    return kubeconfig


def namespace(api, name):
    api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def check_object(ns, name, port, interval, threshold=3):
    spec = {"type": "TCP", "ipAddress": "127.0.0.1", "port": port, "requestInterval": interval, "failureThreshold": threshold}
    return (f"{GROUP}/namespaces/{ns}/healthchecks",
            {"apiVersion": "failoverdns.io/v1alpha1", "kind": "HealthCheck", "metadata": {"name": name, "namespace": ns}, "spec": spec})


def record_object(ns, name, host, value, check=None):
    spec = {"name": host, "type": "A", "ttl": 60, "values": [value]}
    if check:
        spec["healthCheckName"] = check
    return (f"{GROUP}/namespaces/{ns}/failoverrecords",
            {"apiVersion": "failoverdns.io/v1alpha1", "kind": "FailoverRecord", "metadata": {"name": name, "namespace": ns}, "spec": spec})


class Listener:
    """A healthy TCP target: a process of its own (no GIL shared with the load) that
    accepts every connection and closes it, as a plain TCP service would; stopping
    it refuses every later connection, as a dying process would."""

    CODE = ("import socket,sys\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('127.0.0.1', 0)); s.listen(4096)\n"
            "print(s.getsockname()[1], flush=True)\n"
            "while True:\n"
            "    c, _ = s.accept(); c.close()\n")

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def close(self):
        self.proc.kill()
        self.proc.wait()


def serve(args, env=None, ready_timeout=600):
    dns, admin = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="failover-dns-bench-", suffix=".log", delete=False)
    command = [BINARY, "serve", "--zone", "big.test", "--dns-addr", f"127.0.0.1:{dns}", "--admin-addr", f"127.0.0.1:{admin}"] + args
    proc = subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return proc, dns, admin, log.name


def http_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def wait_answer(proc, dns, name, value, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(dns, name) == [value]:
            return True
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        time.sleep(0.005)
    return False


def metric(admin, prefix):
    _, text = http_get(admin, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def serve_until_answered(args, env, n):
    """Starts the server and waits for the last record's answer; a port another
    socket took meanwhile (the server exits at once) means another try."""
    for _ in range(3):
        t0 = time.monotonic()
        proc, dns, admin, log = serve(args, env)
        try:
            if not wait_answer(proc, dns, f"h{n - 1}.big.test", ip(n - 1), 900):
                raise RuntimeError(f"no answer; log in {log}")
            answered = time.monotonic() - t0
            # The admin port is bound after DNS: taken meanwhile, the server exits.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    http_get(admin, "/readyz")
                    return proc, dns, admin, answered
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError("the server exited")
        except RuntimeError:
            if proc.poll() is None:
                raise
    raise RuntimeError(f"the server keeps exiting; log in {log}")


def start_cluster(kubeconfig, n, extra=()):
    proc, dns, admin, ready = serve_until_answered(list(extra), {"KUBECONFIG": kubeconfig, "POD_NAME": "bench"}, n)
    rss = rss_mib(proc.pid)
    time.sleep(6)
    return proc, dns, admin, ready, rss, rss_mib(proc.pid)


def standalone(n, checks, port):
    directory = tempfile.mkdtemp(prefix="failover-dns-bench-manifests-")
    with open(os.path.join(directory, "all.yaml"), "w") as f:
        for i in range(checks):
            f.write("---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\n"
                    f"metadata: {{name: c{i}, namespace: bench}}\n"
                    f"spec: {{type: TCP, ipAddress: 127.0.0.1, port: {port}, requestInterval: 30s}}\n")
        for i in range(n):
            check = f", healthCheckName: c{i}" if i < checks else ""
            f.write("---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\n"
                    f"metadata: {{name: r{i}, namespace: bench}}\n"
                    f"spec: {{name: h{i}.big.test, type: A, ttl: 60, values: [\"{ip(i)}\"]{check}}}\n")
    proc, dns, _, ready = serve_until_answered(["--manifests", directory], None, n)
    rss = rss_mib(proc.pid)
    time.sleep(6)
    settled = rss_mib(proc.pid)
    stop(proc)
    shutil.rmtree(directory)
    return ready, rss, settled


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def edits(api, proc, dns, n, count):
    latencies = []
    for k in range(count):
        i = (k * 7919) % n
        value = f"192.0.{2 + (k & 1)}.{k % 250 + 1}"
        patch = {"spec": {"values": [value]}}
        status, _ = api.call("PATCH", f"{GROUP}/namespaces/bench/failoverrecords/r{i}", patch, "application/merge-patch+json")
        acknowledged = time.monotonic()
        if status != 200:
            raise RuntimeError(f"patch: {status}")
        if not wait_answer(proc, dns, f"h{i}.big.test", value, 30):
            raise RuntimeError("edit not served within 30 s")
        latencies.append((time.monotonic() - acknowledged) * 1000)
    return latencies


def mass_transition(api, admin, mass, qps):
    namespace(api, "mass")
    target = Listener()
    objects = [check_object("mass", f"m{i}", target.port, "1s", 1) for i in range(mass)]
    objects += [record_object("mass", f"m{i}", f"m{i}.big.test", ip(i), f"m{i}") for i in range(mass)]
    api.create_all(objects)

    def unhealthy():
        _, out = api.call("GET", f"{GROUP}/namespaces/mass/healthchecks")
        return sum(1 for o in out["items"] if o.get("status", {}).get("healthy") is False)

    def written():
        _, out = api.call("GET", f"{GROUP}/namespaces/mass/healthchecks")
        return sum(1 for o in out["items"] if o.get("status", {}).get("healthy") is True
                   and o["status"].get("conditions", [{}])[0].get("reason") != "Pending")

    # Every status written (the records' too): the write counter stands still.
    deadline = time.monotonic() + 300
    last = -1.0
    while time.monotonic() < deadline:
        now = metric(admin, "failoverdns_status_writes_total")
        healthy = written()
        if healthy == mass and now == last and now >= 2 * mass:
            break
        last = now
        time.sleep(2)
    else:
        raise RuntimeError(f"statuses did not settle before the transition: {healthy} of {mass} healthy, {last} writes")
    samples = []
    stop_sampling = threading.Event()

    def sample():
        while not stop_sampling.is_set():
            samples.append((time.monotonic(), metric(admin, "failoverdns_status_writes_total"), metric(admin, "failoverdns_events_total")))
            time.sleep(0.25)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(2)
    t0 = time.monotonic()
    target.close()
    converged = None
    while time.monotonic() - t0 < 600:
        if unhealthy() == mass:
            converged = time.monotonic() - t0
            break
        time.sleep(0.5)
    time.sleep(3)
    stop_sampling.set()
    sampler.join()
    worst = 0.0
    for i, (t, w, e) in enumerate(samples):
        for t2, w2, e2 in samples[i:]:
            if t2 - t >= 1.0:
                worst = max(worst, ((w2 + e2) - (w + e)) / (t2 - t))
                break
    total = (samples[-1][1] - samples[0][1], samples[-1][2] - samples[0][2])
    return {"mass_checks": mass, "status_qps": qps, "max_writes_per_s": round(worst, 1),
            "status_writes": total[0], "events": total[1],
            "converged_s": round(converged, 1) if converged else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--checks", type=int, default=10000)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--mass", type=int, default=1000)
    parser.add_argument("--status-qps", type=int, default=50)
    args = parser.parse_args()
    # The listeners hold one connection per TCP check (the prober keeps it to watch).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not os.path.exists(BINARY):
        sys.exit("build the release binary first: cargo build --release")
    rows = []
    target = Listener()
    print("| records | checks | cluster: ready s | RSS MiB (at ready, settled) | standalone: ready s | RSS MiB (at ready, settled) | edit→answer ms p50 / p99 / max |")
    print("|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        checks = min(args.checks, n)
        directory = tempfile.mkdtemp(prefix="failover-dns-bench-cp-")
        try:
            kubeconfig = control_plane(directory)
            api = Api(directory)
            namespace(api, "bench")
            t = time.monotonic()
            api.create_all([check_object("bench", f"c{i}", target.port, "30s") for i in range(checks)])
            api.create_all([record_object("bench", f"r{i}", f"h{i}.big.test", ip(i), f"c{i}" if i < checks else None) for i in range(n)])
            created = time.monotonic() - t
            proc, dns, admin, ready, rss, settled = start_cluster(kubeconfig, n, ["--status-qps", str(args.status_qps)])
            lat = edits(api, proc, dns, n, args.edits)
            row = {"records": n, "checks": checks, "create_s": round(created, 1), "ready_s": round(ready, 2),
                   "rss_at_ready_mib": round(rss, 1), "rss_settled_mib": round(settled, 1),
                   "edit_ms_p50": round(percentile(lat, 50), 1), "edit_ms_p99": round(percentile(lat, 99), 1),
                   "edit_ms_max": round(max(lat), 1)}
            stop(proc)
            s_ready, s_rss, s_settled = standalone(n, checks, target.port)
            row.update({"standalone_ready_s": round(s_ready, 2), "standalone_rss_at_ready_mib": round(s_rss, 1),
                        "standalone_rss_settled_mib": round(s_settled, 1)})
            rows.append(row)
            print(f"| {n} | {checks} | {row['ready_s']} | {row['rss_at_ready_mib']}, {row['rss_settled_mib']} | "
                  f"{row['standalone_ready_s']} | {row['standalone_rss_at_ready_mib']}, {row['standalone_rss_settled_mib']} | "
                  f"{row['edit_ms_p50']} / {row['edit_ms_p99']} / {row['edit_ms_max']} |", flush=True)
        finally:
            subprocess.run(["bash", SCRIPT, "stop", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(directory, ignore_errors=True)
    if args.mass:
        # On its own control plane, so nothing else is being written meanwhile.
        directory = tempfile.mkdtemp(prefix="failover-dns-bench-cp-")
        try:
            kubeconfig = control_plane(directory)
            api = Api(directory)
            proc, dns, admin, log = serve(["--status-qps", str(args.status_qps)], {"KUBECONFIG": kubeconfig, "POD_NAME": "bench"})
            row = {"records": 0}
            row.update(mass_transition(api, admin, args.mass, args.status_qps))
            stop(proc)
            rows.append(row)
            print(f"\nmass transition: {row['mass_checks']} checks (and a record each) fail at once, --status-qps "
                  f"{row['status_qps']} (burst 100): max {row['max_writes_per_s']} writes+Events in any 1 s, "
                  f"{row['status_writes']} status writes, {row['events']} Events, every check's status unhealthy "
                  f"after {row['converged_s']} s", flush=True)
        finally:
            subprocess.run(["bash", SCRIPT, "stop", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "cluster.jsonl"), "a") as f:
        for row in rows:
            row["date"] = time.strftime("%Y-%m-%d")
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
