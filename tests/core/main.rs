//! The pure layers and the in-process servers: validation, health, the routing engine
//! and its snapshot, incremental updates, the CRD schemas, manifest parsing, the fuzz
//! regressions, the DNS server started in-process (`support::start`), and the prober
//! against real HTTP/TLS/TCP servers on loopback. No process is started and no
//! cluster is needed: `cargo test --test core` is the fast loop.
//!
//! One test binary per thing the tests start (`core`: nothing, `process`: the real
//! binary, `cluster`: a real kube-apiserver), each linking kube, hickory and rustls
//! once instead of once per file.

#[path = "../support/mod.rs"]
mod support;

mod crds;
mod dns;
mod dns_hardening;
mod endpoint_probes;
mod engine;
mod fuzz_regressions;
mod health;
mod incremental;
mod manifests;
mod prober;
mod validation;
