#!/usr/bin/env python3
"""Prober scale: 10,000 HTTP checks at a 1 s interval, failover-dns standalone.

  bench/probe_scale.py                       # 10,000 checks, 30 s measured after warm-up
  bench/probe_scale.py --checks 2000 --measure 10
  bench/probe_scale.py --type grpc           # GRPC checks against gRPC health servers
  bench/probe_scale.py --build               # nice -n 19 cargo build --release first
  bench/probe_scale.py --interval 5s         # a rate a busy machine keeps up with: no probes
                                             # queueing at the in-flight cap (~20 KB each)
  bench/probe_scale.py --binary /tmp/old     # another build, e.g. to compare before/after

Targets: --servers HTTP server processes, listening together on --addrs x --ports
loopback sockets
(127.0.1.1.. x 29001..), so that no single destination runs out of ephemeral ports.
Every request gets `200 OK` and the connection is closed; idle connections (the
prober's watch connections) are held open. --target go (the default when `go` is
installed) builds a tiny Go server (stdlib only, source below) into a temporary
directory; --target go-epoll builds one that answers the same on one thread and one
epoll set (raw system calls, no goroutine or Go runtime poller per connection: its cost
per probe is the kernel's and little else); --target asyncio uses this same file in
`serve` mode (costs about twice the CPU, which on a 2-core machine leaves failover-dns
short of CPU). Check i probes
http://<listener i mod L>/c<i>: every check is a distinct address/port/path.

--type grpc: the checks are GRPC checks (grpc.health.v1.Health/Check of the whole
server, cleartext) and the targets are Go gRPC servers with grpc-go's own health
service (source below; google.golang.org/grpc from the Go module proxy or Go's module
cache), built into the temporary directory; --target does not apply. Compare with an
HTTP run of the same --checks, --interval and --servers.

failover-dns (target/release/failover-dns) runs standalone from a manifest written
here: the checks (HTTP, requestInterval 1s, failureThreshold 3) and one MultiValue
record per check (100 records per name, pool<k>.scale.internal); --no-records leaves
the records out, to see the prober's own share.

Measured:
  * baseline: the same binary and flags with 0 checks (one Simple record), VmRSS after
    the same settle time;
  * with the checks, after warm-up (every check probed at least twice and the watch
    connections open) and --warmup more seconds, over --measure seconds:
    CPU = (utime + stime) from /proc/PID/stat / wall time, as a fraction of one core;
    probes/s = increase of sum(failoverdns_probe_results_total) / wall time, and which
    reasons; VmRSS (median and peak of one sample a second) minus the baseline, per
    check;
  * the same manifests with every check `disabled: true` (loaded, never probed), to
    split the memory per check into holding the configuration and probing it.
  * for context: the target servers' CPU, the watch connections, early probes.

RLIMIT_NOFILE is raised here (to 65536 when allowed, else to the hard limit) and
inherited by every process started. Only 127.0.0.0/8 is used; every process started
is stopped by its PID. Results: /tmp/probe_scale.json (override with --out).
"""
import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
BINARY = os.path.join(REPO, "target", "release", "failover-dns")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

STARTED = []


# ------------------------------------------------------------------ target server (serve mode)
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n"


class Http(asyncio.Protocol):
    __slots__ = ("transport", "buf")

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            self.transport.write(RESPONSE)
            self.transport.close()
        elif len(self.buf) > 16384:
            self.transport.close()


GO_SERVER = r"""
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

var response = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n")

func handle(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 0, 512)
	tmp := make([]byte, 512)
	for len(buf) < 16384 {
		n, err := c.Read(tmp)
		if n > 0 {
			buf = append(buf, tmp[:n]...)
			if bytes.Contains(buf, []byte("\r\n\r\n")) {
				c.Write(response)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	for _, addr := range os.Args[1:] {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					continue
				}
				go handle(c)
			}
		}()
	}
	fmt.Println("ready")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
"""


