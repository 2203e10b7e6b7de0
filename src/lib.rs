//! failover-dns: Route 53-style health-checked DNS records served by an embedded
//! authoritative DNS server.
//!
//! Data flows one way: sources ([`source`]: manifest files | Kubernetes watches) and
//! the [`prober`] → the [`sink`], which alone owns the [`state`]: [`model`]
//! (validated) → [`engine`] (pure routing decisions) → an immutable [`snapshot`] for
//! the [`dns`] handlers and a [`view`] for the admin endpoint and the [`status`]
//! writer, both swapped atomically and only read. The [`supervisor`] owns every task.

pub mod allocator;
pub mod health;
pub mod model;
pub mod prober;
pub mod resources;
pub mod engine;
pub mod names;
pub mod snapshot;
pub mod dns;
pub mod metrics;
pub mod admin;
pub mod config;
pub mod conn;
pub mod crdgen;
pub mod serve;
pub mod source;
pub mod sink;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod view;
pub mod telemetry;
