//! The real `failover-dns` binary (`env!("CARGO_BIN_EXE_failover-dns")`, see
//! `support::Binary`) over real sockets: the standalone file mode, hardening against
//! hostile clients and exhausted resources, and failover end to end. No cluster.

#[path = "../support/mod.rs"]
mod support;

mod failover;
mod hardening;
mod standalone;
