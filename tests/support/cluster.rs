//! A real Kubernetes control plane for tests: etcd and kube-apiserver on loopback
//! ports, state in a temporary directory, started and stopped by
//! `scripts/control-plane.sh` from binaries it built into a cache outside the
//! repository. Everything is stopped when the `ControlPlane` is dropped (a panicking
//! test too) and, should the test process die without unwinding, by a watcher the
//! script leaves behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CRD_NAMES: [&str; 4] = [
    "healthchecks.failoverdns.io",
    "failoverrecords.failoverdns.io",
    "checkerreports.failoverdns.io",
    "namedelegations.failoverdns.io",
];

pub struct ControlPlane {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("scripts/control-plane.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl ControlPlane {
    /// etcd + kube-apiserver with the failover-dns CRDs installed and served.
    pub fn start() -> ControlPlane {
        let cp = ControlPlane::start_bare();
        let out = cp.install_crds();
        assert!(out.status.success(), "kubectl apply -f crds/ failed: {}", text(&out.stderr));
        cp
    }

    /// etcd + kube-apiserver, nothing installed.
    pub fn start_bare() -> ControlPlane {
        let bin = run_script(&["bin-dir"]);
        assert!(bin.status.success(), "control-plane.sh bin-dir: {}", text(&bin.stderr));
        let kubectl = PathBuf::from(text(&bin.stdout).trim()).join("kubectl");
        // Ports are picked at random; a rare collision with a concurrent start is retried.
        let mut last_error = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new().prefix("failover-dns-cp.").tempdir().unwrap();
            let pid = std::process::id().to_string();
            let out = run_script(&["start", dir.path().to_str().unwrap(), "--watch", &pid]);
            let stderr = text(&out.stderr);
            if stderr.contains("control-plane.sh build") {
                panic!(
                    "the test control plane is not built: run `scripts/control-plane.sh build` \
                     (builds etcd, kube-apiserver and kubectl once, into a cache outside the repository)\n{stderr}"
                );
            }
            if out.status.success() {
                let kubeconfig = PathBuf::from(text(&out.stdout).trim());
                return ControlPlane { dir, kubeconfig, kubectl };
            }
            last_error = format!(
                "{stderr}\napiserver log (tail):\n{}",
                tail(&dir.path().join("apiserver.log"))
            );
            run_script(&["stop", dir.path().to_str().unwrap()]);
        }
        panic!("the control plane did not start: {last_error}");
    }

    /// `kubectl apply -f crds/`, then waits until every kind is Established and served.
    pub fn install_crds(&self) -> Output {
        let out = self.kubectl(&["apply", "-f", repo().join("crds").to_str().unwrap()]);
        if !out.status.success() {
            return out;
        }
        let mut args = vec!["wait", "--for", "condition=Established", "--timeout", "60s"];
        let crds: Vec<String> = CRD_NAMES.iter().map(|c| format!("crd/{c}")).collect();
        args.extend(crds.iter().map(String::as_str));
        let wait = self.kubectl(&args);
        assert!(wait.status.success(), "CRDs not Established: {}", text(&wait.stderr));
        // Established comes a moment before discovery lists the kinds.
        self.eventually(Duration::from_secs(30), "hc, frec and crep in discovery", || {
            self.kubectl(&["get", "hc,frec,crep,nd", "-A"]).status.success()
        });
        out
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig whose user is the ServiceAccount `failover-dns/failover-dns` (a
    /// static token of the API server; RBAC decides what it may do), for RBAC tests.
    pub fn service_account_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig-failover-dns-sa")
    }

    /// Runs kubectl (the version matching the server) against this control plane.
    /// Installs the Gateway API's CRDs (GatewayClass, Gateway; `scripts/control-plane.sh
    /// gateway-crds` fetches them once into the cache), as a cluster with Gateways has
    /// them, and waits until discovery lists the kind.
    pub fn install_gateway_api(&self) {
        let out = run_script(&["gateway-crds"]);
        assert!(out.status.success(), "control-plane.sh gateway-crds: {}", text(&out.stderr));
        let dir = text(&out.stdout).trim().to_string();
        let out = self.kubectl(&["apply", "--server-side", "-f", &dir]);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "applying the Gateway API CRDs:\n{stderr}");
        assert!(!stderr.contains("Warning"), "the Gateway API CRDs: warnings:\n{stderr}");
        // `kubectl wait` fails at once while a new CRD has no conditions yet: retried.
        self.eventually(Duration::from_secs(60), "the Gateway API CRDs Established", || {
            self.kubectl(&[
                "wait",
                "--for",
                "condition=Established",
                "--timeout",
                "10s",
                "crd/gateways.gateway.networking.k8s.io",
                "crd/gatewayclasses.gateway.networking.k8s.io",
            ])
            .status
            .success()
        });
        // Established comes a moment before discovery lists the kind.
        self.eventually(Duration::from_secs(30), "gateways in discovery", || {
            self.kubectl(&["get", "gateways.gateway.networking.k8s.io", "-A"]).status.success()
        });
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None)
    }

    /// `kubectl apply -f -` with `yaml` on stdin.
    pub fn apply(&self, yaml: &str) -> Output {
        self.kubectl_with_stdin(&["apply", "-f", "-"], Some(yaml))
    }

    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        // A discovery cache per control plane: another server may have used this port before.
        let cache = self.dir.path().join("kubectl-cache");
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.kubectl.display()));
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Stops the API server only; etcd keeps the data.
    pub fn stop_apiserver(&self) {
        let out = run_script(&["stop-apiserver", self.dir().to_str().unwrap()]);
        assert!(out.status.success(), "stop-apiserver: {}", text(&out.stderr));
    }

    /// Starts the API server again on the same port against the same etcd; returns once ready.
    pub fn start_apiserver(&self) {
        let out = run_script(&["start-apiserver", self.dir().to_str().unwrap()]);
        assert!(out.status.success(), "start-apiserver: {}", text(&out.stderr));
    }

    /// The API server's address, `https://127.0.0.1:PORT`.
    pub fn server(&self) -> String {
        let port = std::fs::read_to_string(self.dir().join("apiserver.port")).unwrap();
        format!("https://127.0.0.1:{}", port.trim())
    }

    pub fn eventually(&self, timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        run_script(&["stop", self.dir.path().to_str().unwrap()]);
    }
}

/// A tool `scripts/control-plane.sh build` puts into the cache (kubectl, helm): its
/// path, or a panic that says how to build it.
pub fn tool(name: &str) -> PathBuf {
    let bin = run_script(&["bin-dir"]);
    assert!(bin.status.success(), "control-plane.sh bin-dir: {}", text(&bin.stderr));
    let path = PathBuf::from(text(&bin.stdout).trim()).join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/control-plane.sh build` (builds it once, into a cache outside the repository)",
        path.display()
    );
    path
}

fn run_script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running scripts/control-plane.sh: {e}"))
}

fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
