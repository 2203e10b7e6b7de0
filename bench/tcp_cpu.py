#!/usr/bin/env python3
"""DNS over TCP: server CPU per answered query, pipelined.

  bench/tcp_cpu.py                  # target/release/failover-dns, 4 x 30 x 500 queries
  bench/tcp_cpu.py --connections 8 --rounds 60 --depth 200

failover-dns runs standalone (one Simple A record) with --tcp-max-queries 0; each
connection sends --depth framed queries in one write and reads the answers, --rounds
times. Server CPU = (utime + stime) from /proc/PID/stat over the run, per answered
query. The client (this script) is the bottleneck for wall time; the CPU figure is
the server's own.
"""
import argparse
import os
import socket
import struct
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise SystemExit("the server closed a connection")
        buf += chunk
    return bytes(buf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/failover-dns"))
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--depth", type=int, default=500)
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="tcp-cpu-")
    with open(os.path.join(workdir, "web.yaml"), "w") as f:
        f.write("apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\n"
                "metadata: {name: web, namespace: default}\n"
                'spec: {name: web.example.test, type: A, values: ["192.0.2.1"]}\n')
    dns, admin = free_port(), free_port()
    server = subprocess.Popen(
        [args.binary, "serve", "--manifests", workdir, "--zone", "example.test",
         "--dns-addr", f"127.0.0.1:{dns}", "--admin-addr", f"127.0.0.1:{admin}",
         "--udp-sockets", "1", "--tcp-max-queries", "0"],
        stderr=open(os.path.join(workdir, "server.log"), "w"))
    try:
        time.sleep(1.5)
        if server.poll() is not None:
            raise SystemExit(open(os.path.join(workdir, "server.log")).read())
        # web.example.test A, no EDNS
        query = bytes.fromhex("12340100000100000000000003776562076578616d706c65047465737400" "00010001")
        framed = struct.pack(">H", len(query)) + query
        conns = [socket.create_connection(("127.0.0.1", dns)) for _ in range(args.connections)]
        conns[0].sendall(framed)
        size = 2 + struct.unpack(">H", read_exactly(conns[0], 2))[0]
        read_exactly(conns[0], size - 2)
        before, started, answered = cpu_seconds(server.pid), time.time(), 0
        for _ in range(args.rounds):
            for c in conns:
                c.sendall(framed * args.depth)
            for c in conns:
                read_exactly(c, size * args.depth)
                answered += args.depth
        used, wall = cpu_seconds(server.pid) - before, time.time() - started
        print(f"{answered} TCP queries ({args.connections} connections, {args.depth} pipelined): "
              f"{wall:.2f} s wall, server CPU {used:.2f} s = {used / answered * 1e6:.1f} µs/query")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
