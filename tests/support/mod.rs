//! Shared by the three integration-test binaries (`tests/core`, `tests/process`,
//! `tests/cluster`, each declaring `#[path = "../support/mod.rs"] mod support;`): a
//! real DNS client (hickory-proto messages over real UDP/TCP sockets), a server
//! started in-process on a loopback port, the real binary (`Binary`) and HTTP
//! targets. `model` builds and decides models without I/O, `cluster` runs a real
//! control plane, `grpc` is a gRPC health server.
//!
//! Each binary uses only part of this tree, so what one of them leaves unused is no
//! warning.
#![allow(dead_code)]

pub mod cluster;
pub mod grpc;
pub mod model;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use failover_dns::dns::{DnsConfig, DnsError, DnsServer, UdpEngine};
use failover_dns::metrics::DnsStats;
use failover_dns::model::{Fqdn, Input};
use failover_dns::resources::{FailoverRecordSpec, HealthCheckSpec};
use failover_dns::snapshot::ZoneSettings;
use failover_dns::source::files::{Object, parse_file};
use failover_dns::state::State;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio_util::sync::CancellationToken;

pub fn query_message(name: &str, rtype: RecordType, edns_payload: Option<u16>) -> Message {
    let mut msg = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        msg.set_edns(edns);
    }
    msg
}

/// Sends raw bytes over UDP and returns the raw response (None on timeout).
pub fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    socket.send_to(bytes, addr).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

pub fn udp(addr: SocketAddr, msg: &Message) -> (Message, usize) {
    let raw = udp_raw(addr, &msg.to_vec().unwrap()).expect("a UDP response");
    let response = Message::from_vec(&raw).expect("a parsable response");
    assert_eq!(response.metadata.id, msg.metadata.id, "response ID matches the query");
    (response, raw.len())
}

pub fn tcp(addr: SocketAddr, msg: &Message) -> Message {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let bytes = msg.to_vec().unwrap();
    stream.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    stream.write_all(&bytes).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).unwrap();
    let response = Message::from_vec(&buf).unwrap();
    assert_eq!(response.metadata.id, msg.metadata.id);
    response
}

/// Like `udp`, retrying over TCP when the answer came back truncated — what a resolver does.
pub fn resolve(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let msg = query_message(name, rtype, None);
    let (response, _) = udp(addr, &msg);
    if response.metadata.truncation { tcp(addr, &msg) } else { response }
}

