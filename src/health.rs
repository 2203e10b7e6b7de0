//! The health map: the seam between whatever decides health (the prober) and the
//! routing engine. Pure data and logic; no I/O.
//!
//! Leaf checks (HTTP, HTTPS, TCP) carry the state their probes established.
//! Calculated checks are derived here from their children every time the map is
//! read, so a child's transition reaches its parents in the same snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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

/// The state of every leaf check, as the prober reports it, and what the other
/// checkers (replicas) report of it when the checker quorum is on.
#[derive(Clone, Debug, Default)]
pub struct HealthMap {
    leaves: HashMap<ObjectRef, LeafHealth>,
    /// Per check, each other live checker's verdict (after its `inverted` and thresholds).
    peers: HashMap<ObjectRef, BTreeMap<Arc<str>, bool>>,
    /// `--checker-quorum`: a check is healthy while more than this percentage of the
    /// live checkers see it healthy; 0 turns the rule off (this replica decides alone).
    quorum_percent: u8,
}

/// Route 53's checker rule: healthy while more than `percent` % of the `checkers` see it
/// healthy; one checker alone decides by its own verdict.
pub fn quorum_healthy(healthy: usize, checkers: usize, percent: u8) -> bool {
    if checkers <= 1 {
        return healthy >= 1 && checkers == 1;
    }
    healthy * 100 > usize::from(percent) * checkers
}

impl HealthMap {
    /// Turns the checker quorum on (`percent` > 0) or off.
    pub fn set_quorum(&mut self, percent: u8) {
        self.quorum_percent = percent.min(100);
    }

    /// Another checker's verdict of one check (None: it no longer reports one, its
    /// report expired, or the checker is gone).
    pub fn set_peer_view(&mut self, id: &ObjectRef, checker: Arc<str>, healthy: Option<bool>) {
        match healthy {
            Some(healthy) => {
                self.peers.entry(id.clone()).or_default().insert(checker, healthy);
            }
            None => {
                if let Some(views) = self.peers.get_mut(id) {
                    views.remove(&checker);
                    if views.is_empty() {
                        self.peers.remove(id);
                    }
                }
            }
        }
    }

    /// A checker's report expired or was deleted: every view it gave is forgotten.
    /// Returns the checks whose counts changed.
    pub fn forget_checker(&mut self, checker: &str) -> Vec<ObjectRef> {
        let mut changed = Vec::new();
        self.peers.retain(|id, views| {
            if views.remove(checker).is_some() {
                changed.push(id.clone());
            }
            !views.is_empty()
        });
        changed
    }

    /// How many live checkers see the check healthy, of how many (this one included).
    pub fn checker_counts(&self, check: &Check) -> (usize, usize) {
        let own = usize::from(self.own_verdict(check));
        match self.peers.get(&check.id).filter(|_| self.quorum_percent > 0) {
            Some(views) => (own + views.values().filter(|h| **h).count(), 1 + views.len()),
            None => (own, 1),
        }
    }

    /// This replica's own verdict of a leaf check (healthy until its first verdict,
    /// unhealthy when inverted).
    fn own_verdict(&self, check: &Check) -> bool {
        self.leaves.get(&check.id).map_or_else(|| check.initial_healthy(), |l| l.healthy)
    }

    pub fn set(&mut self, id: ObjectRef, health: LeafHealth) {
        self.leaves.insert(id, health);
    }

    pub fn get(&self, id: &ObjectRef) -> Option<&LeafHealth> {
        self.leaves.get(id)
    }

    /// Forgets a check that no longer exists.
    pub fn remove(&mut self, id: &ObjectRef) {
        self.leaves.remove(id);
        self.peers.remove(id);
    }

    /// Drops the state of checks that no longer exist.
    pub fn retain_checks(&mut self, model: &Model) {
        self.leaves.retain(|id, _| model.checks.contains_key(id));
        self.peers.retain(|id, _| model.checks.contains_key(id));
    }

