//! The real `failover-dns` binary (`env!("CARGO_BIN_EXE_failover-dns")`, see
//! `support::Binary`) over real sockets: the standalone file mode, hardening against
//! hostile clients and exhausted resources, failover end to end, and the check and
//! explain commands. No cluster, except for the monitoring test's cluster-mode
//! scrape (`monitoring.rs`: some metric families appear only there).

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod failover;
mod hardening;
mod monitoring;
mod standalone;