GO_EPOLL_SERVER = r"""
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

var response = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n")

// A non-blocking IPv4 listening socket.
func listen(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return -1, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return -1, err
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return -1, fmt.Errorf("%s: not an IPv4 address", addr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	sa := &syscall.SockaddrInet4{Port: p}
	copy(sa.Addr[:], ip)
	if err := syscall.Bind(fd, sa); err != nil {
		return -1, fmt.Errorf("%s: %v", addr, err)
	}
	if err := syscall.Listen(fd, 4096); err != nil {
		return -1, err
	}
	return fd, nil
}

// One thread, one epoll set, no goroutine per connection: the target's own cost per
// probe is the kernel's (accept, read, write, close) and little else.
func main() {
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	listeners := map[int32]bool{}
	for _, addr := range os.Args[1:] {
		fd, err := listen(addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		listeners[int32(fd)] = true
		syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-stop; os.Exit(0) }()
	fmt.Println("ready")
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 4096)
	partial := map[int32][]byte{}
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err != nil {
			continue
		}
		for _, ev := range events[:n] {
			fd := ev.Fd
			if listeners[fd] {
				for {
					c, _, err := syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, c, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c)})
				}
				continue
			}
			r, err := syscall.Read(int(fd), buf)
			if err == syscall.EAGAIN {
				continue
			}
			if r <= 0 || err != nil {
				delete(partial, fd)
				syscall.Close(int(fd))
				continue
			}
			req := buf[:r]
			if old, ok := partial[fd]; ok {
				req = append(old, req...)
			}
			if bytes.Contains(req, []byte("\r\n\r\n")) {
				syscall.Write(int(fd), response)
				delete(partial, fd)
				syscall.Close(int(fd))
			} else if len(req) > 16384 {
				delete(partial, fd)
				syscall.Close(int(fd))
			} else {
				partial[fd] = append([]byte(nil), req...)
			}
		}
	}
}
"""


# The Go targets, by --target.
GO_SOURCES = {"go": GO_SERVER, "go-epoll": GO_EPOLL_SERVER}


# --type grpc: grpc-go's health service (the whole server "" is SERVING) on every
# listener, one server, the goroutines grpc-go starts per connection.
GO_GRPC_SERVER = r"""
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	server := grpc.NewServer()
	healthpb.RegisterHealthServer(server, health.NewServer())
	for _, addr := range os.Args[1:] {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go server.Serve(l)
	}
	fmt.Println("ready")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
"""

GRPC_GO_VERSION = "v1.84.0"


def build_go_server(work, source):
    src = os.path.join(work, "target.go")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(work, "target")
    subprocess.run(["nice", "-n", "19", "go", "build", "-o", exe, src], check=True, cwd=work)
    return exe


def build_go_grpc_server(work):
    """The gRPC health target, a module of its own requiring google.golang.org/grpc."""
    mod = os.path.join(work, "grpc-target")
    os.makedirs(mod)
    with open(os.path.join(mod, "main.go"), "w") as f:
        f.write(GO_GRPC_SERVER)
    with open(os.path.join(mod, "go.mod"), "w") as f:
        f.write(f"module grpctarget\n\ngo 1.24\n\nrequire google.golang.org/grpc {GRPC_GO_VERSION}\n")
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    subprocess.run(["nice", "-n", "19", "go", "mod", "tidy"], check=True, cwd=mod, env=env)
    exe = os.path.join(work, "grpc-target-bin")
    subprocess.run(["nice", "-n", "19", "go", "build", "-o", exe, "."], check=True, cwd=mod, env=env)
    return exe


def serve(listeners):
    async def main():
        loop = asyncio.get_running_loop()
        for spec in listeners:
            host, port = spec.rsplit(":", 1)
            await loop.create_server(Http, host, int(port), backlog=4096, reuse_address=True)
        print("ready", flush=True)
        await asyncio.Event().wait()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(main())


