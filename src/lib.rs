//! failover-dns: Route 53-style health-checked DNS records served by an embedded
//! authoritative DNS server.
//!
//! Data flows one way: sources (manifest files | Kubernetes watches) → [`model`]
//! (validated) → [`engine`] (pure routing decisions) → an immutable snapshot swapped
//! atomically → the DNS handlers that only read it. The prober feeds [`health`].

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
pub mod state;
pub mod status;
pub mod controller;
pub mod telemetry;
