#!/usr/bin/env python3
"""Start-up and change costs of the real binary as the configuration grows.

    bench/scale.py [--sizes 1000,10000,100000,1000000] [--edits 20]
    bench/scale.py --sizes 100000 --rounds 3 --binary OLD --binary target/release/failover-dns

For each size N it writes N Simple A records (`h{i}.big.test`, one value each) into
one manifest file, plus a small second file holding one record that gets edited,
starts the release binary on loopback and measures:

* start: time from exec to the first correct answer for the last record, the
  server's CPU time by then (all threads: wall time on a shared machine also counts
  waiting), and the resident memory then and 6 s later (after the periodic release
  of freed memory);
* edit: the small file is rewritten (atomic rename) with a new value; time until
  DNS answers with it (includes the file watcher's 50 ms debounce), median of --edits;
* the server's CPU time for the whole run (from /proc).

Queries go over UDP to 127.0.0.1 with a minimal hand-built DNS client (no
dependencies). Results are printed as a Markdown table and appended as JSON lines to
bench/results/scale.jsonl.
"""

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.path.join(HERE, "..", "target", "release", "failover-dns")


def free_port():
    """A loopback port free for both UDP and TCP (DNS listens on both; the admin
    endpoint on TCP)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def encode_query(qid, name, qtype=1, flags=0x0100):
    packet = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        packet += bytes([len(label)]) + label.encode()
    return packet + b"\0" + struct.pack(">HH", qtype, 1)


def decode_answer(data, qid):
    """(rcode, sorted A values) of a response to `qid`, or None if it is not one."""
    if len(data) < 12:
        return None
    rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid or not flags & 0x8000:
        return None
    at = 12
    for _ in range(qd):
        while data[at] != 0:
            at += 1 + data[at]
        at += 5
    values = []
    for _ in range(an):
        if data[at] & 0xC0 == 0xC0:
            at += 2
        else:
            while data[at] != 0:
                at += 1 + data[at]
            at += 1
        rtype, _, _, length = struct.unpack(">HHIH", data[at:at + 10])
        at += 10
        if rtype == 1:
            values.append(socket.inet_ntoa(data[at:at + 4]))
        at += length
    return flags & 0xF, sorted(values)


def query(port, name, timeout=0.5):
    """Returns the A values of an answer, or None (no answer, or not NOERROR)."""
    qid = random.randrange(65536)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(encode_query(qid, name, flags=0), ("127.0.0.1", port))
            data, _ = s.recvfrom(4096)
        except OSError:
            return None
    answer = decode_answer(data, qid)
    if answer is None or answer[0] != 0:
        return None
    return answer[1]


def ip(i):
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def record(name, host, value):
    return (
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        f"spec: {{name: {host}, type: A, values: [\"{value}\"]}}\n"
    )


def write_atomically(path, text):
    # A hidden temporary name: the file source skips it until the rename.
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stop(server):
    """SIGTERM, and SIGKILL if the server has not exited within 10 s."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()


def run(n, edits, binary=BINARY):
    work = tempfile.mkdtemp(prefix="failover-dns-scale-")
    big = os.path.join(work, "big.yaml")
    with open(big, "w") as f:
        for start in range(0, n, 10000):
            f.write("".join(record(f"r{i}", f"h{i}.big.test", ip(i)) for i in range(start, min(n, start + 10000))))
    small = os.path.join(work, "edit.yaml")
    write_atomically(small, record("edited", "edited.big.test", "192.0.2.0"))
    size_mb = os.path.getsize(big) / 1e6
    dns, admin = free_port(), free_port()
    started = time.monotonic()
    server = subprocess.Popen(
        [binary, "serve", "--manifests", work, "--zone", "big.test", "--dns-addr", f"127.0.0.1:{dns}",
         "--admin-addr", f"127.0.0.1:{admin}", "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
    last = f"h{n - 1}.big.test"
    try:
        while True:
            answer = query(dns, last, timeout=0.05)
            if answer == [ip(n - 1)]:
                break
            if server.poll() is not None:
                raise SystemExit(f"the server exited: see {work}/log")
            if time.monotonic() - started > 600:
                raise SystemExit("no answer after 600 s")
            time.sleep(0.005)
        start_s = time.monotonic() - started
        start_cpu = proc_stat(server.pid)
        rss_start = rss_mib(server.pid)
        time.sleep(6)
        rss_settled = rss_mib(server.pid)
        cpu_before = proc_stat(server.pid)
        times = []
        for k in range(edits):
            value = f"192.0.2.{k + 1}"
            t0 = time.monotonic()
            write_atomically(small, record("edited", "edited.big.test", value))
            while query(dns, "edited.big.test", timeout=0.2) != [value]:
                if time.monotonic() - t0 > 30:
                    raise SystemExit("edit not served after 30 s")
                time.sleep(0.001)
            times.append((time.monotonic() - t0) * 1e3)
            time.sleep(0.2)
        cpu_edits = proc_stat(server.pid) - cpu_before
        times.sort()
        row = {
            "records": n,
            "manifest_mb": round(size_mb, 1),
            "start_to_answer_s": round(start_s, 3),
            "start_cpu_s": round(start_cpu, 2),
            "rss_at_answer_mib": round(rss_start, 1),
            "rss_settled_mib": round(rss_settled, 1),
            "bytes_per_record": round(rss_settled * 1024 * 1024 / n),
            "edit_to_answer_ms_median": round(times[len(times) // 2], 1),
            "edit_to_answer_ms_max": round(times[-1], 1),
            "server_cpu_ms_per_edit": round(cpu_edits * 1e3 / edits, 1),
        }
        return row
    finally:
        stop(server)
        for name in os.listdir(work):
            os.remove(os.path.join(work, name))
        os.rmdir(work)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--binary", action="append",
                        help="a failover-dns binary (repeatable: the binaries take turns at each size, "
                             "so that a machine whose speed drifts treats them alike); default: this tree's release build")
    parser.add_argument("--rounds", type=int, default=1, help="turns per size and binary")
    args = parser.parse_args()
    binaries = args.binary or [BINARY]
    for binary in binaries:
        if not os.path.exists(binary):
            sys.exit(f"{binary}: build the release binary first: cargo build --release")
    rows = []
    print("| binary | records | manifest MB | start to answer s | start CPU s | RSS at answer MiB | RSS settled MiB | bytes/record | edit→answer ms (median, max) | server CPU ms/edit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        for _ in range(args.rounds):
            for binary in binaries:
                row = run(n, args.edits, binary)
                row["binary"] = binary
                rows.append(row)
                print(f"| {os.path.basename(binary)} | {n} | {row['manifest_mb']} | {row['start_to_answer_s']} | {row['start_cpu_s']} | "
                      f"{row['rss_at_answer_mib']} | {row['rss_settled_mib']} | {row['bytes_per_record']} | "
                      f"{row['edit_to_answer_ms_median']}, {row['edit_to_answer_ms_max']} | {row['server_cpu_ms_per_edit']} |", flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "scale.jsonl"), "a") as f:
        for row in rows:
            row["date"] = time.strftime("%Y-%m-%d")
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
