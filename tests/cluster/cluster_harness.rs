//! The test control plane itself (tests/support/cluster.rs, scripts/control-plane.sh):
//! the API server restarts on the same port with the data kept (what outage tests
//! need), and nothing is left running after a test, whether it passes, panics or dies.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cluster::ControlPlane;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn pid(dir: &Path, name: &str) -> u32 {
    std::fs::read_to_string(dir.join(format!("{name}.pid"))).unwrap().trim().parse().unwrap()
}

/// Running (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

fn wait_gone(pids: &[u32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids.iter().any(|&p| alive(p)) {
        assert!(Instant::now() < deadline, "still running after {within:?}: {pids:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_api_server_restarts_on_the_same_port_and_keeps_the_objects() {
    let cp = ControlPlane::start();
    let yaml = "apiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {name: kept, namespace: default}\nspec: {type: TCP, ipAddress: 127.0.0.1, port: 22}\n";
    let out = cp.apply(yaml);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = cp.server();
    let etcd = pid(cp.dir(), "etcd");
    let first = pid(cp.dir(), "apiserver");

    cp.stop_apiserver();
    assert!(!alive(first), "the API server is stopped");
    assert!(alive(etcd), "etcd keeps running");
    let out = cp.kubectl(&["get", "hc", "kept", "--request-timeout", "2s"]);
    assert!(!out.status.success(), "no API server answers: {}", text(&out.stdout));

    cp.start_apiserver();
    assert_eq!(cp.server(), server, "same address");
    assert_ne!(pid(cp.dir(), "apiserver"), first, "a new process");
    let out = cp.kubectl(&["get", "hc", "kept", "-o", "jsonpath={.spec.port}"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "22", "the object survived in etcd");
}

#[test]
fn a_panicking_test_leaves_nothing_running() {
    let mut pids = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cp = ControlPlane::start_bare();
        pids = vec![pid(cp.dir(), "etcd"), pid(cp.dir(), "apiserver")];
        assert!(pids.iter().all(|&p| alive(p)));
        panic!("a failing test");
    }));
    assert!(result.is_err());
    assert_eq!(pids.len(), 2);
    wait_gone(&pids, Duration::from_secs(15));
}

#[test]
fn the_control_plane_stops_when_the_process_it_watches_dies() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/control-plane.sh");
    let dir = tempfile::tempdir().unwrap();
    // Stands in for a test process that is killed without unwinding.
    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    let out = Command::new("bash")
        .arg(&script)
        .args(["start", dir.path().to_str().unwrap(), "--watch", &owner.id().to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("control-plane.sh build"),
        "the test control plane is not built: run `scripts/control-plane.sh build`\n{stderr}"
    );
    assert!(out.status.success(), "start: {stderr}");
    let pids = [pid(dir.path(), "etcd"), pid(dir.path(), "apiserver")];
    assert!(pids.iter().all(|&p| alive(p)));

    owner.kill().unwrap();
    owner.wait().unwrap();
    let stopped = std::panic::catch_unwind(|| wait_gone(&pids, Duration::from_secs(20)));
    Command::new("bash")
        .arg(&script)
        .args(["stop", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stopped.is_ok(), "the watcher stopped etcd and the API server");
}