# ------------------------------------------------------------------ helpers
def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def stop(proc, grace=5.0):
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def metrics(admin):
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {"results": {}}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("failoverdns_probe_results_total{"):
            reason = name.split('reason="', 1)[1].split('"', 1)[0]
            out["results"][reason] = out["results"].get(reason, 0) + float(value)
        elif name in ("failoverdns_probe_watch_connections", "failoverdns_probe_early_total",
                      "failoverdns_probes_in_flight"):
            out[name] = float(value)
        elif name.startswith("failoverdns_health_check_transitions_total"):
            out[name] = float(value)
    out["probes"] = sum(out["results"].values())
    return out


def wait_admin(admin, proc, timeout=120):
    t_end = time.time() + timeout
    while time.time() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"failover-dns exited with {proc.returncode}")
        try:
            return metrics(admin)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("admin endpoint never answered")


def write_manifest(path, checks, listeners, records=True, disabled=False, interval="1s", kind="http"):
    with open(path, "w") as f:
        if checks == 0:
            f.write("apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\n"
                    "metadata: {name: idle, namespace: default}\n"
                    'spec: {name: idle.scale.internal, type: A, values: ["127.0.0.1"]}\n')
            return
        for i in range(checks):
            host, port = listeners[i % len(listeners)]
            what = "type: GRPC" if kind == "grpc" else f"type: HTTP, resourcePath: /c{i}"
            f.write(f"---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\n"
                    f"metadata: {{name: c{i}, namespace: default}}\n"
                    f'spec: {{{what}, ipAddress: "{host}", port: {port}, '
                    f"requestInterval: {interval}, failureThreshold: 3{', disabled: true' if disabled else ''}}}\n")
            if not records:
                continue
            f.write(f"---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\n"
                    f"metadata: {{name: r{i}, namespace: default}}\n"
                    f"spec: {{name: pool{i // 100}.scale.internal, type: A, ttl: 5, routingPolicy: MultiValue, "
                    f'setIdentifier: r{i}, healthCheckName: c{i}, values: ["10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"]}}\n')


def start_fodns(manifests, args, log):
    cmd = [args.binary, "serve", "--manifests", manifests, "--zone", "scale.internal",
           "--dns-addr", args.dns_addr, "--admin-addr", args.admin_addr, "--log-format", "text"]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    STARTED.append(p)
    return p


