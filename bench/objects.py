#!/usr/bin/env python3
"""Kubernetes objects as targets and values (spec section 7, issue 21) against a real
kube-apiserver + etcd (scripts/control-plane.sh), the release binary in cluster mode.

    bench/objects.py [--services 10000] [--refs 100,1000] [--flips 300] [--settle 10]

One control plane; --services headless Services (svc-N, namespace bench) each with one
EndpointSlice (1-3 endpoints on 198.18.0.0/15, ready, one port). The addresses are only
data: nothing connects to them (`address: Endpoints` and `type: Endpoints` read the
slices, nothing is probed). Headless, because the test control plane allocates cluster
IPs from a /24: 10,000 ClusterIP Services do not fit (the in-memory benchmark,
`cargo bench --bench objects -- memory`, measures Services with cluster IPs).

* memory: controller A starts with nothing but the empty control plane; its VmRSS once
  settled is the baseline (median of 5 samples a second after --settle s). Then the
  Services and slices are created (16 keep-alive connections) while A watches: A's
  VmRSS once settled ("watched as created"). Then controller B starts with everything
  in place: its VmRSS once the listing settled ("listed at start"), and again --late s
  after its start. Bytes per object =
  (VmRSS - baseline) / (Services + slices); `smaps_rollup` of A and B (anonymous,
  LazyFree) is recorded too. A is stopped; B serves what follows. `--refs ""` stops
  after the memory part.
* flip latency, for each --refs R: the first R Services are referenced (the rest stay
  unreferenced): even ones by a FailoverRecord `valuesFrom: {service: {name: svc-N,
  address: Endpoints}}` (answers = the ready endpoint addresses; these slices have 2-3
  endpoints), odd ones by a HealthCheck `type: Endpoints` + `serviceRef: {name: svc-N}`
  used by the PRIMARY of a failover pair (192.0.2.1 / SECONDARY 192.0.2.2). --flips
  times, sequentially, a random referenced Service's slice is patched (JSON merge
  patch of `endpoints`): a valuesFrom Service's first endpoint flips `ready`, a check's
  Service has every endpoint flip (no ready endpoint: the pair fails over). The time is
  taken from the API server's acknowledgement of the PATCH (its response) to the first
  DNS answer (UDP to the controller, polled every ~1 ms) showing the change; p50 / p99 /
  max, overall and per kind. Goal: p99 <= 100 ms. The 1,000 configuration adds refs to
  the same control plane and controller.

Results are printed as Markdown and appended to bench/results/objects.jsonl. Only
127.0.0.1 is used; the control plane and every controller started are stopped.
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cluster import GROUP, SCRIPT, Api, control_plane, http_get, metric, namespace, serve, stop  # noqa: E402
from recovery import wait_until  # noqa: E402
from scale import BINARY, query, rss_mib  # noqa: E402

ZONE = "big.test"  # the zone cluster.serve() serves
NS = "bench"
DISCOVERY = "/apis/discovery.k8s.io/v1"


def address(i, j):
    """Endpoint j of Service i: 198.18.0.0/15, never connected to."""
    n = i * 3 + j
    return f"198.{18 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"


def endpoint_count(i):
    return 2 + (i // 2) % 2 if i % 2 == 0 else 1 + (i // 2) % 3


def service_object(i):
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": NS},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
    return f"/api/v1/namespaces/{NS}/services", body


def endpoints(i, ready):
    return [{"addresses": [address(i, j)], "conditions": {"ready": r}} for j, r in enumerate(ready)]


def slice_object(i, ready):
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-x1", "namespace": NS, "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": endpoints(i, ready)}
    return f"{DISCOVERY}/namespaces/{NS}/endpointslices", body


def references(i):
    """What references Service i: a valuesFrom record (even), or an Endpoints check and
    the failover pair using it (odd)."""
    def record(name, spec):
        return (f"{GROUP}/namespaces/{NS}/failoverrecords",
                {"apiVersion": "failoverdns.io/v1alpha1", "kind": "FailoverRecord",
                 "metadata": {"name": name, "namespace": NS}, "spec": spec})
    if i % 2 == 0:
        spec = {"name": f"v{i}.{ZONE}", "type": "A", "ttl": 5,
                "valuesFrom": {"service": {"name": f"svc-{i}", "address": "Endpoints"}}}
        return [record(f"v{i}", spec)]
    check = (f"{GROUP}/namespaces/{NS}/healthchecks",
             {"apiVersion": "failoverdns.io/v1alpha1", "kind": "HealthCheck",
              "metadata": {"name": f"hc{i}", "namespace": NS},
              "spec": {"type": "Endpoints", "serviceRef": {"name": f"svc-{i}"}}})
    pair = []
    for role, value in (("PRIMARY", "192.0.2.1"), ("SECONDARY", "192.0.2.2")):
        spec = {"name": f"f{i}.{ZONE}", "type": "A", "ttl": 5, "values": [value], "routingPolicy": "Failover",
                "setIdentifier": role.lower(), "failover": role}
        if role == "PRIMARY":
            spec["healthCheckName"] = f"hc{i}"
        pair.append(record(f"f{i}-{role.lower()}", spec))
    return [check, *pair]


def expected(i, ready):
    if i % 2 == 0:
        return sorted(address(i, j) for j, r in enumerate(ready) if r)
    return ["192.0.2.1"] if any(ready) else ["192.0.2.2"]


def host(i):
    return f"v{i}.{ZONE}" if i % 2 == 0 else f"f{i}.{ZONE}"


def settled_rss(pid, settle):
    time.sleep(settle)
    samples = []
    for _ in range(5):
        samples.append(rss_mib(pid))
        time.sleep(1)
    return statistics.median(samples)


def smaps(pid):
    """/proc/PID/smaps_rollup in MiB: what of VmRSS is anonymous, and of that what the
    allocator gave back lazily (MADV_FREE: counted until the kernel needs the pages)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Anonymous", "LazyFree", "Private_Dirty"):
                out[key] = int(rest.split()[0]) / 1024
    return out


