//! Checks with a `serviceRef` (HTTP, HTTPS, TCP): one probe per ready endpoint of the
//! Service, each a check of its own for the prober (its own failure threshold), kept
//! in line with the endpoints as they come and go; the check is healthy while at
//! least `minHealthyEndpoints` of them pass. Pure bookkeeping: the state syncs it when
//! the check or its Service changes, and feeds it the probes' results.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use rustc_hash::FxHashMap;

use crate::health::{EndpointTally, LeafHealth};
use crate::model::objects::{NO_ENDPOINTS, Objects};
use crate::model::{Check, ObjectRef, Probe};

/// Reason of a check whose `serviceRef.port` no EndpointSlice of the Service has.
pub const PORT_NOT_FOUND: &str = "PortNotFound";

/// A probe's id: the check's name and the endpoint (`@` never occurs in object names).
pub fn probe_id(check: &ObjectRef, endpoint: SocketAddr) -> ObjectRef {
    check.sibling(format!("{}@{endpoint}", check.name))
}

/// Whether `id` is an endpoint's probe (see [`probe_id`]) rather than a check.
pub fn is_probe_id(id: &ObjectRef) -> bool {
    id.name.contains('@')
}

#[derive(Debug, Default)]
struct OfCheck {
    /// The probe of each endpoint, in address order (stable messages).
    probes: BTreeMap<SocketAddr, ObjectRef>,
    /// The check as its probes were made from: while it stays the same, a probe
    /// whose endpoint stays is kept as it is, not made again.
    made_from: Option<Check>,
    /// Why nothing is probed although endpoints are ready (a port no slice has).
    problem: Option<String>,
}

#[derive(Debug, Default)]
pub struct EndpointProbes {
    /// Each probe and the check it belongs to.
    probes: FxHashMap<ObjectRef, (ObjectRef, Arc<Check>)>,
    of: FxHashMap<ObjectRef, OfCheck>,
    /// What each probe has established so far.
    results: FxHashMap<ObjectRef, LeafHealth>,
}

impl EndpointProbes {
    /// A probe's definition, for the prober.
    pub fn probe(&self, id: &ObjectRef) -> Option<&Arc<Check>> {
        self.probes.get(id).map(|(_, c)| c)
    }

    /// Brings `check`'s probes in line with its Service's ready endpoints now (none
    /// unless it probes a Service, or while disabled). Returns the probes whose
    /// definition changed (started, changed or stopped). Costs a lookup per endpoint:
    /// a rolling update of a large Service must not hold the sink.
    pub fn sync(&mut self, check: &Check, objects: &Objects) -> Vec<ObjectRef> {
        let Probe::Service { port, each, .. } = &check.probe else {
            return self.forget(&check.id);
        };
        let service = check.endpoints_service().expect("a Service check reads a Service");
        let (targets, problem) = match objects.endpoint_targets(&service, port.as_ref()) {
            _ if check.disabled => (Vec::new(), None),
            Ok(targets) => (targets, None),
            Err(problem) => (Vec::new(), Some(problem)),
        };
        let mut old = self.of.remove(&check.id).unwrap_or_default();
        let unchanged = old.made_from.as_ref() == Some(check);
        let mut changed = Vec::new();
        let mut probes = BTreeMap::new();
        for (ip, port) in targets {
            let addr = SocketAddr::new(ip, port);
            if let Some(id) = old.probes.remove(&addr) {
                if unchanged {
                    probes.insert(addr, id);
                    continue;
                }
                self.results.remove(&id);
            }
            let id = probe_id(&check.id, addr);
            let probe = Check {
                id: id.clone(),
                probe: each.at(ip, port),
                interval: check.interval,
                timeout: check.timeout,
                failure_threshold: check.failure_threshold,
                healthy_threshold: check.healthy_threshold,
                // The check's verdict is inverted, not each endpoint's.
                inverted: false,
                disabled: false,
            };
            self.probes.insert(id.clone(), (check.id.clone(), Arc::new(probe)));
            changed.push(id.clone());
            probes.insert(addr, id);
        }
        // Endpoints no longer ready: their probes stop.
        for id in old.probes.into_values() {
            self.probes.remove(&id);
            self.results.remove(&id);
            changed.push(id);
        }
        let made_from = Some(check.clone());
        self.of.insert(check.id.clone(), OfCheck { probes, made_from, problem });
        changed
    }