# ------------------------------------------------------------------ the benchmark
def run(args):
    limit = raise_nofile()
    print(f"RLIMIT_NOFILE {limit}", flush=True)
    if args.build or not os.path.exists(args.binary):
        subprocess.run(["nice", "-n", "19", "cargo", "build", "--release"], cwd=REPO, check=True)
    work = tempfile.mkdtemp(prefix="probe-scale-")
    if args.type == "grpc":
        args.target = "go-grpc"
        target_cmd = [build_go_grpc_server(work)]
        if args.servers is None:
            args.servers = 2
    elif args.target in GO_SOURCES:
        target_cmd = [build_go_server(work, GO_SOURCES[args.target])]
        if args.servers is None:
            args.servers = 2
    else:
        target_cmd = [sys.executable, os.path.abspath(__file__), "serve"]
        if args.servers is None:
            args.servers = 4
    listeners = [(f"127.0.1.{a}", 29001 + p) for a in range(1, args.addrs + 1) for p in range(args.ports)]
    servers = []
    for s in range(args.servers):
        mine = [f"{h}:{p}" for h, p in listeners[s::args.servers]]
        p = subprocess.Popen([*target_cmd, *mine], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        STARTED.append(p)
        servers.append(p)
    for p in servers:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a target server failed to start")
    result = dict(checks=args.checks, records=0 if args.no_records else args.checks, listeners=len(listeners), type=args.type, target=args.target, target_servers=args.servers,
                  nofile=limit, interval=args.interval)

    def idle_rss(name, checks, disabled):
        """VmRSS of failover-dns serving a manifest it never probes, after --settle s."""
        dir_ = os.path.join(work, name)
        os.makedirs(dir_)
        write_manifest(os.path.join(dir_, "m.yaml"), checks, listeners, records=not args.no_records, disabled=disabled,
                       interval=args.interval, kind=args.type)
        with open(os.path.join(work, f"{name}.log"), "w") as log:
            p = start_fodns(dir_, args, log)
            wait_admin(args.admin_addr, p)
            time.sleep(args.settle)
            rss = rss_bytes(p.pid)
            stop(p)
        return rss

    # 1. baseline: 0 checks
    result["baseline_rss_bytes"] = idle_rss("base", 0, disabled=False)
    print(f"baseline (0 checks): VmRSS {result['baseline_rss_bytes'] / 2**20:.1f} MiB", flush=True)

    # 1b. the same configuration with every check disabled: what holding the
    # configuration costs, without a single probe
    result["disabled_rss_bytes"] = idle_rss("disabled", args.checks, disabled=True)
    print(f"same configuration, checks disabled: VmRSS {result['disabled_rss_bytes'] / 2**20:.1f} MiB", flush=True)

    # 2. the checks
    dir_ = os.path.join(work, "checks")
    os.makedirs(dir_)
    write_manifest(os.path.join(dir_, "m.yaml"), args.checks, listeners, records=not args.no_records,
                   interval=args.interval, kind=args.type)
    with open(os.path.join(work, "checks.log"), "w") as log:
        t_start = time.time()
        p = start_fodns(dir_, args, log)
        m = wait_admin(args.admin_addr, p)
        # warm-up: every check probed at least twice, the watch connections open
        t_end = time.time() + 180
        while not (m["probes"] >= 2 * args.checks
                   and m.get("failoverdns_probe_watch_connections", 0) >= 0.99 * args.checks):
            if time.time() > t_end:
                raise TimeoutError(f"warm-up did not finish: {m}")
            time.sleep(1)
            m = metrics(args.admin_addr)
        result["warmup_s"] = round(time.time() - t_start, 1)
        print(f"warm: {result['warmup_s']} s after start; {m['failoverdns_probe_watch_connections']:.0f} "
              f"watch connections; settling {args.warmup} s more", flush=True)
        time.sleep(args.warmup)

        m0, c0, t0 = metrics(args.admin_addr), cpu_seconds(p.pid), time.time()
        s0 = [cpu_seconds(s.pid) for s in servers]
        samples = []
        while time.time() < t0 + args.measure:
            time.sleep(1)
            samples.append(rss_bytes(p.pid))
        m1, c1, t1 = metrics(args.admin_addr), cpu_seconds(p.pid), time.time()
        s1 = [cpu_seconds(s.pid) for s in servers]
        # The median of one sample a second: a single reading lands anywhere in the
        # allocator's cycle of growing and returning memory.
        rss = int(statistics.median(samples))
        peak = max(samples)
        stop(p)

    wall = t1 - t0
    reasons = {k: round((m1["results"].get(k, 0) - m0["results"].get(k, 0)) / wall, 1)
               for k in m1["results"] if m1["results"].get(k, 0) != m0["results"].get(k, 0)}
    result.update(
        measured_s=round(wall, 1),
        cpu_cores=round((c1 - c0) / wall, 3),
        probes_per_s=round((m1["probes"] - m0["probes"]) / wall, 1),
        probes_per_s_by_reason=reasons,
        rss_bytes=rss,
        rss_peak_bytes=peak,
        rss_per_check_bytes=round((rss - result["baseline_rss_bytes"]) / args.checks),
        rss_peak_per_check_bytes=round((peak - result["baseline_rss_bytes"]) / args.checks),
        rss_configuration_per_check_bytes=round((result["disabled_rss_bytes"] - result["baseline_rss_bytes"]) / args.checks),
        rss_probing_per_check_bytes=round((rss - result["disabled_rss_bytes"]) / args.checks),
        cpu_us_per_probe=round((c1 - c0) / max(1, m1["probes"] - m0["probes"]) * 1e6, 1),
        watch_connections=m1.get("failoverdns_probe_watch_connections"),
        # At the cap, probes queue: each one in flight holds its buffers (~20 KB).
        probes_in_flight=[m0.get("failoverdns_probes_in_flight"), m1.get("failoverdns_probes_in_flight")],
        early_probes_during=m1.get("failoverdns_probe_early_total", 0) - m0.get("failoverdns_probe_early_total", 0),
        transitions_total={k.split("{", 1)[1].rstrip("}"): v for k, v in m1.items() if "transitions" in k},
        target_servers_cpu_cores=round(sum(b - a for a, b in zip(s0, s1)) / wall, 3),
        loadavg=open("/proc/loadavg").read().split()[:3],
    )
    return result


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        return serve(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checks", type=int, default=10_000)
    ap.add_argument("--type", choices=["http", "grpc"], default="http",
                    help="check type: HTTP (default) or GRPC against gRPC health servers")
    ap.add_argument("--interval", default="1s", help="requestInterval of every check (default 1s)")
    ap.add_argument("--no-records", action="store_true",
                    help="checks only, no FailoverRecords: the prober's own cost per check")
    ap.add_argument("--measure", type=float, default=30.0, help="measurement window (s)")
    ap.add_argument("--warmup", type=float, default=10.0, help="extra seconds after the warm-up condition")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds before reading the 0-check baseline")
    ap.add_argument("--target", choices=[*GO_SOURCES, "asyncio"], default="go" if shutil.which("go") else "asyncio",
                    help="target HTTP server implementation (default: go when installed; go-epoll is the same "
                    "answers on one thread and one epoll set, without a goroutine per connection)")
    ap.add_argument("--servers", type=int, default=None, help="target server processes (default 2 go, 4 asyncio)")
    ap.add_argument("--addrs", type=int, default=16, help="loopback addresses 127.0.1.1..")
    ap.add_argument("--ports", type=int, default=4, help="ports per address, 29001..")
    ap.add_argument("--dns-addr", default="127.0.0.1:25356")
    ap.add_argument("--admin-addr", default="127.0.0.1:28054")
    ap.add_argument("--out", default="/tmp/probe_scale.json")
    ap.add_argument("--build", action="store_true", help="nice -n 19 cargo build --release first")
    ap.add_argument("--binary", default=BINARY, help="the failover-dns binary (default: this tree's release build)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        result = run(args)
    finally:
        for p in reversed(STARTED):
            stop(p)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    n = result["checks"]
    print(f"""
checks                        {n} {result['type'].upper()}, {result['interval']} interval, {result['listeners']} listeners in {result['target_servers']} {result['target']} processes
probes/s done                 {result['probes_per_s']}  (by reason: {result['probes_per_s_by_reason']})
failover-dns CPU              {result['cpu_cores']} of one core  ({result['cpu_us_per_probe']} us per probe)
VmRSS                         {result['rss_bytes'] / 2**20:.1f} MiB (peak {result['rss_peak_bytes'] / 2**20:.1f}), baseline {result['baseline_rss_bytes'] / 2**20:.1f} MiB
RSS per check                 {result['rss_per_check_bytes']} B (peak {result['rss_peak_per_check_bytes']} B): holding the configuration {result['rss_configuration_per_check_bytes']} B + probing {result['rss_probing_per_check_bytes']} B
watch connections             {result['watch_connections']}, early probes in window {result['early_probes_during']}
probes in flight              {result['probes_in_flight'][0]:.0f} at the start of the window, {result['probes_in_flight'][1]:.0f} at its end
target servers CPU            {result['target_servers_cpu_cores']} cores; loadavg {' '.join(result['loadavg'])}
(written to {args.out})""")


if __name__ == "__main__":
    main()
