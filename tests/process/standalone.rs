//! The real binary in standalone mode: manifests on disk, edits applied live, bad
//! edits reported without disturbing what is served, and the admin endpoint.

use crate::support::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn write(dir: &std::path::Path, file: &str, content: &str) {
    // Write then rename, like editors and kubectl-style tools do.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

fn web(ip: &str) -> String {
    record("web", &format!(r#"{{name: web.example.test, type: A, ttl: 30, values: ["{ip}"]}}"#))
}

fn start_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, Binary) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        write(dir.path(), name, content);
    }
    let bin =
        Binary::start(&["--manifests", dir.path().to_str().unwrap(), "--zone", "example.test"]);
    (dir, bin)
}

#[test]
fn edits_take_effect_without_restart() {
    let (dir, bin) = start_dir(&[("web.yaml", &web("192.0.2.1"))]);
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"]);
    write(dir.path(), "web.yaml", &web("192.0.2.2"));
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"],
        "the edited answer",
    );
    // A new file adds records; removing it removes them.
    write(
        dir.path(),
        "more.yml",
        &record("api", r#"{name: api.example.test, type: A, values: ["192.0.2.9"]}"#),
    );
    bin.wait_until(
        || bin.answers("api.example.test.", RecordType::A) == ["192.0.2.9"],
        "the new file",
    );
    std::fs::remove_file(dir.path().join("more.yml")).unwrap();
    bin.wait_until(
        || {
            resolve(bin.dns, "api.example.test.", RecordType::A).metadata.response_code
                == ResponseCode::NXDomain
        },
        "the removed file's records to go",
    );
}

/// `failoverdns_manifest_reads_total` from the admin endpoint.
fn manifest_reads(bin: &Binary) -> f64 {
    let (_, metrics) = http_get(bin.admin, "/metrics");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("failoverdns_manifest_reads_total ")?.parse().ok())
        .unwrap_or_else(|| panic!("no failoverdns_manifest_reads_total in\n{metrics}"))
}

/// The reloads' own reads of the files are file events too; they must not start
/// another reload (the server used to re-read its manifests every 50 ms, forever).
#[test]
fn an_idle_server_does_not_keep_reading_its_manifests() {
    let (dir, bin) = start_dir(&[("web.yaml", &web("192.0.2.1"))]);
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = manifest_reads(&bin);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let idle = manifest_reads(&bin) - before;
    // One periodic rescan may fall into the window.
    assert!(idle <= 1.0, "{idle} reads in 1.5 s with no file touched");

    write(dir.path(), "web.yaml", &web("192.0.2.2"));
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"],
        "the edited answer",
    );
    assert!(manifest_reads(&bin) > before + idle, "the edit was served without a read");
}

