#!/usr/bin/env python3
"""The checker quorum (issue 19): how fast do three replicas agree, and what does it
cost the API server?

A real kube-apiserver + etcd (scripts/control-plane.sh) on loopback, the release
binary in cluster mode as replicas replica-a, replica-b, replica-c (POD_NAME), all
with the same --lease-namespace, where their CheckerReports live.

1. Failover: one HTTP HealthCheck (requestInterval 200ms, failureThreshold 1) on a
   target process on loopback guards the PRIMARY of a Failover PRIMARY / SECONDARY
   pair. Each trial kills the target (SIGKILL) and polls every replica's DNS answer
   about every millisecond (one round of one query per replica, then 1 ms of sleep):
   kill -> every replica answers the SECONDARY. Then the target starts again and
   every replica's PRIMARY is awaited (start -> every replica answers the PRIMARY).
   Modes, one after the other on the same control plane:
     quorum   three replicas, default --checker-quorum (18)
     quorum0  three replicas, --checker-quorum 0 (each decides from its own probes)
     single   one replica, default quorum (one live checker: its own verdict decides)
2. Disagreement window, from the same trials (kills and recoveries): first replica
   switched -> last replica switched (each replica's time is its first answer with
   the new value, so the window is measured to about one polling round).
3. Mass failure: --mass HealthChecks (HTTP, --mass-interval, --mass-threshold; the
   leader's status writes run at the default --status-qps meanwhile), each
   guarding the PRIMARY of its own failover pair (m<i>.example.internal), all on one
   target service that is killed with one signal. The target is --target-procs
   processes of the same small epoll HTTP server in one process group (killed with
   one killpg(SIGKILL)): every replica holds an idle watch connection per check
   there, 3 x 10,000 = 30,000 accepted sockets, more than the 20,000 files one
   process may open on this machine. After the kill every replica is asked for the
   names that it has not yet been seen to answer with the SECONDARY, round after
   round (--mass-sample N: only every N-th name), until none is left; then one more
   pass over every name checks that none went back. Reported: kill -> all switched
   (upper bound: the last first SECONDARY answer; lower bound: the last PRIMARY
   answer), full report writes per replica for the event (delta of
   failoverdns_report_writes_total{kind="full"} from the kill to --event-window s
   later), CPU seconds of kube-apiserver and etcd (from /proc/PID/stat; PIDs from the
   control plane's pid files) during the event and in the same length of time just
   before it, probes out of schedule (failoverdns_probe_early_total: the watch
   connections, not the interval, detected the kill), the size of one CheckerReport
   listing every check as failing (kubectl get checkerreport NAME -o json | wc -c,
   and the list of all three), and the time until every replica answers the PRIMARY
   again after the target restarts (bounded by the interval).
4. Steady: the three replicas of mode quorum for --steady seconds, nothing failing
   (and the same with the mass checks, before the first mass kill): report writes
   per replica by kind (expected: full 0, renewals about steady / (ttl / 3)), the
   disagreeing checks gauge, CPU of every process.

Also: the report write latency (failoverdns_report_write_seconds) per replica, every
WARN/ERROR line the replicas logged (counted by pattern), how each replica stopped
(SIGTERM; exit code, seconds) and which CheckerReports were still there after a clean
stop of every replica (each should delete its own).

With --mass-threshold 1,3 (the default) the mass trials run with failureThreshold 1,
then every check is patched to 3 and they run again: with 3, a check whose regular
probe fails while the target is dying never gets its confirmation burst (see
BENCHMARKS.md section 10), which the quorum turns into a tail of two intervals.

The CRDs installed must be those of the binary's commit (--crds): a CRD without a
field the binary writes (spec.unhealthyGzip) makes the API server drop it silently,
and then no check fails over once more than 1,000 fail.

Usage:
  bench/quorum.py [--trials 15] [--steady 60] [--mass 10000] [--mass-interval 30s]
                  [--mass-threshold 1,3] [--mass-trials 3] [--binary target/release/failover-dns]
                  [--crds crds] [--keep]
  bench/quorum.py --mass 0            # goals 1, 2 and 4 only
  bench/quorum.py --modes "" --steady 0 --mass-threshold 1   # the mass failure only
Writes bench/results/quorum/<date>.json (--out to override). Only 127.0.0.1 is used;
every process it starts is stopped (replicas and targets also die with this script,
the control plane within a second of it). Needs Go (the target, as bench/probe_scale.py).
"""
import argparse
import ctypes
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
SCRIPT = os.path.join(REPO, "scripts", "control-plane.sh")
sys.path.insert(0, HERE)
from cluster import Api  # noqa: E402  (bench/cluster.py: a tiny API client)
from probe_scale import GO_EPOLL_SERVER, build_go_server  # noqa: E402  (the epoll HTTP target)