pub fn answer_strings(msg: &Message) -> Vec<String> {
    let mut v: Vec<String> = msg.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

/// A DNS server in-process on 127.0.0.1, serving the objects of a YAML string.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<tokio::sync::Mutex<State>>,
    pub shutdown: CancellationToken,
    pub runtime: tokio::runtime::Runtime,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn settings(zones: &[&str]) -> ZoneSettings {
    ZoneSettings {
        zones: zones.iter().map(|z| Fqdn::parse(z).unwrap()).collect(),
        nameservers: vec![],
        soa_ttl: 300,
        negative_ttl: 60,
    }
}

/// A DNS message with its two-byte TCP length prefix.
pub fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = (message.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

/// A TCP connection from a chosen loopback source address, with 5 s timeouts.
pub fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// True when the server closes the connection (EOF or reset) within the read timeout.
pub fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Reads one length-prefixed message; None when the connection ends first.
pub fn read_framed_or_close(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).ok()?;
    Some(buf)
}

pub fn load_yaml(state: &mut State, yaml: &str) {
    let (checks, records) = inputs_of("test.yaml", yaml);
    state.set_inputs(&checks, &records, vec![]);
}

/// The objects of a manifest, each as old as its place in the file.
pub fn inputs_of(
    file: &str,
    yaml: &str,
) -> (Vec<Input<HealthCheckSpec>>, Vec<Input<FailoverRecordSpec>>) {
    let objects = parse_file(file, yaml.as_bytes()).expect("valid YAML");
    let (mut checks, mut records) = (Vec::new(), Vec::new());
    for (seq, o) in objects.into_iter().enumerate() {
        match o {
            Object::HealthCheck(mut i) => {
                i.seq = seq as u64;
                checks.push(i)
            }
            Object::FailoverRecord(mut i) => {
                i.seq = seq as u64;
                records.push(i)
            }
        }
    }
    (checks, records)
}

pub fn start(zones: &[&str], yaml: &str, engine: UdpEngine) -> TestServer {
    start_with(zones, yaml, engine, |_| {})
}

/// Like `start`, with the configuration adjusted by `adjust` (limits, rate limiting).
pub fn start_with(
    zones: &[&str],
    yaml: &str,
    engine: UdpEngine,
    adjust: impl FnOnce(&mut DnsConfig),
) -> TestServer {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut state = State::new(settings(zones));
    load_yaml(&mut state, yaml);
    let snapshot = state.snapshot.clone();
    let shutdown = CancellationToken::new();
    let mut config = DnsConfig::new("127.0.0.1:0".parse().unwrap(), 2, engine);
    config.tcp.idle_timeout = Duration::from_secs(5);
    adjust(&mut config);
    let stats = Arc::new(DnsStats::new(3));
    let server = {
        let _guard = runtime.enter();
        // The TCP listener takes the port UDP was given; another process may hold it for TCP.
        let mut attempt = 0;
        loop {
            match DnsServer::start(&config, snapshot.clone(), stats.clone(), shutdown.clone()) {
                Err(DnsError::Bind { proto: "TCP", .. }) if attempt < 5 => attempt += 1,
                result => break result.expect("server starts"),
            }
        }
    };
    let addr = server.addr;
    let token = shutdown.clone();
    runtime.spawn(server.run(token));
    TestServer { addr, state: Arc::new(tokio::sync::Mutex::new(state)), shutdown, runtime }
}

/// A FailoverRecord document.
pub fn record(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    )
}

/// A HealthCheck document.
pub fn health_check(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    )
}

/// A plain HTTP/1.1 GET; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

pub fn try_http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let chunked = head.lines().any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    Ok((status, if chunked { dechunk(body) } else { body.to_string() }))
}

/// The body of a chunked response (what `/status` streams), as any HTTP client reads it.
pub fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
            .expect("a chunk size");
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    body
}

/// A loopback port that was free a moment ago (UDP and TCP).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The real binary, serving standalone; killed on drop.
pub struct Binary {
    pub child: std::process::Child,
    pub dns: SocketAddr,
    pub admin: SocketAddr,
    pub log: std::path::PathBuf,
}

impl Binary {
    pub fn start(args: &[&str]) -> Binary {
        Self::start_with(args, |_| {})
    }

    /// Like `start`, with the command adjusted first (environment, for one).
    pub fn start_with(args: &[&str], adjust: impl Fn(&mut std::process::Command)) -> Binary {
        for _ in 0..3 {
            let mut bin = Binary::spawn_with(args, &adjust);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                // Ready, and the answer came from this process (not one that took its port).
                if bin.bound() && try_http_get(bin.admin, "/readyz").is_ok_and(|(c, _)| c == 200) {
                    return bin;
                }
                if bin.port_taken() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !bin.port_taken() {
                panic!("timed out waiting for ready; server log:\n{}", bin.logs());
            }
            eprintln!("a port was taken before the binary bound it, starting it again");
        }
        panic!("the binary keeps finding its ports taken");
    }

    /// Starts the binary with extra environment variables and waits until it is ready.
    pub fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Binary {
        Binary::start_with(args, |c| {
            c.envs(env.iter().map(|(k, v)| (*k, *v)));
        })
    }