    /// Stops every probe of a check (gone, or no longer probing a Service).
    pub fn forget(&mut self, check: &ObjectRef) -> Vec<ObjectRef> {
        let Some(old) = self.of.remove(check) else { return Vec::new() };
        let ids: Vec<ObjectRef> = old.probes.into_values().collect();
        for id in &ids {
            self.probes.remove(id);
            self.results.remove(id);
        }
        ids
    }

    /// A probe's new state; returns the check it belongs to (None: no such probe).
    pub fn report(&mut self, id: &ObjectRef, result: LeafHealth) -> Option<ObjectRef> {
        let (check, _) = self.probes.get(id)?;
        let check = check.clone();
        self.results.insert(id.clone(), result);
        Some(check)
    }

    /// The check's state from its probes: an endpoint counts as passing until its
    /// first verdict, as a new check does; the transition time moves only with the
    /// state.
    pub fn leaf(
        &self,
        check: &Check,
        previous: Option<&LeafHealth>,
        now: SystemTime,
    ) -> LeafHealth {
        let Probe::Service { service, min, .. } = &check.probe else {
            return LeafHealth::initial(check);
        };
        let of = self.of.get(&check.id);
        let probes = of.into_iter().flat_map(|o| o.probes.values());
        let results: Vec<(&ObjectRef, Option<&LeafHealth>)> =
            probes.map(|id| (id, self.results.get(id))).collect();
        let passing = results.iter().filter(|(_, r)| r.is_none_or(|r| r.healthy)).count() as u32;
        let ready = results.len() as u32;
        let passes = passing >= *min;
        let healthy = check.disabled || passes != check.inverted;
        let endpoint = |id: &ObjectRef| id.name.rsplit('@').next().unwrap_or("").to_owned();
        let (reason, message) = if check.disabled {
            (
                "Disabled".to_owned(),
                "health checking is disabled; the check counts as healthy".to_owned(),
            )
        } else if let Some(problem) = of.and_then(|o| o.problem.as_ref()) {
            (PORT_NOT_FOUND.to_owned(), problem.clone())
        } else if ready == 0 {
            (NO_ENDPOINTS.to_owned(), format!("Service {service} has no ready endpoint"))
        } else {
            let failing: Vec<String> = results
                .iter()
                .filter_map(|(id, r)| {
                    r.filter(|r| !r.healthy).map(|r| format!("{}: {}", endpoint(id), r.reason))
                })
                .collect();
            let reason = if passes {
                "EndpointsHealthy".to_owned()
            } else {
                results
                    .iter()
                    .find_map(|(_, r)| r.filter(|r| !r.healthy).map(|r| r.reason.clone()))
                    .unwrap_or_else(|| NO_ENDPOINTS.to_owned())
            };
            let mut message = format!(
                "{passing} of {ready} endpoints of Service {service} pass (at least {min} needed)"
            );
            if !failing.is_empty() {
                message.push_str(&format!("; failing: {}", failing.join(", ")));
            }
            (reason, message)
        };
        let established =
            !results.is_empty() && results.iter().all(|(_, r)| r.is_some_and(|r| r.established));
        let changed = previous.is_none_or(|p| p.healthy != healthy);
        LeafHealth {
            healthy,
            established: established || ready == 0,
            reason,
            message,
            consecutive_successes: 0,
            consecutive_failures: 0,
            last_probe_time: results
                .iter()
                .filter_map(|(_, r)| r.and_then(|r| r.last_probe_time))
                .max(),
            last_transition_time: if changed {
                Some(now)
            } else {
                previous.and_then(|p| p.last_transition_time)
            },
            latency: None,
            endpoints: Some(EndpointTally { ready, healthy: passing }),
        }
    }
}