ZONE = "example.internal"
PRIMARY, SECONDARY = "192.0.2.10", "192.0.2.20"
LEASE_NS = "failover-dns"
MASS_NS = "mass"
GROUP = "/apis/failoverdns.io/v1alpha1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NAMES = ["replica-a", "replica-b", "replica-c"]


# ------------------------------------------------------------------ processes
def die_with_parent():
    """In the child: SIGTERM when this script dies, however it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixed_ports(count):
    """Ports below the ephemeral range (a restarted target finds them free: no probe's
    outgoing connection took one meanwhile)."""
    ports = set()
    while len(ports) < count:
        p = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        ports.add(p)
    return sorted(ports)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def http_get(address, path, timeout=10):
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as r:
        return r.status, r.read().decode()


def scrape(address):
    """/metrics as {series: value}, series as printed (name{labels})."""
    _, text = http_get(address, "/metrics")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def writes(m, kind, result=None):
    return sum(v for k, v in m.items() if k.startswith("failoverdns_report_writes_total{") and f'kind="{kind}"' in k
               and (result is None or f'result="{result}"' in k))


def histogram(m, name):
    """(buckets [(le, cumulative count)], sum, count)."""
    buckets = []
    for k, v in m.items():
        if k.startswith(name + "_bucket{"):
            le = k.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
    return sorted(buckets), m.get(name + "_sum", 0.0), m.get(name + "_count", 0.0)


def write_latency(before, after):
    """The report write latency between two scrapes: count, mean and bucket bounds."""
    name = "failoverdns_report_write_seconds"
    b0, s0, c0 = histogram(before, name) if before else ([], 0.0, 0.0)
    b1, s1, c1 = histogram(after, name)
    count = c1 - c0
    if count <= 0:
        return {"writes": 0}
    base = dict(b0)
    delta = [(le, v - base.get(le, 0.0)) for le, v in b1]

    def bound(q):
        for le, v in delta:
            if v >= q * count:
                return le * 1000
        return None
    return {"writes": int(count), "mean_ms": round(1000 * (s1 - s0) / count, 2),
            "p50_ms_at_most": bound(0.5), "p99_ms_at_most": bound(0.99), "max_ms_at_most": bound(1.0)}


class Target:
    """The small epoll HTTP server of bench/probe_scale.py (200 OK, connection closed;
    idle connections held), as `procs` processes in one process group, the ports
    dealt among them; stopped with one killpg(SIGKILL)."""

    def __init__(self, exe, ports, procs=1):
        self.exe, self.ports, self.procs = exe, ports, procs
        self.members = []

    def start(self):
        self.members = []
        for k in range(self.procs):
            group = self.members[0].pid if self.members else 0
            p = subprocess.Popen([self.exe] + [f"127.0.0.1:{port}" for port in self.ports[k::self.procs]],
                                 stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent,
                                 process_group=group)
            self.members.append(p)
        for p in self.members:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("the target did not start")

    def kill(self):
        if self.members:
            try:
                os.killpg(self.members[0].pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for p in self.members:
                p.wait()
            self.members = []

    def cpu(self):
        return sum(cpu_seconds(p.pid) for p in self.members)


class Replica:
    def __init__(self, name, binary, kubeconfig, directory, extra=()):
        self.name = name
        self.dns_port, self.admin_port = free_port(), free_port()
        self.admin = f"127.0.0.1:{self.admin_port}"
        self.dns = ("127.0.0.1", self.dns_port)
        self.log_path = os.path.join(directory, f"{name}-{int(time.time() * 1000)}.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_DNS_")}
        env.update({"KUBECONFIG": kubeconfig, "POD_NAME": name, "POD_NAMESPACE": LEASE_NS, "NO_COLOR": "1"})
        self.command = [binary, "serve", "--zone", ZONE, "--dns-addr", f"127.0.0.1:{self.dns_port}",
                        "--admin-addr", self.admin, "--lease-namespace", LEASE_NS, *extra]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=log, env=env, preexec_fn=die_with_parent)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.5)

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; log in {self.log_path}")
            try:
                if http_get(self.admin, "/readyz", 1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready; log in {self.log_path}")

    def metrics(self):
        return scrape(self.admin)

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        """SIGTERM, SIGKILL after 15 s: (seconds it took, exit code, killed)."""
        t, killed = time.monotonic(), False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                killed = True
        self.sock.close()
        return round(time.monotonic() - t, 2), self.proc.returncode, killed

    def warnings(self):
        with open(self.log_path, errors="replace") as f:
            return [line.rstrip() for line in f
                    if (" WARN " in line or " ERROR " in line) and "Server cert bypassed" not in line]


# ------------------------------------------------------------------ DNS
def qname(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def query(sock, dns, name):
    """One A query; the first A record's address, or None."""
    qid = random.randrange(65536)
    sock.sendto(struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + qname(name) + struct.pack(">HH", 1, 1), dns)
    while True:
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            return None
        if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
            break
    if struct.unpack(">H", data[6:8])[0] == 0:
        return None
    return ".".join(str(b) for b in data[-4:])