    /// Starts the binary without waiting for anything.
    pub fn spawn(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Binary {
        Binary::spawn_with(args, |c| {
            c.envs(env.iter().map(|(k, v)| (*k, *v)));
        })
    }

    /// Another socket may take a free port before the binary binds it: then the
    /// binary exits at once, and it is started again on other ports. A connection to
    /// the port proves nothing (the other socket may accept it); the log's line does.
    fn spawn_with(args: &[&str], adjust: impl Fn(&mut std::process::Command)) -> Binary {
        for _ in 0..3 {
            let mut bin = Binary::spawn_once(args, &adjust);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline && !bin.bound() && !bin.exited() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !bin.port_taken() {
                return bin; // bound, still starting, or ended for a reason the caller sees
            }
            eprintln!("a port was taken before the binary bound it, starting it again");
        }
        panic!("the binary keeps finding its ports taken");
    }

    /// The admin endpoint is this process's.
    fn bound(&self) -> bool {
        self.logs().contains("admin endpoint listening")
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().is_ok_and(|s| s.is_some())
    }

    /// It ended because another socket had one of its ports.
    fn port_taken(&mut self) -> bool {
        self.exited() && self.logs().contains("Address already in use")
    }

    fn spawn_once(args: &[&str], adjust: &impl Fn(&mut std::process::Command)) -> Binary {
        let dns: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::env::temp_dir().join(format!(
            "failover-dns-test-{}-{}.log",
            std::process::id(),
            dns.port()
        ));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_failover-dns"));
        command
            .arg("serve")
            .args(args)
            .args(["--dns-addr", &dns.to_string(), "--admin-addr", &admin.to_string()])
            .stderr(std::fs::File::create(&log).unwrap())
            // The default filter logs the line `bound` looks for; a test may set another.
            .env_remove("RUST_LOG");
        adjust(&mut command);
        let child = command.spawn().unwrap();
        Binary { child, dns, admin, log }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `cond` for up to 10 s.
    pub fn wait_until(&self, cond: impl FnMut() -> bool, what: &str) {
        self.wait_for(Duration::from_secs(10), cond, what)
    }

    /// Polls `cond` for up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, mut cond: impl FnMut() -> bool, what: &str) {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; server log:\n{}", self.logs());
    }

    pub fn answers(&self, name: &str, rtype: RecordType) -> Vec<String> {
        answer_strings(&resolve(self.dns, name, rtype))
    }

    pub fn status(&self) -> serde_json::Value {
        self.status_at("/status")
    }

    /// `/status` with a query (paging, filters).
    pub fn status_at(&self, path: &str) -> serde_json::Value {
        let (code, body) = http_get(self.admin, path);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// The exit status once the process has ended, if it does within `within`.
    pub fn exit_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).expect("a VmRSS line");
        line.trim().trim_end_matches(" kB").parse().unwrap()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill only sends a signal to the child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }

    /// A sample's value from /metrics, e.g. `failoverdns_dns_tcp_refused_total{reason="total"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let (_, text) = http_get(self.admin, "/metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A tiny HTTP server on a fixed loopback address that answers every request with
/// 200 "ok" (or the status given to `set_status`); `stop` closes the listener and
/// every open connection, as a dying process would.
pub struct HttpTarget {
    pub addr: SocketAddr,
    status: Arc<std::sync::atomic::AtomicU16>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpTarget {
    pub fn start(addr: SocketAddr) -> HttpTarget {
        let listener = std::net::TcpListener::bind(addr).expect("bind target");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let conns: Arc<std::sync::Mutex<Vec<TcpStream>>> = Arc::default();
        let (stop2, conns2, status2) = (stop.clone(), conns.clone(), status.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                conns2.lock().unwrap().push(stream.try_clone().unwrap());
                let status = status2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let code = status.load(std::sync::atomic::Ordering::SeqCst);
                            let response = format!(
                                "HTTP/1.1 {code} Status\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
                            );
                            if stream.write_all(response.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        HttpTarget { addr, status, stop, conns, thread: Some(thread) }
    }

    /// The status of every later response.
    pub fn set_status(&self, code: u16) {
        self.status.store(code, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.halt();
    }
}
