//! Validation (src/model.rs `validate`): every rule of the contract (api.md section 1)
//! yields an Error naming the object and the field, rejected objects are not served,
//! and they never disturb the objects that are valid. Pure, no I/O.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::support::model::*;
use failover_dns::model::{
    self, Endpoint, Fqdn, Input, Kind, Policy, Probe, RecordData, parse_rdata, parse_txt, validate,
};
use failover_dns::resources::{FailoverRole, HealthCheckSpec, HealthCheckType, RecordType};
use hickory_proto::rr::RData;

mod aliases;
mod health_checks;
mod isolation;
mod names_and_values;
mod objects;
mod ownership;
mod records;

const ZONE: &str = "example.com";

fn world() -> World {
    World::new(&[ZONE, "example.net"])
}

/// The record sets served for a name + type, as object names, oldest first.
fn served_at(model: &model::Model, name: &str, rtype: RecordType) -> Vec<String> {
    model
        .sets
        .get(&key(name, rtype))
        .map(|sets| sets.iter().map(|s| s.id.name.to_string()).collect())
        .unwrap_or_default()
}

fn txt(text: &str) -> Vec<String> {
    parse_txt(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .into_iter()
        .map(|s| String::from_utf8(s).unwrap())
        .collect()
}
