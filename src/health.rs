//! The health map: the seam between whatever decides health (the prober) and the
//! routing engine. Pure data and logic; no I/O.
//!
//! Leaf checks (HTTP, HTTPS, TCP) carry the state their probes established.
//! Calculated checks are derived here from their children every time the map is
//! read, so a child's transition reaches its parents in the same snapshot.

use std::collections::HashMap;

use std::time::SystemTime;

use serde::Serialize;

use crate::model::{Check, Model, ObjectRef, Probe};

/// What the probes of one leaf check have established so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeafHealth {
    /// The check's state after `inverted` and the failure threshold were applied.
    pub healthy: bool,
    /// Machine-readable reason of the last probe result (`ConnectionRefused`, `StatusCode503`, ...).
    pub reason: String,
    pub message: String,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub last_probe_time: Option<SystemTime>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub last_transition_time: Option<SystemTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
}

/// Timing of the last probe, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub total_ms: f64,
}

impl LeafHealth {
    /// The state of a check that has not been probed yet.
    pub fn initial(check: &Check) -> Self {
        let healthy = check.initial_healthy();
        let (reason, message) = if check.disabled {
            ("Disabled", "health checking is disabled; the check counts as healthy")
        } else if check.inverted {
            ("Pending", "no verdict yet; an inverted check starts unhealthy")
        } else {
            ("Pending", "no verdict yet; a new check starts healthy")
        };
        Self {
            healthy,
            reason: reason.into(),
            message: message.into(),
            consecutive_successes: 0,
            consecutive_failures: 0,
            last_probe_time: None,
            last_transition_time: None,
            latency: None,
        }
    }
}

/// The state of every leaf check, as the prober reports it.
#[derive(Clone, Debug, Default)]
pub struct HealthMap {
    leaves: HashMap<ObjectRef, LeafHealth>,
}

impl HealthMap {
    pub fn set(&mut self, id: ObjectRef, health: LeafHealth) {
        self.leaves.insert(id, health);
    }

    pub fn get(&self, id: &ObjectRef) -> Option<&LeafHealth> {
        self.leaves.get(id)
    }

    /// Forgets a check that no longer exists.
    pub fn remove(&mut self, id: &ObjectRef) {
        self.leaves.remove(id);
    }

    /// Drops the state of checks that no longer exist.
    pub fn retain_checks(&mut self, model: &Model) {
        self.leaves.retain(|id, _| model.checks.contains_key(id));
    }

    /// The effective health of one check of the model (None when no such valid check
    /// exists). Disabled checks are healthy; calculated checks count their healthy
    /// children (a missing child counts unhealthy).
    pub fn verdict(&self, model: &Model, id: &ObjectRef) -> Option<bool> {
        let leaf = |check: &Check| -> bool {
            if check.disabled {
                return true;
            }
            self.leaves.get(&check.id).map_or_else(|| check.initial_healthy(), |l| l.healthy)
        };
        let check = model.checks.get(id)?;
        Some(match &check.probe {
            Probe::Calculated { .. } if check.disabled => true,
            Probe::Calculated { children, health_threshold } => {
                let healthy_children = children
                    .iter()
                    .filter(|c| model.checks.get(&id.sibling(c)).is_some_and(|child| leaf(child)))
                    .count();
                (healthy_children as u32 >= *health_threshold) != check.inverted
            }
            _ => leaf(check),
        })
    }

    /// The effective health of every check of the model, from scratch.
    pub fn resolve(&self, model: &Model) -> Verdicts {
        Verdicts(
            model
                .checks
                .keys()
                .filter_map(|id| Some((id.clone(), self.verdict(model, id)?)))
                .collect(),
        )
    }
}

/// Effective health of every existing check. A persistent map: the readers' view
/// shares it with the writer, and a transition copies one path, not the map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdicts(pub imbl::OrdMap<ObjectRef, bool>);

impl Verdicts {
    /// None when no such check exists.
    pub fn get(&self, id: &ObjectRef) -> Option<bool> {
        self.0.get(id).copied()
    }

    /// Sets or clears one verdict; true when it changed.
    pub fn set(&mut self, id: &ObjectRef, verdict: Option<bool>) -> bool {
        let old = match verdict {
            Some(v) => self.0.insert(id.clone(), v),
            None => self.0.remove(id),
        };
        old != verdict
    }
}

mod opt_time {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
            None => s.serialize_none(),
        }
    }
}
