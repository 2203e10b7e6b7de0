#!/usr/bin/env python3
"""Soak test of the real binary: load, abuse, edits and a flapping target at once.

    bench/soak.py [--minutes 10] [--idle-seconds 20] [--flap-seconds 6]

Starts the release binary standalone on loopback, on a manifest directory with

* a failover pair `fo.soak.test` (PRIMARY 192.0.2.10 with an HTTP check of a loopback
  HTTP server this script runs, SECONDARY 192.0.2.20); the HTTP server answers 200
  "ok" and 503 in turns of --flap-seconds, so the check fails and recovers all along;
* `static.soak.test` (two values, never edited), `edit.soak.test` (one value, edited);
* `nx.soak.test` is not defined: NXDOMAIN.

Then it measures UDP latency idle (one client asking one query at a time) for
--idle-seconds, and for --minutes runs at once:

* query load: UDP clients and a TCP client (one query at a time per connection,
  connections reused for 50 queries) over all four names, each answer checked;
* abuse (from 127.0.0.2): random datagrams, truncated queries, QR=1 packets (never
  to be answered), oversized and garbage TCP messages, connections closed mid-query;
* manifest edits every --edit-seconds: a valid edit of edit.soak.test (a new value,
  which must be served), and half-way between two valid edits an invalid one that
  must change nothing: a YAML syntax error or an invalid address in edit.yaml, a
  record in another file that conflicts with static.soak.test, a garbage file;
* the same idle-latency client as before, for UDP p50/p99 under abuse.

An answer is wrong when it is not in the set of answers allowed at that moment. For
fo.soak.test that is the value of the flap state, or both values within
interval × failureThreshold + 1 s of a flap (the check's transition window); for
edit.soak.test the last valid edit's value, or also the previous one within
--edit-tolerance of an edit. Lost = no answer within 1 s (UDP) or a TCP query that
got no answer. RSS is sampled every 10 s; after --warmup-seconds its min/max and
drift are reported, and the server's CPU time. Load processes run under nice 19,
the server and the latency client do not. Prints a Markdown summary and writes JSON
(--json).
"""

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.path.join(HERE, "..", "target", "release", "failover-dns")

ZONE = "soak.test"
PRIMARY, SECONDARY = "192.0.2.10", "192.0.2.20"
STATIC = ["198.51.100.1", "198.51.100.2"]
INTRUDER = "198.51.100.99"
NAMES = ["fo.soak.test", "static.soak.test", "edit.soak.test", "nx.soak.test"]
INTERVAL_S, THRESHOLD = 1.0, 2
FLAP_TOLERANCE = INTERVAL_S * THRESHOLD + 1.0


# DNS client, ports, atomic writes and /proc readings: shared with bench/scale.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import decode_answer, encode_query, free_port, proc_stat as proc_cpu_s, rss_mib, stop, write_atomically  # noqa: E402


# ------------------------------------------------------------------ schedules

