//! Where objects come from: manifest files ([`files`]) or, in cluster mode, the API
//! server. Every source hands the state changes one object at a time
//! ([`crate::model::Change`]), never a whole new configuration.

pub mod api_watch;
pub mod cluster;
pub mod delegations;
pub mod files;
pub mod objects;
