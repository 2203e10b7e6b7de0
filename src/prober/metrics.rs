//! Prober metrics (prefix `failoverdns_`). The per-check
//! `failoverdns_health_check_healthy` is a collector over the check table
//! (`scheduler::HealthyGauges`): no label set is kept per check.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::model::Probe;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub r#type: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub healthy: &'static str,
}

/// The probe type label of a check.
pub fn probe_type(probe: &Probe) -> &'static str {
    match probe {
        Probe::Http { tls: false, .. } => "http",
        Probe::Http { tls: true, .. } => "https",
        Probe::Tcp { .. } => "tcp",
        Probe::Grpc { .. } => "grpc",
        Probe::Calculated { .. } => "calculated",
        Probe::Endpoints { .. } => "endpoints",
        Probe::Service { .. } => "service",
    }
}

type HistogramFamily = Family<TypeLabels, Histogram, fn() -> Histogram>;

#[derive(Clone)]
pub struct Metrics {
    pub duration: HistogramFamily,
    pub results: Family<ResultLabels, Counter>,
    pub transitions: Family<TransitionLabels, Counter>,
    /// Out-of-schedule probes triggered by a lost watch connection.
    pub early_probes: Counter,
    pub in_flight: Gauge,
    pub watch_connections: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            results: Family::default(),
            transitions: Family::default(),
            early_probes: Counter::default(),
            in_flight: Gauge::default(),
            watch_connections: Gauge::default(),
        };
        registry.register_with_unit(
            "probe_duration",
            "Duration of health check probes, by probe type",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "probe_results",
            "Health check probe results, by probe type and reason",
            metrics.results.clone(),
        );
        registry.register(
            "health_check_transitions",
            "Health check state changes, by new state",
            metrics.transitions.clone(),
        );
        registry.register(
            "probe_early",
            "Probes run out of schedule because a watched connection to the target was lost",
            metrics.early_probes.clone(),
        );
        registry.register("probes_in_flight", "Probes running now", metrics.in_flight.clone());
        registry.register(
            "probe_watch_connections",
            "Idle connections held open to detect a target going away",
            metrics.watch_connections.clone(),
        );
        metrics
    }
}