class Plan:
    """What is served when: the flap and edit schedules are functions of the
    (system-wide) monotonic clock, so every process checks answers on its own."""

    def __init__(self, start, flap_s, edit_s, edit_tolerance):
        self.start, self.flap_s, self.edit_s, self.edit_tolerance = start, flap_s, edit_s, edit_tolerance

    def up(self, t):
        return t < self.start or int((t - self.start) // self.flap_s) % 2 == 0

    def edit_index(self, t):
        """Index of the last valid edit written at or before t (0 = the initial file)."""
        return max(0, int((t - self.start) // self.edit_s)) if t >= self.start else 0

    @staticmethod
    def edit_value(k):
        return f"203.0.113.{k % 250 + 1}"

    def allowed(self, name, t_send, t_recv):
        """The answers (rcode, values) acceptable for a query sent at t_send and
        answered at t_recv."""
        if name == "fo.soak.test":
            states = {self.up(t) for t in (t_send - FLAP_TOLERANCE, t_send, t_recv)}
            # A flap inside the window (flap_s > tolerance: at most one).
            first_flip = self.start + self.flap_s * max(0, int((t_send - FLAP_TOLERANCE - self.start) // self.flap_s) + 1)
            if t_send - FLAP_TOLERANCE < first_flip <= t_recv:
                states = {True, False}
            return {(0, (PRIMARY,) if s else (SECONDARY,)) for s in states}
        if name == "static.soak.test":
            return {(0, tuple(STATIC))}
        if name == "edit.soak.test":
            ks = {self.edit_index(t_send - self.edit_tolerance), self.edit_index(t_recv)}
            ks = set(range(min(ks), max(ks) + 1))
            return {(0, (self.edit_value(k),)) for k in ks}
        return {(3, ())}


# ------------------------------------------------------------------ workers

def percentile(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def udp_worker(port, plan, until, nice, latency_only, result_queue):
    if nice:
        os.nice(19)
    rng = random.Random()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(1.0)
    stats = {"sent": 0, "answered": 0, "lost": 0, "wrong": 0, "examples": [], "latencies_us": [], "edits_seen": {}}
    i = 0
    while time.monotonic() < until:
        name = "static.soak.test" if latency_only else NAMES[i % len(NAMES)]
        i += 1
        qid = rng.randrange(65536)
        t_send = time.monotonic()
        stats["sent"] += 1
        answer = None
        try:
            s.send(encode_query(qid, name))
            while answer is None:
                answer = decode_answer(s.recv(4096), qid)
        except OSError:  # timeout, or an ICMP error while the server is away
            pass
        t_recv = time.monotonic()
        if answer is None:
            stats["lost"] += 1
            continue
        stats["answered"] += 1
        if latency_only:
            stats["latencies_us"].append(int((t_recv - t_send) * 1e6))
        check(stats, plan, name, answer, t_send, t_recv, "udp")
        if latency_only:
            time.sleep(0.002)
    result_queue.put(stats)


def check(stats, plan, name, answer, t_send, t_recv, transport):
    rcode, values = answer
    got = (rcode, tuple(values))
    if got not in plan.allowed(name, t_send, t_recv):
        stats["wrong"] += 1
        if len(stats["examples"]) < 20:
            stats["examples"].append({"transport": transport, "name": name, "got": got,
                                      "t": round(t_send - plan.start, 3),
                                      "allowed": sorted(plan.allowed(name, t_send, t_recv))})
    if name == "edit.soak.test" and rcode == 0 and values:
        stats["edits_seen"].setdefault(values[0], t_recv)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def tcp_worker(port, plan, until, result_queue):
    os.nice(19)
    rng = random.Random()
    stats = {"sent": 0, "answered": 0, "lost": 0, "wrong": 0, "examples": [], "latencies_us": [], "edits_seen": {},
             "connections": 0, "connect_errors": 0}
    i = 0
    while time.monotonic() < until:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        except OSError:
            stats["connect_errors"] += 1
            time.sleep(0.1)
            continue
        stats["connections"] += 1
        try:
            for _ in range(50):
                if time.monotonic() >= until:
                    break
                name = NAMES[i % len(NAMES)]
                i += 1
                qid = rng.randrange(65536)
                msg = encode_query(qid, name)
                t_send = time.monotonic()
                stats["sent"] += 1
                sock.sendall(struct.pack(">H", len(msg)) + msg)
                length = struct.unpack(">H", recv_exact(sock, 2))[0]
                data = recv_exact(sock, length)
                t_recv = time.monotonic()
                answer = decode_answer(data, qid)
                if answer is None:
                    stats["lost"] += 1
                    continue
                stats["answered"] += 1
                check(stats, plan, name, answer, t_send, t_recv, "tcp")
        except (OSError, ConnectionError, struct.error):
            stats["lost"] += 1
        finally:
            sock.close()
    result_queue.put(stats)


def abuse_worker(port, until, result_queue):
    """Malformed traffic from 127.0.0.2, at most ~3000 packets/s."""
    os.nice(19)
    rng = random.Random()
    stats = {"random": 0, "truncated": 0, "qr_set": 0, "qr_answered": 0, "tcp_garbage": 0, "tcp_cut": 0}
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.2", 0))
    udp.setblocking(False)
    qr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # only QR=1 packets leave from here
    qr.bind(("127.0.0.2", 0))
    qr.setblocking(False)
    target = ("127.0.0.1", port)
    while time.monotonic() < until:
        for _ in range(100):
            kind = rng.randrange(3)
            query = encode_query(rng.randrange(65536), rng.choice(NAMES), rng.choice([1, 28, 255, 252, 41, 16]))
            try:
                if kind == 0:
                    udp.sendto(rng.randbytes(rng.randrange(0, 600)), target)
                    stats["random"] += 1
                elif kind == 1:
                    udp.sendto(query[:rng.randrange(0, len(query))], target)
                    stats["truncated"] += 1
                else:
                    packet = bytearray(query)
                    packet[2] |= 0x80
                    if rng.random() < 0.5:
                        packet += rng.randbytes(rng.randrange(0, 64))
                    qr.sendto(bytes(packet), target)
                    stats["qr_set"] += 1
            except BlockingIOError:
                pass
        for sock in (udp,):
            try:
                while True:
                    sock.recv(65535)
            except BlockingIOError:
                pass
        try:
            while True:
                qr.recv(65535)
                stats["qr_answered"] += 1
        except BlockingIOError:
            pass
        # Two TCP abusers per round: garbage with a length prefix, and a query cut short.
        for cut in (False, True):
            try:
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.bind(("127.0.0.2", 0))
                c.settimeout(1.0)
                c.connect(target)
                if cut:
                    q = encode_query(1, "static.soak.test")
                    c.sendall(struct.pack(">H", len(q)) + q[: rng.randrange(1, len(q))])
                    stats["tcp_cut"] += 1
                else:
                    junk = rng.randbytes(rng.randrange(0, 2000))
                    c.sendall(struct.pack(">H", rng.randrange(65536)) + junk)
                    stats["tcp_garbage"] += 1
                c.close()
            except OSError:
                pass
        time.sleep(0.03)
    result_queue.put(stats)


# ------------------------------------------------------------------ files

def doc(kind, name, spec):
    return f"---\napiVersion: failoverdns.io/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"


def record(name, host, values, extra=""):
    vals = ", ".join(f'"{v}"' for v in values)
    return doc("FailoverRecord", name, f"{{name: {host}, type: A, ttl: 5{extra}, values: [{vals}]}}")


INVALID_EDITS = ["edit-syntax", "edit-bad-address", "conflict", "garbage-file"]


def editor(work, plan, until, log):
    """Valid edit k at plan.start + k*edit_s; an invalid one half-way between."""
    edit = os.path.join(work, "edit.yaml")
    bad = os.path.join(work, "bad.yaml")
    k, n_invalid = 1, 0
    while True:
        t_valid = plan.start + k * plan.edit_s
        t_invalid = t_valid + plan.edit_s / 2
        if t_valid >= until:
            return
        time.sleep(max(0.0, t_valid - time.monotonic()))
        write_atomically(edit, record("edited", "edit.soak.test", [plan.edit_value(k)]))
        log.append({"t": time.monotonic() - plan.start, "kind": "valid", "value": plan.edit_value(k),
                    "lag_s": time.monotonic() - t_valid})
        if t_invalid >= until:
            return
        time.sleep(max(0.0, t_invalid - time.monotonic()))
        kind = INVALID_EDITS[n_invalid % len(INVALID_EDITS)]
        n_invalid += 1
        if kind == "edit-syntax":
            write_atomically(edit, record("edited", "edit.soak.test", [plan.edit_value(k)]) + "spec: [unclosed\n")
        elif kind == "edit-bad-address":
            write_atomically(edit, record("edited", "edit.soak.test", ["999.1.2.3"]))
        elif kind == "conflict":
            write_atomically(bad, record("intruder", "static.soak.test", [INTRUDER]))
        else:
            write_atomically(bad, "\0\1garbage: [\n" + "x" * 1000)
        log.append({"t": time.monotonic() - plan.start, "kind": kind, "lag_s": time.monotonic() - t_invalid})
        k += 1


# ------------------------------------------------------------------ server

def flapping_http_server(plan):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            up = plan.up(time.monotonic())
            body = b"ok\n" if up else b"down\n"
            self.send_response(200 if up else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def merge(results, key):
    return sum(r.get(key, 0) for r in results)


def run_latency(port, plan, seconds):
    q = mp.Queue()
    p = mp.Process(target=udp_worker, args=(port, plan, time.monotonic() + seconds, False, True, q))
    p.start()
    stats = q.get(timeout=seconds + 60)
    p.join()
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--warmup-seconds", type=float, default=60)
    parser.add_argument("--flap-seconds", type=float, default=6)
    parser.add_argument("--edit-seconds", type=float, default=10)
    parser.add_argument("--edit-tolerance", type=float, default=2.0)
    parser.add_argument("--udp-clients", type=int, default=3)
    parser.add_argument("--tcp-clients", type=int, default=1)
    parser.add_argument("--binary", default=BINARY)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit("build the release binary first: cargo build --release --locked")
    if args.flap_seconds <= FLAP_TOLERANCE:
        sys.exit(f"--flap-seconds must exceed the transition window of {FLAP_TOLERANCE} s")

    work = tempfile.mkdtemp(prefix="failover-dns-soak-")
    plan = Plan(time.monotonic() + 3600, args.flap_seconds, args.edit_seconds, args.edit_tolerance)  # not started
    http = flapping_http_server(plan)
    hport = http.server_address[1]
    with open(os.path.join(work, "failover.yaml"), "w") as f:
        f.write(doc("HealthCheck", "soak-primary",
                    f"{{type: HTTP, ipAddress: 127.0.0.1, port: {hport}, resourcePath: /health, searchString: ok, "
                    f"requestInterval: {int(INTERVAL_S * 1000)}ms, timeout: 500ms, failureThreshold: {THRESHOLD}}}"))
        f.write(record("fo-primary", "fo.soak.test", [PRIMARY],
                       ", routingPolicy: Failover, setIdentifier: primary, failover: PRIMARY, healthCheckName: soak-primary"))
        f.write(record("fo-secondary", "fo.soak.test", [SECONDARY],
                       ", routingPolicy: Failover, setIdentifier: secondary, failover: SECONDARY"))
    with open(os.path.join(work, "static.yaml"), "w") as f:
        f.write(record("static", "static.soak.test", STATIC))
    write_atomically(os.path.join(work, "edit.yaml"), record("edited", "edit.soak.test", [Plan.edit_value(0)]))

    dns, admin = free_port(), free_port()
    log_path = os.path.join(work, "server.log")
    server = subprocess.Popen(
        [args.binary, "serve", "--manifests", work, "--zone", ZONE, "--dns-addr", f"127.0.0.1:{dns}",
         "--admin-addr", f"127.0.0.1:{admin}"],
        stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    try:
        deadline = time.monotonic() + 60
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.2)
            try:
                s.sendto(encode_query(7, "static.soak.test"), ("127.0.0.1", dns))
                if decode_answer(s.recv(4096), 7) == (0, STATIC):
                    break
            except OSError:
                pass
            finally:
                s.close()
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the server did not start: see {log_path}")
            time.sleep(0.1)
        time.sleep(2)  # first probes

        print(f"idle latency for {args.idle_seconds:.0f} s ...", file=sys.stderr, flush=True)
        idle = run_latency(dns, plan, args.idle_seconds)

        seconds = args.minutes * 60
        plan.start = time.monotonic() + 0.5
        until = plan.start + seconds
        print(f"soak for {seconds:.0f} s (server pid {server.pid}, work dir {work}) ...", file=sys.stderr, flush=True)
        q = mp.Queue()
        procs = [mp.Process(target=udp_worker, args=(dns, plan, until, True, False, q)) for _ in range(args.udp_clients)]
        procs += [mp.Process(target=tcp_worker, args=(dns, plan, until, q)) for _ in range(args.tcp_clients)]
        procs.append(mp.Process(target=abuse_worker, args=(dns, until, q)))
        latency_q = mp.Queue()
        latency = mp.Process(target=udp_worker, args=(dns, plan, until, False, True, latency_q))
        cpu0, t0 = proc_cpu_s(server.pid), time.monotonic()
        for p in procs + [latency]:
            p.start()
        edits = []
        threading.Thread(target=editor, args=(work, plan, until, edits), daemon=True).start()
        samples = []
        while time.monotonic() < until:
            if server.poll() is not None:
                break
            samples.append((round(time.monotonic() - plan.start, 1), round(rss_mib(server.pid), 2)))
            time.sleep(min(10.0, max(0.0, until - time.monotonic())))
        alive = server.poll() is None
        if alive:
            samples.append((round(time.monotonic() - plan.start, 1), round(rss_mib(server.pid), 2)))
        cpu_s = (proc_cpu_s(server.pid) if alive else float("nan")) - cpu0
        wall = time.monotonic() - t0
        everything = [q.get(timeout=120) for _ in procs]
        abuse = next(r for r in everything if "qr_set" in r)
        load = [r for r in everything if "qr_set" not in r]
        under = latency_q.get(timeout=120)
        for p in procs + [latency]:
            p.join()
    finally:
        stop(server)
        http.shutdown()

    with open(log_path, errors="replace") as f:
        log = f.read()
    panics = log.count("panicked")
    log_levels = {level: sum(1 for line in log.splitlines() if f" {level} " in line[:60])
                  for level in ("ERROR", "WARN", "INFO")}
    rejected = log.count("manifest rejected")
    udp_load = [r for r in load if "connections" not in r]
    tcp_load = [r for r in load if "connections" in r]
    edits_seen = {}
    for r in load + [under]:
        for value, t in r["edits_seen"].items():
            edits_seen[value] = min(t, edits_seen.get(value, t))
    valid = [e for e in edits if e["kind"] == "valid"]
    edit_delays = []
    not_served = 0
    for e in valid:
        seen = edits_seen.get(e["value"])
        t_write = plan.start + e["t"]
        if seen is None or seen < t_write - 0.5:
            not_served += 1  # (values repeat only after 250 edits)
        else:
            edit_delays.append((seen - t_write) * 1e3)
    edit_delays.sort()
    warm = [rss for t, rss in samples if t >= args.warmup_seconds]
    idle_l = sorted(idle["latencies_us"])
    under_l = sorted(under["latencies_us"])
    out = {
        "minutes": args.minutes,
        "server_alive_at_end": alive,
        "panics_in_log": panics,
        "log_lines": log_levels,
        "manifest_rejections_logged": rejected,
        "udp": {"sent": merge(udp_load, "sent"), "answered": merge(udp_load, "answered"),
                "lost": merge(udp_load, "lost"), "wrong": merge(udp_load, "wrong")},
        "tcp": {"sent": merge(tcp_load, "sent"), "answered": merge(tcp_load, "answered"),
                "lost": merge(tcp_load, "lost"), "wrong": merge(tcp_load, "wrong"),
                "connections": merge(tcp_load, "connections"), "connect_errors": merge(tcp_load, "connect_errors")},
        "latency_client": {"sent": under["sent"], "lost": under["lost"], "wrong": under["wrong"]},
        "wrong_examples": [x for r in load + [under] for x in r["examples"]][:20],
        "abuse": abuse,
        "edits": {"valid": len(valid), "invalid": len(edits) - len(valid), "valid_not_served": not_served,
                  "edit_to_served_ms_median": percentile(edit_delays, 50),
                  "edit_to_served_ms_max": edit_delays[-1] if edit_delays else None,
                  "max_writer_lag_ms": round(max((e["lag_s"] for e in edits), default=0) * 1e3, 1)},
        "rss_mib_samples": samples,
        "rss_after_warmup": {"min": min(warm) if warm else None, "max": max(warm) if warm else None,
                             "first": warm[0] if warm else None, "last": warm[-1] if warm else None,
                             "drift_pct": round((warm[-1] - warm[0]) / warm[0] * 100, 2) if warm else None,
                             "spread_pct": round((max(warm) - min(warm)) / min(warm) * 100, 2) if warm else None},
        "server_cpu": {"seconds": round(cpu_s, 1), "wall_seconds": round(wall, 1),
                       "average_cores_pct": round(cpu_s / wall * 100, 1)},
        "udp_latency_us": {
            "idle": {"n": len(idle_l), "p50": percentile(idle_l, 50), "p99": percentile(idle_l, 99),
                     "lost": idle["lost"]},
            "under_abuse": {"n": len(under_l), "p50": percentile(under_l, 50), "p99": percentile(under_l, 99)},
        },
    }
    lost = out["udp"]["lost"] + out["tcp"]["lost"] + out["latency_client"]["lost"]
    wrong = out["udp"]["wrong"] + out["tcp"]["wrong"] + out["latency_client"]["wrong"]
    total = out["udp"]["sent"] + out["tcp"]["sent"] + out["latency_client"]["sent"]
    ratio = (out["udp_latency_us"]["under_abuse"]["p99"] or 0) / max(1, out["udp_latency_us"]["idle"]["p99"] or 1)
    out["summary"] = {"queries": total, "lost": lost, "wrong": wrong, "p99_ratio": round(ratio, 2)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    r = out["rss_after_warmup"]
    a = out["abuse"]
    e = out["edits"]
    li, lu = out["udp_latency_us"]["idle"], out["udp_latency_us"]["under_abuse"]
    print(f"| what | result |\n|---|---|")
    print(f"| duration | {args.minutes} min soak after {args.idle_seconds:.0f} s idle; server alive at end: {alive}; panics in log: {panics} |")
    print(f"| queries checked | {total} (UDP {out['udp']['sent']}, TCP {out['tcp']['sent']} on {out['tcp']['connections']} connections, latency client {under['sent']}) |")
    print(f"| answers lost | {lost} (UDP {out['udp']['lost']}, TCP {out['tcp']['lost']}, latency client {out['latency_client']['lost']}) |")
    print(f"| wrong answers | {wrong} |")
    print(f"| malformed traffic | {a['random']} random datagrams, {a['truncated']} truncated queries, {a['qr_set']} QR=1 packets ({a['qr_answered']} answered), {a['tcp_garbage']} garbage TCP messages, {a['tcp_cut']} TCP queries cut short |")
    print(f"| manifest edits | {e['valid']} valid ({e['valid_not_served']} not served; edit→served median {e['edit_to_served_ms_median'] and round(e['edit_to_served_ms_median'])} ms, max {e['edit_to_served_ms_max'] and round(e['edit_to_served_ms_max'])} ms), {e['invalid']} invalid ({rejected} rejections logged) |")
    print(f"| server log | {out['log_lines']['ERROR']} ERROR, {out['log_lines']['WARN']} WARN, {out['log_lines']['INFO']} INFO lines |")
    print(f"| RSS after {args.warmup_seconds:.0f} s warm-up | min {r['min']} MiB, max {r['max']} MiB, first→last drift {r['drift_pct']} %, spread {r['spread_pct']} % |")
    print(f"| server CPU | {out['server_cpu']['seconds']} s in {out['server_cpu']['wall_seconds']} s = {out['server_cpu']['average_cores_pct']} % of one core |")
    print(f"| UDP latency idle | p50 {li['p50']} µs, p99 {li['p99']} µs ({li['n']} queries) |")
    print(f"| UDP latency under abuse | p50 {lu['p50']} µs, p99 {lu['p99']} µs ({lu['n']} queries); p99 ratio {out['summary']['p99_ratio']}× |")
    if out["wrong_examples"]:
        print("wrong answers (first ones):", json.dumps(out["wrong_examples"], indent=1), file=sys.stderr)
    for name in os.listdir(work):
        os.remove(os.path.join(work, name))
    os.rmdir(work)
    return 0 if wrong == 0 and alive and panics == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