def wait_all(replicas, name, want, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(query(r.sock, r.dns, name) == want for r in replicas):
            return
        time.sleep(0.01)
    raise RuntimeError(f"not every replica answers {want} for {name}")


def switch(replicas, name, want, t0, timeout=60.0):
    """Polls every replica (one query each per round, rounds ~1 ms apart) until every
    one answers `want`: each replica's time (s since t0) of its first such answer, and
    how often a replica that had switched answered otherwise again."""
    first = [None] * len(replicas)
    back = 0
    while True:
        for i, r in enumerate(replicas):
            answer = query(r.sock, r.dns, name)
            now = time.monotonic() - t0
            if answer == want:
                if first[i] is None:
                    first[i] = now
            elif first[i] is not None:
                back += 1
                first[i] = None
        if all(t is not None for t in first):
            return first, back
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"not every replica answered {want} within {timeout} s: {first}")
        time.sleep(0.001)


class MassDns:
    """Many names asked of one replica at a time, pipelined: query id = name index."""

    CHUNK = 256

    def __init__(self, replicas, names):
        self.replicas = replicas
        self.packets = [struct.pack(">HHHHHH", i, 0, 1, 0, 0, 0) + qname(n) + struct.pack(">HH", 1, 1)
                        for i, n in enumerate(names)]
        self.socks = []
        for _ in replicas:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            s.settimeout(0.05)
            self.socks.append(s)

    def ask(self, r, indices, t0=0.0):
        """{index: (address or None, seconds since t0 when the answer came)}."""
        sock, dest = self.socks[r], self.replicas[r].dns
        out = {}
        pending = list(indices)
        for _ in range(5):
            for start in range(0, len(pending), self.CHUNK):
                chunk = pending[start:start + self.CHUNK]
                for i in chunk:
                    sock.sendto(self.packets[i], dest)
                waiting = set(chunk)
                while waiting:
                    try:
                        data = sock.recv(4096)
                    except socket.timeout:
                        break
                    now = time.monotonic() - t0
                    if len(data) < 12:
                        continue
                    i = struct.unpack(">H", data[:2])[0]
                    answer = ".".join(str(b) for b in data[-4:]) if struct.unpack(">H", data[6:8])[0] else None
                    if i in waiting or i not in out:
                        out[i] = (answer, now)
                    waiting.discard(i)
            pending = [i for i in pending if i not in out]
            if not pending:
                break
        return out

    def close(self):
        for s in self.socks:
            s.close()


