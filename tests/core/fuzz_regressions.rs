//! Replays the fuzz corpus kept in the repository through the fuzz harnesses
//! (`fuzz/harness.rs`, the same code the cargo-fuzz targets run): the seed inputs
//! of every target and every input that once crashed or hung a target
//! (`tests/fuzz-regressions/<target>/`). See FUZZING.md.

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `harness` on every file of `tests/fuzz-regressions/<target>/`; each input
/// must pass and take well under the fuzzers' 10 s hang timeout.
fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    for file in files {
        let input = std::fs::read(&file).unwrap();
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(|| harness(&input));
        assert!(outcome.is_ok(), "{target}: {} fails the harness", file.display());
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{target}: {} took {took:?}", file.display());
    }
}

#[test]
fn dns_wire_corpus() {
    replay("dns_wire", harness::dns_wire);
}

#[test]
fn dns_hickory_corpus() {
    replay("dns_hickory", harness::dns_hickory);
}

#[test]
fn manifest_corpus() {
    replay("manifest", harness::manifest);
}

#[test]
fn probe_body_corpus() {
    replay("probe_body", harness::probe_body);
}

/// The harness's own zone is valid and answers what it should, so the DNS targets
/// fuzz a real zone rather than an empty one.
#[test]
fn harness_zone_answers() {
    use failover_dns::dns::wire;
    use rand::SeedableRng;
    let snapshot = harness::zones().ready.load();
    let mut query = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x04huge\x07example\x04test\x00\x00\x01\x00\x01");
    let mut out = Vec::new();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let outcome = wire::respond(&snapshot, &query, false, &mut rng, &mut out).expect("an answer");
    assert_eq!(outcome.rcode, wire::rcode::NOERROR);
    assert!(outcome.truncated, "4500 A values do not fit one TCP message");
    assert!(out.len() > 30_000);
}
