//! The served state: the latest inputs from a source, the health map, and the
//! snapshot they produce. Every change rebuilds the snapshot at once and swaps it in.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::health::{HealthMap, LeafHealth};
use crate::model::{self, Fqdn, Input, Model, ObjectRef};
use crate::resources::{FailoverRecordSpec, HealthCheckSpec};
use crate::snapshot::{Snapshot, ZoneSettings};

/// A source-level problem that kept a whole file (or object) out, e.g. a YAML error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceError {
    pub file: String,
    pub message: String,
}

pub struct State {
    settings: ZoneSettings,
    model: Arc<Model>,
    health: HealthMap,
    serial: u32,
    pub source_errors: Vec<SourceError>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// False until a source delivered its first configuration.
    pub loaded: bool,
}

impl State {
    pub fn new(settings: ZoneSettings) -> Self {
        let model = Arc::new(model::validate(&settings.zones, &[], &[]));
        let serial = next_serial(0);
        let snapshot = Snapshot::build(&settings, model.clone(), HealthMap::default().resolve(&model), serial);
        Self {
            settings,
            model,
            health: HealthMap::default(),
            serial,
            source_errors: Vec::new(),
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            loaded: false,
        }
    }

    pub fn zones(&self) -> &[Fqdn] {
        &self.settings.zones
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Replaces the configuration with a source's current objects.
    pub fn set_inputs(
        &mut self,
        checks: &[Input<HealthCheckSpec>],
        records: &[Input<FailoverRecordSpec>],
        source_errors: Vec<SourceError>,
    ) {
        let model = Arc::new(model::validate(&self.settings.zones, checks, records));
        for problem in &model.problems {
            tracing::warn!(
                kind = ?problem.kind,
                object = %problem.object,
                file = problem.file.as_deref().unwrap_or(""),
                field = %problem.field,
                severity = ?problem.severity,
                "{}", problem.message
            );
        }
        self.health.retain_checks(&model);
        self.model = model;
        self.source_errors = source_errors;
        self.loaded = true;
        self.rebuild();
    }

    /// Health checks changed state (transitions reported by the prober); one
    /// rebuild for the whole batch.
    pub fn set_health(&mut self, updates: impl IntoIterator<Item = (ObjectRef, LeafHealth)>) {
        for (id, health) in updates {
            self.health.set(id, health);
        }
        self.rebuild();
    }

    fn rebuild(&mut self) {
        let verdicts = self.health.resolve(&self.model);
        let current = self.snapshot.load();
        if Arc::ptr_eq(&current.model, &self.model) && current.verdicts == verdicts {
            return; // nothing that answers depend on has changed
        }
        self.serial = next_serial(self.serial);
        let started = std::time::Instant::now();
        let snapshot = Snapshot::build(&self.settings, self.model.clone(), verdicts, self.serial);
        tracing::info!(
            serial = self.serial,
            record_sets = self.model.sets.values().map(Vec::len).sum::<usize>(),
            names = snapshot.name_count(),
            build_ms = started.elapsed().as_secs_f64() * 1e3,
            "serving new snapshot"
        );
        self.snapshot.store(Arc::new(snapshot));
    }
}

/// SOA serials follow the clock (seconds) but always increase.
fn next_serial(previous: u32) -> u32 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as u32;
    now.max(previous.wrapping_add(1))
}