    /// The effective health of one check of the model (None when no such valid check
    /// exists). Disabled checks are healthy; calculated checks count their healthy
    /// children (a missing child counts unhealthy).
    pub fn verdict(&self, model: &Model, id: &ObjectRef) -> Option<bool> {
        // Calculated checks combine their children's combined verdicts.
        let leaf = |check: &Check| -> bool {
            if check.disabled {
                return true;
            }
            let (healthy, checkers) = self.checker_counts(check);
            quorum_healthy(healthy, checkers, self.quorum_percent)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{Change, Fqdn, Input};
    use crate::resources::{HealthCheckSpec, HealthCheckType};

    fn model() -> Model {
        let mut model = Model::new(&[Fqdn::parse("example.test").unwrap()]);
        let tcp = |name: &str, inverted: bool, disabled: bool| {
            let spec = HealthCheckSpec {
                type_: HealthCheckType::Tcp,
                ip_address: Some("127.0.0.1".into()),
                port: Some(9),
                inverted: Some(inverted),
                disabled: Some(disabled),
                ..HealthCheckSpec::default()
            };
            Change::Check(Input {
                id: ObjectRef::new("ns", name),
                seq: 0,
                file: None,
                generation: None,
                spec,
            })
        };
        let calculated = HealthCheckSpec {
            type_: HealthCheckType::Calculated,
            child_health_checks: Some(vec!["a".into(), "b".into()]),
            health_threshold: Some(2),
            ..HealthCheckSpec::default()
        };
        let parent = Input {
            id: ObjectRef::new("ns", "both"),
            seq: 0,
            file: None,
            generation: None,
            spec: calculated,
        };
        model.apply([
            tcp("a", false, false),
            tcp("b", false, false),
            tcp("off", false, true),
            Change::Check(parent),
        ]);
        model
    }

    fn leaf(healthy: bool) -> LeafHealth {
        let check = Check {
            id: ObjectRef::new("ns", "x"),
            probe: Probe::Tcp {
                endpoint: crate::model::Endpoint::Ip([127, 0, 0, 1].into()),
                port: 9,
            },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            failure_threshold: 1,
            inverted: false,
            disabled: false,
        };
        LeafHealth { healthy, ..LeafHealth::initial(&check) }
    }

    #[test]
    fn more_than_the_quorum_of_live_checkers_must_see_it_healthy() {
        // Route 53's 18 %: one healthy of three is enough, none is not.
        assert!(quorum_healthy(1, 3, 18));
        assert!(!quorum_healthy(0, 3, 18));
        // "More than": 1 of 2 is exactly 50 %, not more.
        assert!(!quorum_healthy(1, 2, 50));
        assert!(quorum_healthy(2, 3, 50));
        // One live checker decides alone, whatever the percentage.
        assert!(quorum_healthy(1, 1, 99));
        assert!(!quorum_healthy(0, 1, 0));
        assert!(!quorum_healthy(0, 0, 18));
    }

    #[test]
    fn peers_count_only_with_the_quorum_on_and_only_while_they_report() {
        let model = model();
        let a = ObjectRef::new("ns", "a");
        let mut map = HealthMap::default();
        map.set(a.clone(), leaf(false));
        for peer in ["replica-b", "replica-c"] {
            map.set_peer_view(&a, Arc::from(peer), Some(true));
        }
        assert_eq!(map.verdict(&model, &a), Some(false), "quorum off: this replica decides alone");
        map.set_quorum(18);
        assert_eq!(map.verdict(&model, &a), Some(true), "2 of 3 checkers see it healthy");
        assert_eq!(map.checker_counts(&model.checks[&a]), (2, 3));
        map.set_quorum(50);
        assert_eq!(map.verdict(&model, &a), Some(true));
        map.set_peer_view(&a, Arc::from("replica-b"), None);
        assert_eq!(map.verdict(&model, &a), Some(false), "1 of 2 is not more than 50 %");
        assert_eq!(map.forget_checker("replica-c"), vec![a.clone()]);
        assert_eq!(map.checker_counts(&model.checks[&a]), (0, 1), "alone again");
        assert!(map.forget_checker("replica-c").is_empty());
    }

    #[test]
    fn calculated_checks_combine_combined_verdicts_and_disabled_stays_healthy() {
        let model = model();
        let (a, b, both, off) = (
            ObjectRef::new("ns", "a"),
            ObjectRef::new("ns", "b"),
            ObjectRef::new("ns", "both"),
            ObjectRef::new("ns", "off"),
        );
        let mut map = HealthMap::default();
        map.set_quorum(18);
        map.set(a.clone(), leaf(false));
        map.set(b.clone(), leaf(true));
        assert_eq!(
            map.verdict(&model, &both),
            Some(false),
            "a is down here and nobody else says otherwise"
        );
        map.set_peer_view(&a, Arc::from("replica-b"), Some(true));
        assert_eq!(map.verdict(&model, &both), Some(true), "a's combined verdict is healthy");
        map.set_peer_view(&off, Arc::from("replica-b"), Some(false));
        assert_eq!(map.verdict(&model, &off), Some(true), "a disabled check counts healthy");
    }
}
