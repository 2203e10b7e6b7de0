//! The CoreDNS snippets of deploy/coredns/: they agree with each other and the README,
//! and CoreDNS running them as shipped follows a failover.

use super::*;

/// The server block without comments or blank lines, indentation removed.
fn block(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_coredns_snippets_agree() {
    let read = |f: &str| std::fs::read_to_string(repo().join("deploy/coredns").join(f)).unwrap();
    let plain = block(&read("failover-dns.server"));
    let custom = objects(&read("coredns-custom.yaml"));
    let embedded = block(custom[0]["data"]["failover-dns.server"].as_str().unwrap());
    assert_eq!(embedded, plain, "coredns-custom.yaml carries failover-dns.server");
    let nodelocal = block(&read("nodelocaldns.server"));
    for line in
        ["success 9984 30 1", "denial 9984 5 1", "forward . FAILOVER_DNS_IP:53 {", "force_tcp"]
    {
        assert!(nodelocal.iter().any(|l| l == line), "nodelocaldns.server: {line}");
    }
    assert!(
        !plain.iter().chain(&nodelocal).any(|l| l.starts_with("serve_stale")),
        "a stale answer is the failed endpoint"
    );
    // What the README says about the caps is what the snippets set.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("success 9984 30 1") && readme.contains("denial 9984 5 1"));
}

/// CoreDNS (the plugins deploy/coredns/ uses, built by `scripts/control-plane.sh
/// build`) running one of the shipped server blocks as it is, but for the zone
/// (example.test), the listening port, and `FAILOVER_DNS_IP:53` pointed at `upstream`.
struct CoreDns {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl CoreDns {
    fn start(snippet: &str, upstream: std::net::SocketAddr) -> CoreDns {
        let port = free_port();
        let shipped = std::fs::read_to_string(repo().join("deploy/coredns").join(snippet)).unwrap();
        let corefile = shipped
            .replace("example.internal:53", &format!("example.test:{port}"))
            .replace("FAILOVER_DNS_IP:53", &upstream.to_string())
            .replace("__PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__", "127.0.0.1")
            .replace("prometheus :9253", &format!("prometheus 127.0.0.1:{}", free_port()));
        let lines = block(&corefile);
        assert!(
            lines.iter().any(|l| l.contains(&upstream.to_string()))
                && !lines.iter().any(|l| l.contains("__PILLAR__")),
            "{snippet}: placeholders moved?\n{corefile}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Corefile"), &corefile).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(tool("coredns"))
            .args(["-conf", "Corefile"])
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let coredns = CoreDns { child, addr: format!("127.0.0.1:{port}").parse().unwrap(), dir };
        let query = query_message("www.example.test.", RecordType::A, None).to_vec().unwrap();
        coredns.wait(std::time::Duration::from_secs(20), "CoreDNS to answer", || {
            udp_raw(coredns.addr, &query).is_some()
        });
        coredns
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn answers(&self, name: &str) -> Vec<String> {
        answer_strings(&resolve(self.addr, name, RecordType::A))
    }

    /// Polls `cond` every 50 ms for up to `timeout`; CoreDNS's log says why when it fails.
    fn wait(&self, timeout: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + timeout;
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; CoreDNS log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for CoreDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped server blocks in a real CoreDNS in front of failover-dns: answers pass
/// through, a failover shows within the record's TTL of 1 s (CoreDNS's default floor
/// would hold it 5 s), and a name created after an NXDOMAIN resolves within the 5 s
/// denial cap (failover-dns's negative TTL is 60 s). Bounds are generous; the
/// defaults they guard against are far outside them.
#[test]
fn coredns_with_the_shipped_server_blocks_follows_a_failover() {
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("records.yaml");
    let objects = format!(
        "apiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: web, namespace: default}}\n\
         spec: {{type: HTTP, ipAddress: 127.0.0.1, port: {}, resourcePath: health, requestInterval: 1s, failureThreshold: 1}}\n\
         ---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: www-p, namespace: default}}\n\
         spec: {{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: web, values: [\"192.0.2.1\"]}}\n\
         ---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: www-s, namespace: default}}\n\
         spec: {{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: [\"192.0.2.2\"]}}\n",
        target.addr.port()
    );
    std::fs::write(&manifests, &objects).unwrap();
    let bin =
        Binary::start(&["--manifests", manifests.to_str().unwrap(), "--zone", "example.test"]);
    bin.wait_until(
        || bin.answers("www.example.test.", RecordType::A) == ["192.0.2.1"],
        "the PRIMARY",
    );

    let servers = [
        CoreDns::start("failover-dns.server", bin.dns),
        CoreDns::start("nodelocaldns.server", bin.dns),
    ];
    let seconds = std::time::Duration::from_secs;
    for dns in &servers {
        dns.wait(seconds(10), "the PRIMARY through CoreDNS", || {
            dns.answers("www.example.test.") == ["192.0.2.1"]
        });
        let answer = resolve(dns.addr, "www.example.test.", RecordType::A);
        assert!(answer.answers.iter().all(|r| r.ttl <= 1), "the record's TTL passes through");
        let nx = resolve(dns.addr, "new.example.test.", RecordType::A);
        assert_eq!(nx.metadata.response_code, hickory_proto::op::ResponseCode::NXDomain);
    }

    // A failover: as soon as failover-dns answers the SECONDARY, CoreDNS follows within
    // the 1 s TTL (plus scheduling).
    target.stop();
    bin.wait_until(
        || bin.answers("www.example.test.", RecordType::A) == ["192.0.2.2"],
        "the SECONDARY",
    );
    for dns in &servers {
        dns.wait(seconds(3), "the SECONDARY through CoreDNS", || {
            dns.answers("www.example.test.") == ["192.0.2.2"]
        });
    }

    // A name that was NXDOMAIN (cached) appears within the 5 s denial cap.
    let added = "\n---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: new, namespace: default}\n\
                 spec: {name: new.example.test, type: A, ttl: 1, values: [\"192.0.2.7\"]}\n";
    std::fs::write(&manifests, objects + added).unwrap();
    bin.wait_until(
        || bin.answers("new.example.test.", RecordType::A) == ["192.0.2.7"],
        "the new record",
    );
    for dns in &servers {
        dns.wait(seconds(8), "the new record through CoreDNS", || {
            dns.answers("new.example.test.") == ["192.0.2.7"]
        });
    }
}
