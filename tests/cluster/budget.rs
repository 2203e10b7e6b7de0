//! The write budget under flapping (spec §10) against a real API server: a check
//! flapping every 200 ms (`requestInterval: 100ms`, `failureThreshold: 1`) and the
//! failover pair that uses it. DNS follows every verdict; the status and Event writes
//! for the three objects stay within the budget (issue 20: ≤ 12 status writes and
//! ≤ 2 Event writes a minute for the check and its records together); the check
//! gets a `Flapping` condition and one Warning Event `Flapping`; and another object's
//! change made meanwhile is written promptly. Waits are bounded polls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::{a_record, apply, condition, controller, frec, hc, object};
use crate::support::cluster::ControlPlane;
use crate::support::*;
use hickory_proto::rr::RecordType;

const FLAP: &str = "flap.example.test.";
const CALM: &str = "calm.example.test.";
/// How long the writes are counted for.
const WINDOW: Duration = Duration::from_secs(30);
/// The target's state changes this often.
const TOGGLE: Duration = Duration::from_millis(200);
/// Within this, a change of an object written long ago shows in its status (a
/// correctness bound: it takes well under a second).
const PROMPTLY: Duration = Duration::from_secs(5);

/// A loopback HTTP target answering 200 or 503 (keep-alive), as `up` says.
struct Toggled {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Toggled {
    fn start() -> Toggled {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (up2, stop2) = (up.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (up, stop) = (up2.clone(), stop2.clone());
                std::thread::spawn(move || serve(stream, &up, &stop));
            }
        });
        Toggled { addr, up, stop }
    }
}

fn serve(mut stream: TcpStream, up: &AtomicBool, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stop.load(Ordering::SeqCst) {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            let answer: &[u8] = if up.load(Ordering::SeqCst) {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown"
            };
            if stream.write_all(answer).is_err() {
                return;
            }
        }
    }
}

impl Drop for Toggled {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Flips `up` every [`TOGGLE`] until dropped.
struct Flapper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Flapper {
    fn start(up: Arc<AtomicBool>) -> Flapper {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut flips = 0;
            while !stop2.load(Ordering::SeqCst) {
                std::thread::sleep(TOGGLE);
                up.fetch_xor(true, Ordering::SeqCst);
                flips += 1;
            }
            flips
        });
        Flapper { stop, thread: Some(thread) }
    }

    fn stop(mut self) -> u32 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().map_or(0, |t| t.join().unwrap())
    }
}

impl Drop for Flapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A check probing `port` every `interval` and a failover pair using it.
fn pair(check: &str, port: u16, interval: &str, threshold: u32, names: [&str; 3]) -> String {
    let [fqdn, primary, secondary] = names;
    hc(
        "default",
        check,
        &format!(
            "{{type: HTTP, ipAddress: 127.0.0.1, port: {port}, resourcePath: health, requestInterval: {interval}, failureThreshold: {threshold}}}"
        ),
    ) + &frec(
        "default",
        primary,
        &format!(
            r#"{{name: {fqdn}, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: {check}, values: ["192.0.2.1"]}}"#
        ),
    ) + &frec(
        "default",
        secondary,
        &format!(
            r#"{{name: {fqdn}, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}}"#
        ),
    )
}