def start(kubeconfig, label, timeout=300):
    proc, dns, admin, log = serve([], {"KUBECONFIG": kubeconfig, "POD_NAME": f"bench-{label}"})
    proc.dns, proc.admin, proc.log_path = dns, admin, log
    t0 = proc.started = time.monotonic()

    def ready():
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited; log in {log}")
        try:
            return http_get(admin, "/readyz")[0] == 200
        except OSError:
            return False
    wait_until("/readyz", ready, timeout)
    proc.ready_s = time.monotonic() - t0
    return proc


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(values):
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 1), "p99_ms": round(percentile(values, 99), 1),
            "max_ms": round(max(values), 1)}


def flips(api, proc, refs, ready, count, rng):
    by_kind = {"valuesFrom": [], "Endpoints check": []}
    for _ in range(count):
        i = rng.randrange(refs)
        state = ready[i]
        if i % 2 == 0:
            state[0] = not state[0]
        else:
            flipped = not state[0]
            state[:] = [flipped] * len(state)
        want = expected(i, state)
        path = f"{DISCOVERY}/namespaces/{NS}/endpointslices/svc-{i}-x1"
        status, out = api.call("PATCH", path, {"endpoints": endpoints(i, state)}, "application/merge-patch+json")
        acknowledged = time.monotonic()
        if status != 200:
            raise RuntimeError(f"PATCH {path}: {status} {out}")
        name = host(i)
        while query(proc.dns, name, timeout=0.2) != want:
            if time.monotonic() - acknowledged > 30:
                raise RuntimeError(f"{name}: {want} not served within 30 s")
            if proc.poll() is not None:
                raise RuntimeError("the server exited")
            time.sleep(0.001)
        by_kind["valuesFrom" if i % 2 == 0 else "Endpoints check"].append((time.monotonic() - acknowledged) * 1000)
        time.sleep(rng.uniform(0.01, 0.05))
    return by_kind


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop what was started
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--refs", default="100,1000")
    parser.add_argument("--flips", type=int, default=300)
    parser.add_argument("--settle", type=float, default=10)
    parser.add_argument("--late", type=float, default=60, help="B's VmRSS sampled again this long after its start")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    if not os.path.exists(BINARY):
        sys.exit("build the release binary first: cargo build --release")
    rng = random.Random(args.seed)
    n = args.services
    ready = {i: [True] * endpoint_count(i) for i in range(n)}
    directory = tempfile.mkdtemp(prefix="failover-dns-bench-objects-")
    started = []
    row = {"date": time.strftime("%Y-%m-%d %H:%M"), "services": n, "slices": n, "load_before": os.getloadavg()}
    try:
        kubeconfig = control_plane(directory)
        api = Api(directory)
        namespace(api, NS)
        a = start(kubeconfig, "a")
        started.append(a)
        baseline = settled_rss(a.pid, args.settle)
        t = time.monotonic()
        api.create_all([service_object(i) for i in range(n)])
        api.create_all([slice_object(i, ready[i]) for i in range(n)])
        row["create_s"] = round(time.monotonic() - t, 1)
        watched = settled_rss(a.pid, args.settle)
        row["watched_smaps_mib"] = smaps(a.pid)
        b = start(kubeconfig, "b")
        started.append(b)
        listed = settled_rss(b.pid, args.settle)
        row["listed_smaps_mib"] = smaps(b.pid)
        time.sleep(max(0.0, args.late - (time.monotonic() - b.started)))
        late = rss_mib(b.pid)
        stop(a)
        started.remove(a)
        objects = 2 * n
        row.update({"baseline_rss_mib": round(baseline, 2), "watched_rss_mib": round(watched, 2),
                    "listed_rss_mib": round(listed, 2), "listed_ready_s": round(b.ready_s, 2),
                    "late_s": args.late, "listed_late_rss_mib": round(late, 2),
                    "watched_bytes_per_object": round((watched - baseline) * 2**20 / objects),
                    "listed_bytes_per_object": round((listed - baseline) * 2**20 / objects)})
        print(f"memory: baseline {baseline:.1f} MiB; {n} Services + {n} slices watched as created: {watched:.1f} MiB "
              f"({row['watched_bytes_per_object']} B/object); listed at start: {listed:.1f} MiB "
              f"({row['listed_bytes_per_object']} B/object), ready after {b.ready_s:.1f} s; {args.late:.0f} s after its start: "
              f"{late:.1f} MiB ({(late - baseline) * 2**20 / objects:.0f} B/object); smaps_rollup MiB: watched "
              f"{row['watched_smaps_mib']}, listed {row['listed_smaps_mib']}", flush=True)
        row["flips"] = []
        done = 0
        for refs in [int(r) for r in args.refs.split(",") if r]:
            objects = [o for i in range(done, refs) for o in references(i)]
            api.create_all(objects)
            done = refs
            for i in (refs - 2, refs - 1):
                wait_until(f"{host(i)} served", lambda i=i: query(b.dns, host(i), timeout=0.2) == expected(i, ready[i]), 120)
            # The new objects' first status writes out of the way (the counter stands still).
            last, deadline = -1.0, time.monotonic() + 180
            while time.monotonic() < deadline:
                now = metric(b.admin, "failoverdns_status_writes_total")
                if now == last:
                    break
                last = now
                time.sleep(3)
            load = os.getloadavg()
            rss_before = rss_mib(b.pid)
            by_kind = flips(api, b, refs, ready, args.flips, rng)
            every = [v for values in by_kind.values() for v in values]
            result = {"referenced": refs, "load": load, "rss_mib": round(rss_before, 1), "all": summary(every)}
            result.update({kind: summary(values) for kind, values in by_kind.items() if values})
            row["flips"].append(result)
            print(f"{refs} referenced: flip -> answer ms p50 / p99 / max: {result['all']['p50_ms']} / "
                  f"{result['all']['p99_ms']} / {result['all']['max_ms']} ({len(every)} flips; "
                  + "; ".join(f"{k}: {result[k]['p50_ms']} / {result[k]['p99_ms']} / {result[k]['max_ms']} ({result[k]['n']})"
                              for k in by_kind if k in result) + f"), load {load[0]:.2f}", flush=True)
    finally:
        for proc in started:
            stop(proc)
        subprocess.run(["bash", SCRIPT, "stop", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(directory, ignore_errors=True)
    row["load_after"] = os.getloadavg()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "objects.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
    print("\n| referenced | flips | flip → answer ms p50 / p99 / max | valuesFrom | Endpoints check |")
    print("|---|---|---|---|---|")
    for r in row["flips"]:
        cell = lambda s: f"{s['p50_ms']} / {s['p99_ms']} / {s['max_ms']}" if s else "-"  # noqa: E731
        print(f"| {r['referenced']} | {r['all']['n']} | {cell(r['all'])} | {cell(r.get('valuesFrom'))} | "
              f"{cell(r.get('Endpoints check'))} |")


if __name__ == "__main__":
    main()
