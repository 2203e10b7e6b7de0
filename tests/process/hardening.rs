//! The real binary under abuse and as a daemon: connection caps on the DNS TCP and
//! admin listeners (with UDP and /readyz still answering), no per-query logging,
//! the probe target guard end to end, signals, and logs fit for files.
//!
//! Only loopback addresses are ever contacted.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

fn manifests_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let tmp = dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, dir.path().join(name)).unwrap();
    }
    dir
}

fn web(ip: &str) -> String {
    record("web", &format!(r#"{{name: web.example.test, type: A, ttl: 30, values: ["{ip}"]}}"#))
}

fn start(files: &[(&str, &str)], flags: &[&str]) -> (tempfile::TempDir, Binary) {
    let dir = manifests_dir(files);
    let mut args = vec!["--manifests", dir.path().to_str().unwrap(), "--zone", "example.test"];
    args.extend_from_slice(flags);
    // The test asserts on what the default log filter lets through.
    let bin = Binary::start_with(&args, |c| {
        c.env_remove("RUST_LOG").env_remove("NO_COLOR");
    });
    (dir, bin)
}

fn www_query() -> Vec<u8> {
    query_message("web.example.test.", RecordType::A, None).to_vec().unwrap()
}

/// GET over a connection from `source`; None when the server refuses it.
fn http_get_from(source: &str, addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = connect_from(source, addr);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    raw.split_whitespace().nth(1)?.parse().ok()
}

fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

// ---------------------------------------------------------------- DNS over TCP

#[test]
fn the_tcp_connection_past_the_cap_is_refused_counted_and_logged_once_while_udp_answers() {
    let (_dir, bin) = start(
        &[("web.yaml", &web("192.0.2.1"))],
        &["--tcp-max-connections", "8", "--tcp-max-connections-per-client", "0"],
    );
    let started = Instant::now();
    let mut held: Vec<TcpStream> = (0..8).map(|_| connect_from("127.0.0.1", bin.dns)).collect();
    for stream in &mut held {
        stream.write_all(&framed(&www_query())).unwrap();
        assert!(read_framed_or_close(stream).is_some(), "the first eight are served");
    }
    for i in 0..30 {
        let mut refused = connect_from("127.0.0.1", bin.dns);
        let _ = refused.write_all(&framed(&www_query()));
        assert!(closed_by_server(&mut refused), "connection {} past the cap stays open", i + 9);
        assert_eq!(
            bin.answers("web.example.test.", RecordType::A),
            ["192.0.2.1"],
            "UDP keeps answering"
        );
    }
    assert_eq!(bin.metric(r#"failoverdns_dns_tcp_refused_total{reason="total"}"#), 30.0);
    assert_eq!(bin.metric("failoverdns_dns_tcp_connections"), 8.0);
    let lines = count_lines(&bin.logs(), "DNS TCP connection refused");
    let periods = 1 + started.elapsed().as_secs() as usize / 10;
    assert!(
        (1..=periods).contains(&lines),
        "30 refusals, {lines} log lines (one per 10 s):\n{}",
        bin.logs()
    );
    // The held connections are still served.
    held[7].write_all(&framed(&www_query())).unwrap();
    assert!(read_framed_or_close(&mut held[7]).is_some());
}

/// Finding 7: hickory logged every TCP query at INFO.
#[test]
fn five_hundred_tcp_queries_do_not_log_five_hundred_lines() {
    let (_dir, bin) = start(&[("web.yaml", &web("192.0.2.1"))], &[]);
    let before = bin.logs().lines().count();
    for _ in 0..50 {
        let mut stream = connect_from("127.0.0.1", bin.dns);
        let batch: Vec<u8> = (0..10).flat_map(|_| framed(&www_query())).collect();
        stream.write_all(&batch).unwrap();
        for _ in 0..10 {
            let answer = read_framed_or_close(&mut stream).expect("an answer");
            assert_eq!(Message::from_vec(&answer).unwrap().answers.len(), 1);
        }
    }
    // UDP too, through both paths of the binary's default engine.
    for _ in 0..100 {
        bin.answers("web.example.test.", RecordType::A);
    }
    let added = bin.logs().lines().count() - before;
    assert!(added < 10, "600 queries added {added} log lines:\n{}", bin.logs());
}

// ---------------------------------------------------------------- admin

#[test]
fn idle_admin_connections_are_cut_off_and_the_cap_refuses_the_newest() {
    let (_dir, bin) = start(
        &[("web.yaml", &web("192.0.2.1"))],
        &[
            "--admin-max-connections",
            "6",
            "--admin-max-connections-per-client",
            "4",
            // Long enough that a loaded machine fills the caps before the first cut-off.
            "--admin-header-timeout",
            "8s",
            "--admin-idle-timeout",
            "10s",
        ],
    );
    // Four idle connections from one client: its fifth is refused, another client gets in.
    let mut idle: Vec<TcpStream> = (0..4).map(|_| connect_from("127.0.0.1", bin.admin)).collect();
    let mut fifth = connect_from("127.0.0.1", bin.admin);
    assert!(closed_by_server(&mut fifth), "a fifth connection from one client is refused");
    assert_eq!(
        http_get_from("127.0.0.2", bin.admin, "/readyz"),
        Some(200),
        "another client is served"
    );
    // Two more from a second client fill the listener: a third client is refused. The
    // served /readyz may hold its slot a moment after its answer, refusing one of them:
    // each is kept once it has stayed open (a refused connection is reset at once).
    // A refusal seen late (a busy accept loop) shows when the kept ones are checked
    // again just before the newest client tries: a closed one is replaced.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut second: Vec<TcpStream> = Vec::new();
    loop {
        while second.len() < 2 {
            assert!(
                Instant::now() < deadline,
                "two idle connections from a second client within the cap"
            );
            let mut stream = connect_from("127.0.0.2", bin.admin);
            stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            match stream.read(&mut [0u8; 1]) {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    second.push(stream)
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        second.retain_mut(still_open);
        if second.len() == 2 {
            break;
        }
    }
    assert!(idle.iter_mut().all(still_open), "the first client's idle connections are open");
    idle.extend(second);
    assert_eq!(
        http_get_from("127.0.0.3", bin.admin, "/readyz"),
        None,
        "the newest connection past the cap is refused"
    );
    // Within the header timeout every idle connection is closed by the server...
    let started = Instant::now();
    for stream in &mut idle {
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        assert!(closed_by_server(stream), "an idle admin connection outlived the header timeout");
    }
    eprintln!("six idle admin connections closed after {:?}", started.elapsed());
    // ...and the probes answer again, from every client.
    for source in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let mut code = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while code != Some(200) && Instant::now() < deadline {
            code = http_get_from(source, bin.admin, "/readyz");
        }
        assert_eq!(code, Some(200), "/readyz from {source}");
    }

    // A request head dripped a line every 200 ms is cut off at the header timeout.
    let mut slow = connect_from("127.0.0.1", bin.admin);
    let started = Instant::now();
    let _ = slow.write_all(b"GET /readyz HTTP/1.1\r\n");
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
        if slow.write_all(b"X-Slow: 1\r\n").is_err() {
            cut = true;
            break;
        }
        slow.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let read = slow.read(&mut buf);
        slow.set_nonblocking(false).unwrap();
        if read.is_ok() || matches!(&read, Err(e) if e.kind() != ErrorKind::WouldBlock) {
            cut = true;
            break;
        }
    }
    assert!(cut, "a dripped request head was never cut off");
    eprintln!("dripped request head cut off after {:?}", started.elapsed());

    assert!(bin.metric(r#"failoverdns_admin_refused_total{reason="per_client"}"#) >= 1.0);
    assert!(bin.metric(r#"failoverdns_admin_refused_total{reason="total"}"#) >= 1.0);
    assert!(bin.metric(r#"failoverdns_admin_closed_total{reason="header_timeout"}"#) >= 6.0);
    assert!(count_lines(&bin.logs(), "admin connection refused") <= 2, "{}", bin.logs());
}

// ---------------------------------------------------------------- probe target guard

/// A listener on a loopback address that counts (and holds) the connections it gets.
fn counting_listener(ip: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(format!("{ip}:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, count)
}

fn tcp_check(name: &str, addr: SocketAddr) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{type: TCP, ipAddress: {}, port: {}, requestInterval: 200ms, failureThreshold: 1}}\n",
        addr.ip(),
        addr.port()
    )
}

fn failover_pair(check: &str) -> String {
    record(
        "p",
        &format!(
            r#"{{name: svc.example.test, type: A, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: {check}, values: ["192.0.2.1"]}}"#
        ),
    ) + &record(
        "s",
        r#"{name: svc.example.test, type: A, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}"#,
    )
}

fn check_status(bin: &Binary, name: &str) -> serde_json::Value {
    let status = bin.status();
    let checks = status["healthChecks"].as_array().unwrap();
    checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name}")).clone()
}

#[test]
fn a_denied_probe_target_fails_with_target_denied_and_sees_no_connection() {
    let (addr, accepted) = counting_listener("127.0.0.2");
    let manifests = tcp_check("guarded", addr) + &failover_pair("guarded");
    let (_dir, bin) = start(&[("svc.yaml", &manifests)], &["--probe-deny", "127.0.0.2/32"]);
    bin.wait_until(
        || check_status(&bin, "guarded")["status"]["conditions"][0]["reason"] == "TargetDenied",
        "the check to fail with TargetDenied",
    );
    let check = check_status(&bin, "guarded");
    let message = check["status"]["conditions"][0]["message"].as_str().unwrap().to_string();
    assert!(message.contains("--probe-deny 127.0.0.2/32"), "the message names the rule: {message}");
    assert_eq!(check["status"]["healthy"], false);
    assert_eq!(
        bin.answers("svc.example.test.", RecordType::A),
        ["192.0.2.2"],
        "the SECONDARY answers"
    );
    // A few more probe rounds, and still not one connection.
    bin.wait_until(
        || {
            check_status(&bin, "guarded")["status"]["consecutiveFailures"].as_i64().unwrap_or(0)
                >= 5
        },
        "five denied probes",
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a denied target was connected to");
    assert!(
        bin.metric(r#"failoverdns_probe_results_total{type="tcp",reason="TargetDenied"}"#) >= 5.0
    );
}

#[test]
fn probe_allow_lets_a_chosen_range_through_a_denied_one() {
    let (allowed, allowed_count) = counting_listener("127.0.0.3");
    let (denied, denied_count) = counting_listener("127.0.0.4");
    let manifests =
        tcp_check("allowed", allowed) + &tcp_check("denied", denied) + &failover_pair("allowed");
    let (_dir, bin) = start(
        &[("svc.yaml", &manifests)],
        &["--probe-deny", "127.0.0.0/8", "--probe-allow", "127.0.0.3/32"],
    );
    bin.wait_until(
        || check_status(&bin, "allowed")["status"]["conditions"][0]["reason"] == "Connected",
        "the allowed check",
    );
    bin.wait_until(
        || check_status(&bin, "denied")["status"]["conditions"][0]["reason"] == "TargetDenied",
        "the denied check",
    );
    assert_eq!(
        bin.answers("svc.example.test.", RecordType::A),
        ["192.0.2.1"],
        "the PRIMARY answers"
    );
    assert!(allowed_count.load(Ordering::SeqCst) >= 1);
    assert_eq!(denied_count.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------- signals

#[test]
fn sighup_and_the_user_signals_do_not_stop_the_server_and_sighup_rereads() {
    let (dir, mut bin) = start(&[("web.yaml", &web("192.0.2.1"))], &[]);
    for signal in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGQUIT, libc::SIGHUP] {
        bin.signal(signal);
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            bin.child.try_wait().unwrap().is_none(),
            "signal {signal} stopped the server:\n{}",
            bin.logs()
        );
        assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"]);
    }
    bin.wait_until(
        || count_lines(&bin.logs(), "re-reading the manifests") >= 2,
        "both SIGHUPs logged",
    );
    assert!(count_lines(&bin.logs(), "signal ignored") >= 3, "{}", bin.logs());
    // An edit is still picked up, and a SIGHUP after it changes nothing else.
    let tmp = dir.path().join(".web.yaml.tmp");
    std::fs::write(&tmp, web("192.0.2.2")).unwrap();
    std::fs::rename(&tmp, dir.path().join("web.yaml")).unwrap();
    bin.signal(libc::SIGHUP);
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"],
        "the edited answer",
    );
    assert!(bin.child.try_wait().unwrap().is_none());
}

#[test]
fn sigterm_answers_the_query_in_flight_and_exits_zero_at_once() {
    let (_dir, mut bin) = start(&[("web.yaml", &web("192.0.2.1"))], &[]);
    let query = framed(&www_query());
    let mut in_flight = connect_from("127.0.0.1", bin.dns);
    // Served once, so the connection is surely accepted; then half of a second query.
    in_flight.write_all(&query).unwrap();
    assert!(read_framed_or_close(&mut in_flight).is_some());
    in_flight.write_all(&query[..5]).unwrap();
    let idle = connect_from("127.0.0.1", bin.dns);
    bin.signal(libc::SIGTERM);
    let signalled = Instant::now();
    bin.wait_until(|| bin.logs().contains("shutting down"), "the shutdown to start");
    in_flight.write_all(&query[5..]).unwrap();
    let answer = read_framed_or_close(&mut in_flight).expect("the query in flight is answered");
    assert_eq!(Message::from_vec(&answer).unwrap().answers.len(), 1);
    let status = bin.exit_within(Duration::from_secs(5));
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 5 s after SIGTERM:
{}",
            bin.logs()
        )
    });
    eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
    assert!(status.success(), "{status:?}\n{}", bin.logs());
    drop(idle);
}

#[test]
fn sigint_exits_zero_at_once() {
    let (_dir, mut bin) = start(&[("web.yaml", &web("192.0.2.1"))], &[]);
    // Something open on each listener, as in real life.
    let _dns = connect_from("127.0.0.1", bin.dns);
    let _admin = connect_from("127.0.0.1", bin.admin);
    bin.signal(libc::SIGINT);
    let signalled = Instant::now();
    let status = bin.exit_within(Duration::from_secs(5));
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 5 s after SIGINT:
{}",
            bin.logs()
        )
    });
    eprintln!("exited {:?} after SIGINT", signalled.elapsed());
    assert!(status.success(), "{status:?}");
}

// ---------------------------------------------------------------- logs

#[test]
fn logs_to_a_file_have_no_colours_and_json_logs_carry_the_text_fields() {
    let event = "DNS server listening";
    let fields = ["addr", "udp_sockets", "udp_engine", "rrl_per_second"];
    let (_dir, text) = start(&[("web.yaml", &web("192.0.2.1"))], &[]);
    let logs = text.logs();
    assert!(!logs.contains('\u{1b}'), "ANSI escapes in a log file:\n{logs}");
    let line = logs.lines().find(|l| l.contains(event)).expect("the listening line");
    for field in fields {
        assert!(line.contains(&format!("{field}=")), "text line lacks {field}: {line}");
    }
    assert!(line.contains("INFO") && line.contains("failover_dns::dns"), "{line}");

    let (_dir, json) = start(&[("web.yaml", &web("192.0.2.1"))], &["--log-format", "json"]);
    let logs = json.logs();
    assert!(!logs.contains('\u{1b}'));
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let line = lines.iter().find(|l| l["message"] == event).expect("the listening line");
    for field in fields.iter().chain(&["timestamp", "level", "target"]) {
        assert!(!line[field].is_null(), "JSON line lacks {field}: {line}");
    }
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "failover_dns::dns");
}

// ---------------------------------------------------------------- descriptors exhausted

/// CPU time (user + system) the process has used, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Part of finding 1: out of descriptors, the accept loops logged nothing and spun.
#[test]
fn out_of_descriptors_the_accept_loops_back_off_log_once_and_udp_answers() {
    let dir = manifests_dir(&[("web.yaml", &web("192.0.2.1"))]);
    let args = [
        "--manifests",
        dir.path().to_str().unwrap(),
        "--zone",
        "example.test",
        "--admin-max-connections",
        "0",
        "--admin-max-connections-per-client",
        "0",
        "--admin-header-timeout",
        "60s",
        "--admin-idle-timeout",
        "60s",
    ];
    let bin = Binary::start_with(&args, |c| {
        use std::os::unix::process::CommandExt;
        c.env_remove("RUST_LOG");
        // SAFETY: only setrlimit between fork and exec.
        unsafe {
            c.pre_exec(|| {
                let limit = libc::rlimit { rlim_cur: 64, rlim_max: 64 };
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
    });
    // The admin cap is lowered to a quarter of 64, the DNS cap to half; with what the
    // process holds besides, that is more than there is. Fill both
    // and more: whatever is left of the descriptors runs out.
    let mut held: Vec<TcpStream> = Vec::new();
    for i in 0..120 {
        let (source, target) =
            if i % 2 == 0 { ("127.0.0.5", bin.admin) } else { ("127.0.0.6", bin.dns) };
        held.push(connect_from(source, target));
    }
    bin.wait_until(|| bin.logs().contains("Too many open files"), "descriptors to run out");
    let pid = bin.child.id();
    let before = cpu_time(pid);
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(2) {
        let r = resolve(bin.dns, "web.example.test.", RecordType::A);
        assert_eq!(
            r.metadata.message_type,
            hickory_proto::op::MessageType::Response,
            "UDP keeps answering"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let used = cpu_time(pid) - before;
    eprintln!("CPU while out of descriptors: {used:?} in {:?}", window.elapsed());
    assert!(used < Duration::from_secs(1), "the process spins: {used:?} of CPU in 2 s");
    drop(held);
    bin.wait_until(
        || try_http_get(bin.admin, "/readyz").is_ok_and(|(code, _)| code == 200),
        "the admin endpoint to recover",
    );
    let logs = bin.logs();
    assert!(logs.contains("connection cap lowered to fit the open-files limit"), "{logs}");
    // One line per listener and 10 s, however often accept failed.
    let lines = count_lines(&logs, "cannot accept a connection");
    assert!((1..=4).contains(&lines), "{lines} lines:\n{logs}");
    let errors = bin.metric("failoverdns_admin_accept_errors_total")
        + bin.metric("failoverdns_dns_tcp_accept_errors_total");
    assert!(errors >= 1.0, "{logs}");
}

/// Open and silent right now (a non-blocking read would block).
fn still_open(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let open = matches!(stream.read(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}
