//! The checker quorum (cluster mode): every replica is a health checker, and a check's
//! verdict is decided from the reports of all live checkers, as Route 53 decides from
//! its checkers in many regions.
//!
//! [`publish`] writes this replica's own verdicts (which the sink tells it of) to its
//! `CheckerReport`; [`watch`] reads the other replicas' reports and tells the sink
//! what they see, and when a report expires. The rule itself is pure, in
//! [`crate::health::Checkers`]; [`report`] is the pure encoding.

pub mod publish;
pub mod report;
pub mod watch;

pub use crate::sink::{CheckerNews, OwnVerdicts};

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::view::View;

/// The label that ties a report to its deployment (the value is the Lease's name).
pub const DEPLOYMENT_LABEL: &str = "failoverdns.io/lease";

#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This replica's identity; its report is named after it.
    pub identity: String,
    /// Where the reports live (the Lease's namespace).
    pub namespace: String,
    /// The Lease's name: replicas of one deployment share it, and read only each
    /// other's reports (label [`DEPLOYMENT_LABEL`]).
    pub lease_name: String,
    /// The namespaces this replica watches (empty: all).
    pub watched: Vec<String>,
    pub interval: Duration,
    pub ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("the sink stopped telling the report writer of this replica's verdicts")]
    SinkGone,
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error("the watch of the checker reports ended")]
    WatchEnded,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `full` (the verdicts changed) or `renewal`.
    pub kind: &'static str,
    pub result: &'static str,
}

/// The report writer's metrics; the live checkers and disagreements are read from the
/// published view at each scrape.
#[derive(Clone, Debug)]
pub struct QuorumMetrics {
    writes: Family<WriteLabels, Counter>,
    write_seconds: Histogram,
}

impl QuorumMetrics {
    pub fn register(registry: &mut Registry, view: Arc<ArcSwap<View>>) -> Self {
        let m = Self {
            writes: Family::default(),
            write_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        };
        registry.register(
            "report_writes",
            "Writes of this replica's CheckerReport by kind (full, renewal) and result",
            m.writes.clone(),
        );
        registry.register_with_unit(
            "report_write",
            "Time a CheckerReport write took",
            Unit::Seconds,
            m.write_seconds.clone(),
        );
        registry.register_collector(Box::new(CheckerGauges(view)));
        m
    }

    fn wrote(&self, kind: &'static str, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.writes.get_or_create(&WriteLabels { kind, result }).inc();
        self.write_seconds.observe(took.as_secs_f64());
    }
}

struct CheckerGauges(Arc<ArcSwap<View>>);

impl std::fmt::Debug for CheckerGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckerGauges")
    }
}

impl prometheus_client::collector::Collector for CheckerGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let view = self.0.load();
        let gauges = [
            (
                "checkers_live",
                "Checkers (replicas) with a live report, this one included",
                1 + view.checkers.live.len() as i64,
            ),
            (
                "checks_checkers_disagree",
                "Checks that some live checkers see healthy and others unhealthy",
                view.disagreeing as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        Ok(())
    }
}
