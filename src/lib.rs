//! failover-dns: Route 53-style health-checked DNS records served by an embedded
//! authoritative DNS server.
//!
//! Data flows one way: sources ([`source`]: manifest files | Kubernetes watches) and
//! the [`prober`] → the [`sink`], which alone owns the [`state`]: [`model`]
//! (validated) → [`engine`] (pure routing decisions) → an immutable [`snapshot`] for
//! the [`dns`] handlers and a [`view`] for the admin endpoint and the [`status`]
//! writer, both swapped atomically and only read. The [`supervisor`] owns every task.

pub mod admin;
pub mod allocator;
pub mod cli;
pub mod codec;
pub mod config;
pub mod conn;
pub mod crdgen;
pub mod dns;
pub mod endpoint_probes;
pub mod engine;
pub mod health;
pub mod metrics;
pub mod model;
pub mod names;
pub mod prober;
pub mod quorum;
pub mod resources;
pub mod serve;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod telemetry;
pub mod terms;
pub mod view;