/// Every sample of a metric family summed, e.g. all `failoverdns_events_total{...}`
/// with `result="ok"`.
fn sum(bin: &Binary, family: &str, result: &str) -> f64 {
    let (_, text) = http_get(bin.admin, "/metrics");
    text.lines()
        .filter(|l| {
            l.starts_with(&format!("{family}{{")) && l.contains(&format!("result=\"{result}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn status_writes(bin: &Binary) -> f64 {
    sum(bin, "failoverdns_status_writes_total", "ok")
}

fn event_writes(bin: &Binary) -> f64 {
    sum(bin, "failoverdns_events_total", "ok")
}

/// `(type, reason, count)` of the Events about one object, as the API server shows them.
fn events_of(cp: &ControlPlane, kind: &str, name: &str) -> Vec<(String, String, u64)> {
    let out = cp.kubectl(&["get", "events.events.k8s.io", "-n", "default", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|e| e["regarding"]["kind"] == kind && e["regarding"]["name"] == name)
        .map(|e| {
            let count = e["series"]["count"].as_u64().unwrap_or(1);
            let s = |f: &str| e[f].as_str().unwrap_or("").to_string();
            (s("type"), s("reason"), count)
        })
        .collect()
}

/// Counts DNS answer switches for `FLAP` and polls the check's `Flapping` condition
/// for `window`; returns the switches, when the condition was first seen (since
/// `started`) and its message.
fn watch_flapping(
    cp: &ControlPlane,
    bin: &Binary,
    started: Instant,
    window: Duration,
    flapping_at: &mut Option<(Duration, String)>,
) -> u32 {
    let until = Instant::now() + window;
    let mut switches = 0;
    let mut last = bin.answers(FLAP, RecordType::A);
    let mut polled = Instant::now();
    while Instant::now() < until {
        let now = bin.answers(FLAP, RecordType::A);
        if now != last {
            switches += 1;
            last = now;
        }
        if flapping_at.is_none() && polled.elapsed() > Duration::from_millis(500) {
            polled = Instant::now();
            let c = condition(&object(cp, "hc", "default", "flappy"), "Flapping").clone();
            if c["status"] == "True" && c["reason"] == "Flapping" {
                let message = c["message"].as_str().unwrap_or("").to_owned();
                *flapping_at = Some((started.elapsed(), message));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    switches
}

#[test]
fn a_flapping_check_stays_within_the_write_budget_while_dns_follows_it() {
    let cp = ControlPlane::start();
    let flappy = Toggled::start();
    let calm = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    apply(
        &cp,
        &(pair(
            "flappy",
            flappy.addr.port(),
            "100ms",
            1,
            ["flap.example.test", "flap-p", "flap-s"],
        ) + &pair("calm", calm.addr.port(), "1s", 2, ["calm.example.test", "calm-p", "calm-s"])
            + &a_record("default", "other", "other.example.test", "192.0.2.7")),
    );
    let bin = controller(&cp, &[]);
    bin.wait_until(
        || bin.answers(FLAP, RecordType::A) == ["192.0.2.1"],
        "the flapping pair's PRIMARY",
    );
    let serving = |name: &str| object(&cp, "frec", "default", name)["status"]["serving"].as_bool();
    bin.wait_for(
        Duration::from_secs(20),
        || {
            // A probe every 100 ms on a busy machine may time out now and then: the
            // flapping pair only needs a status.
            let calm = object(&cp, "hc", "default", "calm");
            object(&cp, "hc", "default", "flappy")["status"]["healthy"].is_boolean()
                && serving("flap-p").is_some()
                && serving("flap-s").is_some()
                && calm["status"]["healthy"] == true
                && condition(&calm, "Healthy")["reason"].as_str().is_some_and(|r| r != "Pending")
                && serving("calm-p") == Some(true)
                && serving("calm-s") == Some(false)
                && serving("other") == Some(true)
        },
        "the first statuses",
    );

    // The first WINDOW from the first flip, then another WINDOW of steady flapping.
    let (writes0, events0) = (status_writes(&bin), event_writes(&bin));
    let flapper = Flapper::start(flappy.up.clone());
    let started = Instant::now();
    let mut flapping_at = None;
    let switches = watch_flapping(&cp, &bin, started, WINDOW, &mut flapping_at);
    let (writes1, events1) = (status_writes(&bin), event_writes(&bin));
    let sustained = watch_flapping(&cp, &bin, started, WINDOW, &mut flapping_at);
    let (writes2, events2) = (status_writes(&bin), event_writes(&bin));
    let (first, then) =
        ((writes1 - writes0, events1 - events0), (writes2 - writes1, events2 - events1));
    eprintln!(
        "flapping, first {WINDOW:?}: {} status writes, {} Event writes, {switches} DNS answer switches; \
         the next {WINDOW:?}: {} status writes, {} Event writes, {sustained} switches; \
         Flapping condition: {flapping_at:?}",
        first.0, first.1, then.0, then.1,
    );

    // DNS follows the verdict: the target changed 150 times a window; every switch of
    // the answer needs a probe to see the change, so about as many, allowing for misses.
    assert!(switches >= 40 && sustained >= 40, "DNS switched only {switches}, {sustained} times");
    let (at, message) = flapping_at.expect("a Flapping condition on the check");
    // Eleven changes take 2.2 s; the check's status was written at the first flip, so
    // the next write waits for --status-min-interval (5 s).
    assert!(at < Duration::from_secs(15), "the Flapping condition came after {at:?}");
    assert!(message.contains(" times in the last 10 minutes"), "{message}");
    // The budget (issue 20: 12 status writes and 2 Events a minute for the check and
    // its records together), scaled to 30 s: 6 status writes, and 1 Event, plus in the
    // first window the one Warning Event Flapping and the first transition of each of
    // the three objects, told at once before anything could know it flaps.
    assert!(first.0 <= 6.0, "{} status writes in the first {WINDOW:?}", first.0);
    assert!(first.1 <= 4.0, "{} Event writes in the first {WINDOW:?}", first.1);
    assert!(then.0 <= 6.0, "{} status writes in the next {WINDOW:?}", then.0);
    assert!(then.1 <= 1.0, "{} Event writes in the next {WINDOW:?}", then.1);

    // Other objects' changes meanwhile are written promptly: the steady pair failing
    // over, an edit (a new generation) and a new record.
    calm.stop();
    bin.wait_until(
        || bin.answers(CALM, RecordType::A) == ["192.0.2.2"],
        "the steady pair failing over",
    );
    let failed = Instant::now();
    bin.wait_for(
        PROMPTLY,
        || {
            object(&cp, "hc", "default", "calm")["status"]["healthy"] == false
                && serving("calm-p") == Some(false)
                && serving("calm-s") == Some(true)
        },
        "the steady pair's failover in status",
    );
    eprintln!("the steady pair's failover written after {:?}", failed.elapsed());
    apply(
        &cp,
        &(a_record("default", "other", "other.example.test", "192.0.2.8")
            + &a_record("default", "newcomer", "new.example.test", "192.0.2.9")),
    );
    let edited = Instant::now();
    bin.wait_for(
        PROMPTLY,
        || {
            object(&cp, "frec", "default", "other")["status"]["observedGeneration"] == 2
                && condition(&object(&cp, "frec", "default", "newcomer"), "Accepted")["status"]
                    == "True"
        },
        "an edited and a new record's status",
    );
    eprintln!("an edited and a new record's status written after {:?}", edited.elapsed());

    // One Warning Event Flapping however long it flaps, and no Healthy / Unhealthy
    // Events once it flaps.
    let flapping_events = || {
        events_of(&cp, "HealthCheck", "flappy")
            .into_iter()
            .filter(|(t, r, _)| t == "Warning" && r == "Flapping")
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };
    bin.wait_until(|| flapping_events() >= 1, "a Warning Event Flapping");
    let flips = flapper.stop();
    assert_eq!(flapping_events(), 1, "after {flips} flips");
    let all = events_of(&cp, "HealthCheck", "flappy");
    let transitions: u64 =
        all.iter().filter(|(_, r, _)| r == "Healthy" || r == "Unhealthy").map(|e| e.2).sum();
    assert!(transitions <= 1, "Healthy/Unhealthy Events while flapping: {all:?}");
}