#[test]
fn a_broken_file_is_reported_and_the_last_good_version_keeps_serving() {
    let (dir, bin) = start_dir(&[("web.yaml", &web("192.0.2.1"))]);
    let path = dir.path().join("web.yaml");

    // A YAML syntax error.
    write(
        dir.path(),
        "web.yaml",
        "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nspec: [unclosed\n",
    );
    bin.wait_until(
        || bin.status()["sourceErrors"].as_array().is_some_and(|e| !e.is_empty()),
        "the parse error",
    );
    let status = bin.status();
    let error = &status["sourceErrors"][0];
    assert_eq!(error["file"], path.to_str().unwrap());
    assert_eq!(
        bin.answers("web.example.test.", RecordType::A),
        ["192.0.2.1"],
        "old answer still served"
    );
    assert!(bin.logs().contains("web.yaml"), "the log names the file");

    // A field of the wrong type: the error names the field.
    write(
        dir.path(),
        "web.yaml",
        &record("web", r#"{name: web.example.test, type: A, ttl: "soon", values: ["192.0.2.5"]}"#),
    );
    bin.wait_until(
        || {
            bin.status()["sourceErrors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("spec.ttl"))
        },
        "the error naming spec.ttl",
    );
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"]);

    // A field the kind does not have (a typo): refused as the API server refuses it,
    // not served with the default in its place.
    write(
        dir.path(),
        "web.yaml",
        &record("web", r#"{name: web.example.test, type: A, tll: 5, values: ["192.0.2.6"]}"#),
    );
    bin.wait_until(
        || {
            bin.status()["sourceErrors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(r#"unknown field "spec.tll""#))
        },
        "the error naming spec.tll",
    );
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"]);

    // A valid YAML document that fails validation: rejected as a whole, field named.
    let bad = web("192.0.2.7")
        + &record(
            "bad",
            r#"{name: web.example.test, type: A, routingPolicy: Weighted, setIdentifier: x, weight: 300, values: ["192.0.2.8"]}"#,
        );
    write(dir.path(), "web.yaml", &bad);
    bin.wait_until(
        || {
            bin.status()["sourceErrors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("spec.weight"))
        },
        "the validation error naming spec.weight",
    );
    assert_eq!(
        bin.answers("web.example.test.", RecordType::A),
        ["192.0.2.1"],
        "the rejected edit is not served"
    );

    // Fixing the file clears the error and serves the new data.
    write(dir.path(), "web.yaml", &web("192.0.2.3"));
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.3"],
        "the fixed file",
    );
    assert_eq!(bin.status()["sourceErrors"].as_array().map(Vec::len), Some(0));
}

#[test]
fn invalid_records_in_a_new_file_never_displace_valid_ones() {
    let (dir, bin) = start_dir(&[("web.yaml", &web("192.0.2.1"))]);
    // A newer file (sorting first) with a conflicting Simple record and a valid one.
    let newer = record("web-again", r#"{name: web.example.test, type: A, values: ["192.0.2.66"]}"#)
        + &record("ok", r#"{name: ok.example.test, type: TXT, values: ["fine"]}"#);
    write(dir.path(), "aaa.yaml", &newer);
    bin.wait_until(
        || bin.answers("ok.example.test.", RecordType::TXT) == ["fine"],
        "the valid newcomer",
    );
    assert_eq!(
        bin.answers("web.example.test.", RecordType::A),
        ["192.0.2.1"],
        "the older record keeps serving"
    );
    let problems = bin.status()["problems"].clone();
    let problem = problems
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["object"]["name"] == "web-again")
        .expect("reported");
    assert_eq!(problem["field"], "spec.name");
    assert!(problem["file"].as_str().unwrap().ends_with("aaa.yaml"));
}

#[test]
fn admin_endpoint_reports_health_metrics_status_and_explain() {
    let failover = r#"
apiVersion: failoverdns.io/v1alpha1
kind: HealthCheck
metadata: {name: down, namespace: default}
spec: {type: TCP, ipAddress: 127.0.0.1, port: 9, inverted: true}
"#
    .to_string()
        + &record(
            "p",
            r#"{name: svc.example.test, type: A, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: down, values: ["192.0.2.1"]}"#,
        )
        + &record(
            "s",
            r#"{name: svc.example.test, type: A, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}"#,
        );
    let (_dir, bin) = start_dir(&[("svc.yaml", &failover)]);
    assert_eq!(http_get(bin.admin, "/healthz").0, 200);
    assert_eq!(http_get(bin.admin, "/readyz").0, 200);
    // An inverted check starts unhealthy, so the SECONDARY answers.
    assert_eq!(bin.answers("svc.example.test.", RecordType::A), ["192.0.2.2"]);

    let (code, body) = http_get(bin.admin, "/explain?name=svc.example.test&type=A");
    assert_eq!(code, 200);
    let explain: serde_json::Value = serde_json::from_str(&body).unwrap();
    let decision = &explain["decisions"][0];
    assert_eq!(decision["policy"], "Failover");
    assert!(decision["rule"].as_str().unwrap().contains("SECONDARY is healthy"));
    let primary = decision["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["failover"] == "PRIMARY")
        .unwrap();
    assert_eq!(primary["healthy"], false);
    assert!(primary["health"].as_str().unwrap().contains("down"));
    assert_eq!(explain["exampleAnswer"][0]["value"], "192.0.2.2");
    let (code, _) = http_get(bin.admin, "/explain?type=A");
    assert_eq!(code, 400, "name is required");
    let (_, body) = http_get(bin.admin, "/explain?name=nothing.example.test");
    assert!(body.contains("NXDOMAIN"));

    let status = bin.status();
    let check = &status["healthChecks"][0];
    assert_eq!(check["name"], "down");
    assert_eq!(check["healthy"], false);
    let rec = status["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "svc.example.test.")
        .unwrap();
    let chosen: Vec<_> = rec["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["selection"] == "chosen")
        .collect();
    assert_eq!(chosen.len(), 1);
    assert_eq!(chosen[0]["values"][0], "192.0.2.2");

    bin.answers("nothing.example.test.", RecordType::A);
    let (code, metrics) = http_get(bin.admin, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains(r#"failoverdns_dns_responses_total{transport="udp",rcode="NXDOMAIN"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"failoverdns_dns_answers_by_policy_total{policy="Failover"}"#));
}

#[test]
fn dig_sees_the_bundled_examples() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let bin = Binary::start(&["--manifests", examples, "--zone", "example.internal"]);
    let dig = |args: &[&str]| {
        let out = std::process::Command::new("dig")
            .args([
                &format!("@{}", bin.dns.ip()),
                "-p",
                &bin.dns.port().to_string(),
                "+time=2",
                "+tries=1",
            ])
            .args(args)
            .output()
            .expect("dig is installed (dnsutils)");
        String::from_utf8(out.stdout).unwrap()
    };
    let api = dig(&["+short", "api.example.internal", "A"]);
    assert!(["192.0.2.31", "192.0.2.32"].contains(&api.trim()), "a weighted answer, got {api:?}");
    // Nothing listens on the primary's health-check port, so the SECONDARY takes over.
    bin.wait_until(
        || dig(&["+short", "www.example.internal", "A"]).trim() == "192.0.2.20",
        "the SECONDARY",
    );
    assert!(dig(&["example.internal", "SOA"]).contains("flags: qr aa"));
    assert!(dig(&["+tcp", "nothing.example.internal"]).contains("status: NXDOMAIN"));
    // A directory is read as `kubectl apply -f` reads it: examples/cluster/ (Services
    // need a cluster) is not, so the bundled examples load without an error.
    let status = bin.status();
    assert_eq!(status["sourceErrors"], serde_json::json!([]), "{status}");
    assert!(!status.to_string().contains("db.apps.internal"), "{status}");
}

#[test]
fn a_directory_gives_its_own_files_not_its_subdirectories() {
    let dir = tempfile::tempdir().unwrap();
    let record = |name: &str, ip: &str| {
        format!(
            "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}}}\nspec: {{name: {name}.example.test, type: A, values: [\"{ip}\"]}}\n"
        )
    };
    std::fs::write(dir.path().join("top.yaml"), record("top", "192.0.2.1")).unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/below.yaml"), record("below", "192.0.2.2")).unwrap();
    let bin =
        Binary::start(&["--manifests", dir.path().to_str().unwrap(), "--zone", "example.test"]);
    bin.wait_until(|| bin.answers("top.example.test.", RecordType::A) == ["192.0.2.1"], "top.yaml");
    assert!(bin.answers("below.example.test.", RecordType::A).is_empty());
    // Named on its own, the subdirectory is read.
    let nested = dir.path().join("nested");
    let both = Binary::start(&[
        "--manifests",
        dir.path().to_str().unwrap(),
        "--manifests",
        nested.to_str().unwrap(),
        "--zone",
        "example.test",
    ]);
    both.wait_until(
        || both.answers("below.example.test.", RecordType::A) == ["192.0.2.2"],
        "nested/below.yaml through its own --manifests",
    );
}

#[test]
fn a_missing_manifests_path_stops_the_start_with_its_name() {
    let missing = tempfile::tempdir().unwrap().path().join("no,such,dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_failover-dns"))
        .args(["serve", "--manifests", missing.to_str().unwrap(), "--zone", "example.test"])
        .args(["--dns-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("--manifests {}", missing.display())), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn a_manifests_path_with_a_comma_is_one_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web,v1.yaml");
    std::fs::write(&file, web("192.0.2.7")).unwrap();
    let bin = Binary::start(&["--manifests", file.to_str().unwrap(), "--zone", "example.test"]);
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.7"]);
}

/// Hostile directory entries (a FIFO named like a manifest, a link to an endless
/// device) are reported with their path and never block or flood the reader: an edit
/// of another file is still served, and what was served stays.
#[test]
fn a_fifo_or_a_link_to_dev_zero_is_refused_and_does_not_block_reloads() {
    let (dir, bin) = start_dir(&[("web.yaml", &web("192.0.2.1"))]);
    let fifo = dir.path().join("pipe.yaml");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
    write(dir.path(), "web.yaml", &web("192.0.2.2"));
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"],
        "the edit despite the FIFO",
    );
    bin.wait_until(
        || {
            let errors = bin.status()["sourceErrors"].to_string();
            errors.contains("pipe.yaml")
                && errors.contains("zero.yaml")
                && errors.contains("not a regular file")
        },
        "both entries reported",
    );
    let rss_kib = bin.rss_kib();
    assert!(rss_kib < 512 * 1024, "the reader did not read /dev/zero ({rss_kib} KiB resident)");
}

/// A nesting bomb and an alias bomb beside good files: each is refused with an error
/// naming the file, the document and the line, the good records keep being served and
/// edited, and the process stays small.
#[test]
fn yaml_bombs_are_refused_without_disturbing_the_served_zone() {
    let (dir, bin) = start_dir(&[("web.yaml", &web("192.0.2.1"))]);
    let depth = 200_000;
    let nested = format!(
        "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: deep}}\nignored: {}{}\nspec: {{name: deep.example.test, type: A, values: [192.0.2.8]}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let mut laughs = String::from(
        "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: lol}\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for level in 1..12 {
        laughs +=
            &format!("l{level}: &l{level} [{}]\n", vec![format!("*l{}", level - 1); 9].join(", "));
    }
    laughs += "spec: {name: lol.example.test, type: A, values: [192.0.2.9]}\n";
    write(dir.path(), "deep.yaml", &nested);
    write(dir.path(), "laughs.yaml", &laughs);
    write(dir.path(), "web.yaml", &web("192.0.2.2"));
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"],
        "the edit beside the bombs",
    );
    bin.wait_until(
        || {
            let errors = bin.status()["sourceErrors"].to_string();
            errors.contains("deep.yaml: document 1: ignored")
                && errors.contains("nested deeper than 32 levels at line 4")
                && errors.contains("laughs.yaml: document 1")
                && errors.contains("too large or too complex")
        },
        "both bombs reported with their file, document and line",
    );
    assert!(
        bin.answers("lol.example.test.", RecordType::A).is_empty(),
        "nothing of a refused file is served"
    );
    assert!(
        bin.answers("deep.example.test.", RecordType::A).is_empty(),
        "nothing of a refused file is served"
    );
    let rss_kib = bin.rss_kib();
    assert!(rss_kib < 256 * 1024, "the aliases were not expanded ({rss_kib} KiB resident)");
}

/// Only files whose bytes changed are read again, and only objects whose documents
/// changed reach the model: an edit of one object in a file of many changes one name.
#[test]
fn an_edit_of_one_object_changes_only_that_object() {
    let many: String = (0..50)
        .map(|i| {
            record(
                &format!("r{i}"),
                &format!(r#"{{name: h{i}.example.test, type: A, values: ["192.0.2.{i}"]}}"#),
            )
        })
        .collect();
    let (dir, bin) = start_dir(&[("many.yaml", &many), ("web.yaml", &web("192.0.2.1"))]);
    assert_eq!(bin.answers("h7.example.test.", RecordType::A), ["192.0.2.7"]);
    let edited = many.replace("192.0.2.7\"", "198.51.100.7\"");
    write(dir.path(), "many.yaml", &edited);
    bin.wait_until(
        || bin.answers("h7.example.test.", RecordType::A) == ["198.51.100.7"],
        "the edited record",
    );
    assert_eq!(bin.answers("h8.example.test.", RecordType::A), ["192.0.2.8"]);
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"]);
}

/// A file rewritten in place (truncated, half written, the rest 30 ms later) or
/// deleted and recreated never makes its names vanish: a version that loses objects is
/// applied only once it has stayed so for a moment. A real removal still applies.
#[test]
fn a_file_rewritten_in_place_never_answers_nxdomain_meanwhile() {
    use std::io::Write;
    let a = record("a", r#"{name: a.example.test, type: A, values: ["192.0.2.1"]}"#);
    let b = record("b", r#"{name: b.example.test, type: A, values: ["192.0.2.2"]}"#);
    let (dir, bin) = start_dir(&[("ab.yaml", &format!("{a}{b}"))]);
    let path = dir.path().join("ab.yaml");
    assert_eq!(bin.answers("b.example.test.", RecordType::A), ["192.0.2.2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, dns) = (stop.clone(), bin.dns);
        std::thread::spawn(move || {
            let mut nxdomain = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if resolve(dns, "b.example.test.", RecordType::A).metadata.response_code
                    == ResponseCode::NXDomain
                {
                    nxdomain += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            nxdomain
        })
    };
    for round in 0..5 {
        let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        file.write_all(a.as_bytes()).unwrap();
        file.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        file.write_all(b.as_bytes()).unwrap();
        drop(file);
        std::thread::sleep(std::time::Duration::from_millis(100));
        if round % 2 == 1 {
            std::fs::remove_file(&path).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(30));
            std::fs::write(&path, format!("{a}{b}")).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        watcher.join().unwrap(),
        0,
        "b answered NXDOMAIN while its file was being rewritten"
    );
    // A version that really lost b is applied once it has settled.
    std::fs::write(&path, &a).unwrap();
    bin.wait_until(
        || {
            resolve(bin.dns, "b.example.test.", RecordType::A).metadata.response_code
                == ResponseCode::NXDomain
        },
        "the removal to apply",
    );
    assert_eq!(bin.answers("a.example.test.", RecordType::A), ["192.0.2.1"]);
}

/// A task that dies must take the process down (Kubernetes restarts it), never leave
/// a server answering from data that no longer updates while `/readyz` says ready.
#[test]
fn a_supervised_task_that_panics_stops_the_process_with_status_one() {
    for task in ["manifest-watcher", "sink", "admin"] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "web.yaml", &web("192.0.2.1"));
        let args = [
            "--manifests",
            dir.path().to_str().unwrap(),
            "--zone",
            "example.test",
            "--test-panic-task",
            task,
        ];
        let mut bin = Binary::start(&args);
        assert_eq!(
            bin.answers("web.example.test.", RecordType::A),
            ["192.0.2.1"],
            "serving before the panic"
        );
        assert_eq!(
            bin.exit_within(std::time::Duration::from_secs(15)).and_then(|s| s.code()),
            Some(1),
            "{task}: the process exits with status 1; log:\n{}",
            bin.logs()
        );
        let logs = bin.logs();
        assert!(
            logs.contains(&format!("task {task} panicked")),
            "{task}: the log names the task:\n{logs}"
        );
    }
}

/// `/status` pages like the Kubernetes API (`limit`, `continue`) and filters by name
/// and health; the pages together hold every object exactly once.
#[test]
fn status_pages_and_filters() {
    let mut yaml = health_check(
        "down",
        r#"{type: TCP, ipAddress: 127.0.0.1, port: 9, requestInterval: 100ms, failureThreshold: 1}"#,
    );
    for i in 0..7 {
        let spec = format!(r#"{{name: r{i}.example.test, type: A, values: ["192.0.2.{i}"]}}"#);
        yaml.push_str(&record(&format!("r{i}"), &spec));
    }
    let spec =
        r#"{name: svc.example.test, type: A, healthCheckName: down, values: ["192.0.2.99"]}"#;
    yaml.push_str(&record("svc", spec));
    let (_dir, bin) = start_dir(&[("all.yaml", &yaml)]);
    bin.wait_until(|| bin.status()["healthChecks"][0]["healthy"] == false, "the check to fail");

    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let path = if token.is_empty() {
            "/status?limit=3".to_string()
        } else {
            format!("/status?limit=3&continue={token}")
        };
        let (code, body) = http_get(bin.admin, &path);
        assert_eq!(code, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let objects = page["healthChecks"]
            .as_array()
            .unwrap()
            .iter()
            .chain(page["records"].as_array().unwrap());
        let here: Vec<String> = objects.map(|o| o["name"].as_str().unwrap().to_string()).collect();
        assert!(here.len() <= 3, "{here:?}");
        assert_eq!(
            page.get("problems").is_some(),
            pages == 0,
            "problems come with the first page only"
        );
        names.extend(here);
        pages += 1;
        match page["continue"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
        assert!(pages < 10, "pages must end");
    }
    let mut expected: Vec<String> = (0..7).map(|i| format!("r{i}.example.test.")).collect();
    expected.insert(0, "down".into());
    expected.push("svc.example.test.".into());
    assert_eq!(names, expected, "every object once, checks first, records in name order");

    let unhealthy = bin.status_at("/status?unhealthy=true");
    let records: Vec<&str> = unhealthy["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(records, ["svc.example.test."]);
    assert_eq!(unhealthy["healthChecks"].as_array().unwrap().len(), 1);

    let by_name = bin.status_at("/status?name=svc.example.test");
    assert_eq!(by_name["records"].as_array().unwrap().len(), 1);
    assert_eq!(by_name["healthChecks"][0]["name"], "down", "the check the name's records use");
    let (code, body) = http_get(bin.admin, "/status?continue=bogus");
    assert_eq!(code, 400, "{body}");
}

/// A `/status` reader that stops reading holds one published view and one writer
/// thread, nothing else: edits are served meanwhile, `/readyz` answers, at most four
/// bodies are written at once (a fifth request gets 503 at once, not a queue), and the
/// admin idle timeout closes the stalled connections, which frees the writers.
#[test]
fn stalled_status_readers_block_nothing_and_are_cut_off() {
    use std::io::{Read, Write};
    // Enough records that the streamed body outgrows the socket buffers.
    let mut bulk = String::new();
    for i in 0..20_000 {
        let spec = format!(
            r#"{{name: b{i}.example.test, type: A, values: ["198.51.100.{}"]}}"#,
            i % 250 + 1
        );
        bulk.push_str(&record(&format!("b{i}"), &spec));
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bulk.yaml", &bulk);
    write(dir.path(), "web.yaml", &web("192.0.2.1"));
    let root = dir.path().to_str().unwrap();
    let args = ["--manifests", root, "--zone", "example.test", "--admin-idle-timeout", "2s"];
    let bin = Binary::start(&args);
    let mut stalled: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(bin.admin).unwrap();
            write!(stream, "GET /status HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
            let mut first = [0u8; 1024];
            stream.read_exact(&mut first).unwrap();
            assert!(String::from_utf8_lossy(&first).contains("200 OK"));
            stream
        })
        .collect();
    assert_eq!(
        http_get(bin.admin, "/status").0,
        503,
        "a fifth body is refused while four are stalled"
    );

    write(dir.path(), "web.yaml", &web("192.0.2.2"));
    bin.wait_until(|| bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"], "the edit");
    assert_eq!(http_get(bin.admin, "/readyz").0, 200);

    // Cut off once nothing moved for the idle timeout: reading on ends before the body does.
    std::thread::sleep(std::time::Duration::from_secs(3));
    for stream in &mut stalled {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        let ended = match stream.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(ended, "the stalled connection is closed");
        let body = String::from_utf8_lossy(&rest);
        assert!(!body.trim_end().ends_with('}'), "the body was cut off, not completed");
    }
    bin.wait_until(|| http_get(bin.admin, "/status?limit=1").0 == 200, "the writers to be free");
}

/// A FailoverRecord in namespace `ns`.
fn record_in(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

fn delegation(namespaces: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: NameDelegation\nmetadata: {{name: shop}}\nspec: {{names: [\"*.shop.example.test\"], namespaces: [{namespaces}]}}\n"
    )
}

#[test]
fn manifests_carry_name_ownership_and_delegations_as_the_cluster_does() {
    let weighted = |ns: &str, id: &str, ip: &str| {
        record_in(
            ns,
            &format!("www-{id}"),
            &format!(
                r#"{{name: www.shop.example.test, type: A, routingPolicy: Weighted, setIdentifier: {id}, weight: 1, values: ["{ip}"]}}"#
            ),
        )
    };
    let records = weighted("team-a", "a", "192.0.2.1") + &weighted("team-b", "b", "192.0.2.2");
    // Without a delegation the name is team-a's (the oldest record set: its file's first).
    let (dir, bin) = start_dir(&[("records.yaml", &records)]);
    let answers = |bin: &Binary| {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            seen.extend(bin.answers("www.shop.example.test.", RecordType::A));
        }
        seen.into_iter().collect::<Vec<_>>()
    };
    assert_eq!(answers(&bin), ["192.0.2.1"], "team-b cannot join team-a's name");
    let problems = bin.status()["problems"].to_string();
    assert!(problems.contains("belongs to namespace team-a"), "{problems}");

    // A delegation for both lets them share it; one for team-a only refuses team-b.
    write(dir.path(), "delegations.yaml", &delegation("team-a, team-b"));
    bin.wait_until(|| answers(&bin) == ["192.0.2.1", "192.0.2.2"], "shared");
    write(dir.path(), "delegations.yaml", &delegation("team-b"));
    bin.wait_until(|| answers(&bin) == ["192.0.2.2"], "only team-b delegated");
    let problems = bin.status()["problems"].to_string();
    assert!(problems.contains("no NameDelegation covers www.shop.example.test"), "{problems}");
    // A broken delegation is reported with its file and field, and the last one is gone.
    write(
        dir.path(),
        "delegations.yaml",
        &delegation("team-b").replace("namespaces: [team-b]", "namespace: [team-b]"),
    );
    bin.wait_until(
        || bin.status()["sourceErrors"].to_string().contains("delegations.yaml"),
        "the broken delegation reported",
    );
    std::fs::remove_file(dir.path().join("delegations.yaml")).unwrap();
    bin.wait_until(|| answers(&bin) == ["192.0.2.1"], "ownership alone again");
}