# ------------------------------------------------------------------ control plane
def control_plane(directory, crds):
    subprocess.run(["bash", SCRIPT, "build"], check=True)
    subprocess.run(["bash", SCRIPT, "start", directory, "--watch", str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL)
    bin_dir = subprocess.run(["bash", SCRIPT, "bin-dir"], capture_output=True, text=True, check=True).stdout.strip()
    kubectl = os.path.join(bin_dir, "kubectl")
    kubeconfig = os.path.join(directory, "kubeconfig")
    subprocess.run([kubectl, "--kubeconfig", kubeconfig, "apply", "-f", crds], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=Established", "crd", "--all",
                    "--timeout=60s"], check=True, stdout=subprocess.DEVNULL)
    pids = {}
    for name, comm in (("apiserver", "kube-apiserver"), ("etcd", "etcd")):
        with open(os.path.join(directory, f"{name}.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != comm[:15]:
                raise RuntimeError(f"{name}.pid is not {comm}")
        pids[name] = pid
    return kubeconfig, kubectl, pids


def create(api, ns, plural, name, spec, kind):
    status, out = api.call("POST", f"{GROUP}/namespaces/{ns}/{plural}",
                           {"apiVersion": "failoverdns.io/v1alpha1", "kind": kind,
                            "metadata": {"name": name, "namespace": ns}, "spec": spec})
    if status not in (200, 201):
        raise RuntimeError(f"create {plural}/{name}: {status} {out}")


def pair_objects(ns, prefix, host, check):
    objects = []
    for role, ip in (("PRIMARY", PRIMARY), ("SECONDARY", SECONDARY)):
        spec = {"name": host, "type": "A", "ttl": 60, "routingPolicy": "Failover",
                "setIdentifier": role.lower(), "failover": role, "values": [ip]}
        if role == "PRIMARY":
            spec["healthCheckName"] = check
        objects.append((f"{GROUP}/namespaces/{ns}/failoverrecords",
                        {"apiVersion": "failoverdns.io/v1alpha1", "kind": "FailoverRecord",
                         "metadata": {"name": f"{prefix}-{role.lower()}", "namespace": ns}, "spec": spec}))
    return objects


# ------------------------------------------------------------------ measurements
def stats(values):
    values = sorted(values)
    if not values:
        return {}
    return {"median": round(statistics.median(values), 1), "p90": round(percentile(values, 90), 1),
            "p99": round(percentile(values, 99), 1), "max": round(values[-1], 1), "n": len(values)}


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_replicas(args, ctx, count, extra=()):
    replicas = [Replica(NAMES[i], args.binary, ctx["kubeconfig"], ctx["dir"], extra) for i in range(count)]
    ctx["replicas"] = replicas
    for r in replicas:
        r.wait_ready()
    return replicas


def stop_replicas(ctx, phase=None, writes_reports=True):
    """Stops the replicas (SIGTERM: a clean stop deletes each one's report); their
    WARN/ERROR lines are counted by pattern (digits as #), and the reports still
    there once all have stopped are counted."""
    replicas = ctx.get("replicas", [])
    for r in replicas:
        summary = ctx.setdefault("warnings", {})
        for line in r.warnings():
            text = line.split("Z ", 1)[-1].strip()
            pattern = re.sub(r"[0-9]+", "#", text)[:300]
            entry = summary.setdefault(pattern, {"count": 0, "replicas": [], "phases": [], "example": text[:400]})
            entry["count"] += 1
            if r.name not in entry["replicas"]:
                entry["replicas"].append(r.name)
            if phase and phase not in entry["phases"]:
                entry["phases"].append(phase)
        took, code, killed = r.stop()
        ctx.setdefault("stops", {})[f"{phase}/{r.name}"] = {"seconds": took, "exit_code": code, "sigkilled": killed}
    ctx["replicas"] = []
    if replicas and phase and "api" in ctx and writes_reports:
        _, out = ctx["api"].call("GET", f"{GROUP}/namespaces/{LEASE_NS}/checkerreports")
        # Only this phase's replicas' reports (an earlier phase's leftover is not theirs).
        names = {r.name for r in replicas}
        left = [o["metadata"]["name"] for o in (out or {}).get("items", []) if o["metadata"]["name"] in names]
        ctx.setdefault("reports_left_after_stop", {})[phase] = left
        for r in replicas:
            if r.name in left:
                # What the replica whose report stayed said last.
                with open(r.log_path, errors="replace") as f:
                    tail = [line.rstrip()[:300] for line in f if "Server cert bypassed" not in line][-6:]
                ctx.setdefault("log_tail_of_report_left", {})[f"{phase}/{r.name}"] = tail


def wait_live(replicas, want, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(r.metrics().get("failoverdns_checkers_live") == want for r in replicas):
            return
        time.sleep(0.1)
    raise RuntimeError(f"checkers_live never reached {want}")


def steady(replicas, seconds, ctx):
    """Report writes, disagreements and CPU over `seconds` of nothing happening."""
    procs = {r.name: r.cpu for r in replicas}
    procs.update({name: (lambda pid=pid: cpu_seconds(pid)) for name, pid in ctx["pids"].items()})
    before = {r.name: r.metrics() for r in replicas}
    cpu0 = {name: f() for name, f in procs.items()}
    t = time.monotonic()
    disagree = 0
    while time.monotonic() - t < seconds:
        time.sleep(min(5, seconds - (time.monotonic() - t)))
        disagree = max(disagree, max(r.metrics().get("failoverdns_checks_checkers_disagree", 0) for r in replicas))
    wall = time.monotonic() - t
    after = {r.name: r.metrics() for r in replicas}
    cpu1 = {name: f() for name, f in procs.items()}
    out = {"seconds": round(wall, 1), "max_checks_checkers_disagree": disagree, "per_replica": {},
           "cpu_cores": {name: round((cpu1[name] - cpu0[name]) / wall, 3) for name in procs}}
    for r in replicas:
        b, a = before[r.name], after[r.name]
        out["per_replica"][r.name] = {
            "full": writes(a, "full") - writes(b, "full"), "renewal": writes(a, "renewal") - writes(b, "renewal"),
            "errors": writes(a, "full", "error") + writes(a, "renewal", "error")
            - writes(b, "full", "error") - writes(b, "renewal", "error"),
            "write_latency": write_latency(b, a)}
    return out


def failover_mode(args, ctx, mode):
    """Trials of goal 1 and 2 in one mode; for mode quorum also the steady window."""
    count = 1 if mode == "single" else 3
    extra = ["--checker-quorum", "0"] if mode == "quorum0" else []
    replicas = start_replicas(args, ctx, count, extra)
    result = {"replicas": count, "flags": extra}
    try:
        if mode != "quorum0":
            wait_live(replicas, count)
        wait_all(replicas, ctx["www"], PRIMARY)
        time.sleep(2)
        if mode == "quorum" and args.steady:
            result["steady"] = steady(replicas, args.steady, ctx)
        start_scrape = {r.name: r.metrics() for r in replicas}
        kills, recoveries, back, loads = [], [], 0, []
        target = ctx["www_target"]
        for _ in range(args.trials):
            wait_all(replicas, ctx["www"], PRIMARY)
            time.sleep(random.uniform(0.2, 0.6))
            loads.append(os.getloadavg()[0])
            t0 = time.monotonic()
            target.kill()
            times, b = switch(replicas, ctx["www"], SECONDARY, t0)
            back += b
            kills.append([round(1000 * t, 2) for t in times])
            time.sleep(random.uniform(0.2, 0.4))
            t1 = time.monotonic()
            target.start()
            times, b = switch(replicas, ctx["www"], PRIMARY, t1)
            back += b
            recoveries.append([round(1000 * t, 2) for t in times])
        end_scrape = {r.name: r.metrics() for r in replicas}
        result.update({
            "kill_to_all_secondary_ms": stats([max(t) for t in kills]),
            "kill_to_first_secondary_ms": stats([min(t) for t in kills]),
            "restart_to_all_primary_ms": stats([max(t) for t in recoveries]),
            "window_ms": {"kill": stats([max(t) - min(t) for t in kills]),
                          "recovery": stats([max(t) - min(t) for t in recoveries]),
                          "both": stats([max(t) - min(t) for t in kills + recoveries])},
            "answered_back": back,
            "load_1m_at_kills": [round(x, 2) for x in loads],
            "kills_ms_per_replica": kills, "recoveries_ms_per_replica": recoveries,
            "report_writes_during_trials": {r.name: {"full": writes(end_scrape[r.name], "full") - writes(start_scrape[r.name], "full"),
                                                     "renewal": writes(end_scrape[r.name], "renewal") - writes(start_scrape[r.name], "renewal")}
                                            for r in replicas},
            "write_latency_during_trials": {r.name: write_latency(start_scrape[r.name], end_scrape[r.name]) for r in replicas},
        })
    finally:
        stop_replicas(ctx, mode, writes_reports=mode != "quorum0")
    return result


def mass_wait(dns, replicas, want, t0, indices, timeout, pause=0.0):
    """Asks every replica for the names it has not been seen to answer `want` for, round
    after round, until none is left. Returns (last first-`want` answer, last other answer)
    in s since t0, and the names left per replica if the timeout came first."""
    left = [set(indices) for _ in replicas]
    last_want, last_other = 0.0, 0.0
    progress = []
    while any(left):
        progress.append((round(time.monotonic() - t0, 3), [len(x) for x in left]))
        for r in range(len(replicas)):
            if not left[r]:
                continue
            for i, (answer, at) in dns.ask(r, sorted(left[r]), t0).items():
                if answer == want:
                    left[r].discard(i)
                    last_want = max(last_want, at)
                else:
                    last_other = max(last_other, at)
        if time.monotonic() - t0 > timeout:
            break
        if pause:
            time.sleep(pause)
    progress.append((round(time.monotonic() - t0, 3), [len(x) for x in left]))
    return last_want, last_other, [len(x) for x in left], progress


def thin(progress, keep=60):
    """At most `keep` entries of a progress list, the first and the last kept."""
    if len(progress) <= keep:
        return progress
    step = len(progress) / (keep - 1)
    return [progress[int(k * step)] for k in range(keep - 1)] + [progress[-1]]


def patch_all(api, paths, patch):
    def one(path):
        status, out = api.call("PATCH", path, patch, "application/merge-patch+json")
        if status != 200:
            raise RuntimeError(f"PATCH {path}: {status} {out}")
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, paths, chunksize=64))


def mass_run(args, ctx, api):
    n = args.mass
    thresholds = [int(x) for x in str(args.mass_threshold).split(",")]
    ports = fixed_ports(args.target_ports)
    target = Target(ctx["target_exe"], ports, args.target_procs)
    ctx["mass_target"] = target
    target.start()
    api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MASS_NS}})
    objects = []
    for i in range(n):
        spec = {"type": "HTTP", "ipAddress": "127.0.0.1", "port": ports[i % len(ports)], "resourcePath": f"/c{i}",
                "requestInterval": args.mass_interval, "failureThreshold": thresholds[0]}
        objects.append((f"{GROUP}/namespaces/{MASS_NS}/healthchecks",
                        {"apiVersion": "failoverdns.io/v1alpha1", "kind": "HealthCheck",
                         "metadata": {"name": f"c{i}", "namespace": MASS_NS}, "spec": spec}))
        objects += pair_objects(MASS_NS, f"m{i}", f"m{i}.{ZONE}", f"c{i}")
    t = time.monotonic()
    api.create_all(objects)
    result = {"checks": n, "interval": args.mass_interval, "failure_thresholds": thresholds,
              "target_processes": args.target_procs, "target_ports": len(ports),
              "create_s": round(time.monotonic() - t, 1)}
    names = [f"m{i}.{ZONE}" for i in range(n)]
    indices = list(range(0, n, args.mass_sample)) if args.mass_sample > 1 else list(range(n))
    result["names_polled_per_replica"] = len(indices)
    replicas = start_replicas(args, ctx, 3)
    dns = MassDns(replicas, names)
    try:
        wait_live(replicas, 3)
        t = time.monotonic()
        _, _, left, _ = mass_wait(dns, replicas, PRIMARY, t, range(n), 120, 0.5)
        if any(left):
            raise RuntimeError(f"PRIMARY not answered for every name: {left}")

        def watches_open(timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all(r.metrics().get("failoverdns_probe_watch_connections", 0) >= n for r in replicas):
                    return time.monotonic()
                time.sleep(1)
            raise RuntimeError("the watch connections did not all open: "
                               + str([r.metrics().get("failoverdns_probe_watch_connections") for r in replicas]))
        watches_open(300)
        result["warmup_s"] = round(time.monotonic() - t, 1)
        if args.steady:
            result["steady"] = steady(replicas, args.steady, ctx)
        procs = {r.name: r.cpu for r in replicas}
        procs.update({name: (lambda pid=pid: cpu_seconds(pid)) for name, pid in ctx["pids"].items()})
        result["by_threshold"] = {}
        for th_index, threshold in enumerate(thresholds):
            if th_index:
                t = time.monotonic()
                patch_all(api, [f"{GROUP}/namespaces/{MASS_NS}/healthchecks/c{i}" for i in range(n)],
                          {"spec": {"failureThreshold": threshold}})
                time.sleep(10)
                watches_open(120)
                print(f"failureThreshold {threshold} set on every check in {time.monotonic() - t:.1f} s", flush=True)
            trials = []
            result["by_threshold"][str(threshold)] = trials
            for k in range(args.mass_trials):
                # The same length of time as the event window, just before it: the baseline.
                base0 = {name: f() for name, f in procs.items()}
                time.sleep(args.event_window)
                load = os.getloadavg()[0]
                m0 = {r.name: r.metrics() for r in replicas}
                cpu0 = {name: f() for name, f in procs.items()}
                own0 = time.process_time()
                t0, wall = time.monotonic(), time.time()
                target.kill()
                last_secondary, last_primary, left, progress = mass_wait(dns, replicas, SECONDARY, t0, indices, 150, 0.002)
                cpu_switched = {name: f() for name, f in procs.items()}
                own = time.process_time() - own0
                if any(left):
                    raise RuntimeError(f"not every replica answered the SECONDARY within 150 s: {left} names left")
                # Every name, once more: none went back.
                check = {}
                for r in range(3):
                    answers = dns.ask(r, range(n), t0)
                    check[replicas[r].name] = sum(1 for a, _ in answers.values() if a != SECONDARY)
                checked = time.monotonic() - t0
                time.sleep(max(0.0, t0 + args.event_window - time.monotonic()))
                m1 = {r.name: r.metrics() for r in replicas}
                cpu1 = {name: f() for name, f in procs.items()}
                window = time.monotonic() - t0
                trial = {
                    "killed_at": time.strftime("%H:%M:%S", time.gmtime(wall)) + f"{wall % 1:.3f}"[1:] + "Z",
                    "load_1m_before": round(load, 2),
                    "all_secondary_s": round(last_secondary, 3),
                    "last_primary_answer_s": round(last_primary, 3),
                    "full_check_after_s": round(checked, 2), "not_secondary_in_full_check": check,
                    "poller_cpu_s": round(own, 2),
                    "names_left_per_round": thin(progress),
                    "report_writes": {r.name: {"full": writes(m1[r.name], "full") - writes(m0[r.name], "full"),
                                               "renewal": writes(m1[r.name], "renewal") - writes(m0[r.name], "renewal"),
                                               "errors": writes(m1[r.name], "full", "error") - writes(m0[r.name], "full", "error")}
                                      for r in replicas},
                    "write_latency": {r.name: write_latency(m0[r.name], m1[r.name]) for r in replicas},
                    "early_probes": {r.name: m1[r.name].get("failoverdns_probe_early_total", 0)
                                     - m0[r.name].get("failoverdns_probe_early_total", 0) for r in replicas},
                    "cpu_s_until_switched": {name: round(cpu_switched[name] - cpu0[name], 2) for name in procs},
                    "event_window_s": round(window, 2),
                    "cpu_s_event_window": {name: round(cpu1[name] - cpu0[name], 2) for name in procs},
                    "cpu_s_same_time_before": {name: round(cpu0[name] - base0[name], 2) for name in procs},
                    "checkers_live": {r.name: m1[r.name].get("failoverdns_checkers_live") for r in replicas},
                    "checks_checkers_disagree": {r.name: m1[r.name].get("failoverdns_checks_checkers_disagree") for r in replicas},
                }
                if k == 0 and th_index == 0:
                    kubectl = [ctx["kubectl"], "--kubeconfig", ctx["kubeconfig"], "-n", LEASE_NS, "get", "checkerreport"]
                    one = subprocess.run(kubectl + [NAMES[0], "-o", "json"], capture_output=True, check=True).stdout
                    every = subprocess.run(kubectl + ["-o", "json"], capture_output=True, check=True).stdout
                    spec = json.loads(one)["spec"]
                    result["report_bytes"] = {"one": len(one), "list_of_3": len(every),
                                              "unhealthy_count": spec.get("unhealthyCount"),
                                              "gzip_base64_chars": len(spec.get("unhealthyGzip") or "")}
                t1 = time.monotonic()
                target.start()
                back, _, left, _ = mass_wait(dns, replicas, PRIMARY, t1, range(n), 200, 0.5)
                trial["restart_to_all_primary_s"] = round(back, 1) if not any(left) else None
                watches_open(200)
                trials.append(trial)
                print(f"mass trial {k + 1} (failureThreshold {threshold}): all SECONDARY after {trial['all_secondary_s']} s, full writes "
                      f"{[w['full'] for w in trial['report_writes'].values()]}", flush=True)
    finally:
        dns.close()
        stop_replicas(ctx, "mass")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--modes", default="quorum,quorum0,single")
    parser.add_argument("--steady", type=int, default=60, help="seconds of the steady windows (0: none)")
    parser.add_argument("--mass", type=int, default=10_000, help="checks of the mass failure (0: none)")
    parser.add_argument("--mass-interval", default="30s")
    parser.add_argument("--mass-threshold", default="1,3",
                        help="failureThreshold of the mass checks; a list runs the trials for each, patching every check in between")
    parser.add_argument("--mass-trials", type=int, default=3)
    parser.add_argument("--mass-sample", type=int, default=1, help="poll every N-th name after a mass kill (1: all)")
    parser.add_argument("--event-window", type=float, default=5.0)
    parser.add_argument("--target-procs", type=int, default=3)
    parser.add_argument("--target-ports", type=int, default=12)
    parser.add_argument("--binary", default=os.path.join(REPO, "target", "release", "failover-dns"))
    parser.add_argument("--crds", default=os.path.join(REPO, "crds"),
                        help="the CRDs to install: those of the binary's commit (a CRD without a field the "
                             "binary writes makes the API server drop it)")
    parser.add_argument("--label", default="", help="what the binary is (e.g. the commit it was built from)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the control plane's directory and the logs")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit("build the release binary first: cargo build --release")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    directory = tempfile.mkdtemp(prefix="fodns-quorum-")
    ctx = {"dir": directory}
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "binary": os.path.relpath(args.binary, REPO),
              "label": args.label,
              "repo_head": subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                          text=True).stdout.strip(),
              "load_1m_at_start": os.getloadavg()[0], "args": vars(args)}
    try:
        ctx["kubeconfig"], ctx["kubectl"], ctx["pids"] = control_plane(directory, args.crds)
        ctx["target_exe"] = build_go_server(directory, GO_EPOLL_SERVER)
        api = Api(directory)
        ctx["api"] = api
        api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}})
        www_port = fixed_ports(1)
        ctx["www_target"] = Target(ctx["target_exe"], www_port)
        ctx["www_target"].start()
        ctx["www"] = f"www.{ZONE}"
        create(api, "default", "healthchecks", "www",
               {"type": "HTTP", "ipAddress": "127.0.0.1", "port": www_port[0], "resourcePath": "/",
                "requestInterval": "200ms", "failureThreshold": 1}, "HealthCheck")
        for path, body in pair_objects("default", "www", ctx["www"], "www"):
            status, out = api.call("POST", path, body)
            if status not in (200, 201):
                raise RuntimeError(f"{status} {out}")
        report["failover"] = {}
        for mode in [m for m in args.modes.split(",") if m]:
            report["failover"][mode] = failover_mode(args, ctx, mode)
            f = report["failover"][mode]
            print(f"{mode}: kill -> all SECONDARY {f['kill_to_all_secondary_ms']}, window {f['window_ms']['both']}",
                  flush=True)
        if args.mass:
            report["mass"] = mass_run(args, ctx, api)
        report["replica_warnings"] = ctx.get("warnings", {})
        report["reports_left_after_clean_stop"] = ctx.get("reports_left_after_stop", {})
        report["log_tail_of_report_left"] = ctx.get("log_tail_of_report_left", {})
        report["replica_stops"] = ctx.get("stops", {})
        report["load_1m_at_end"] = os.getloadavg()[0]
    finally:
        stop_replicas(ctx)
        for key in ("www_target", "mass_target"):
            if key in ctx:
                ctx[key].kill()
        subprocess.run(["bash", SCRIPT, "stop", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if args.keep:
            print(f"kept {directory}")
        else:
            subprocess.run(["rm", "-rf", directory])
    out = args.out or os.path.join(HERE, "results", "quorum", time.strftime("%Y-%m-%d") + ".json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps({k: v for k, v in report.items() if k != "args"}, indent=2)[:20000])
    print(f"written: {out}")


if __name__ == "__main__":
    main()
