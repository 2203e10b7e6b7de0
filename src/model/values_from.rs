//! Records and checks that read Kubernetes objects (cluster mode): a record's
//! `valuesFrom` is resolved against [`Objects`] when it is validated and again when
//! its object changes; an object's change reaches only the records and Endpoints
//! checks that read it (a slice counts as its Service).

use std::sync::Arc;

use super::index::{Applied, Model};
use super::objects::{ObjectChange, ObjectKind, Objects};
use super::settle::Unsettled;
use super::{ObjectRef, RecordData, RecordSet};

impl Model {
    /// Lets records and checks read Kubernetes objects (cluster mode); set before any
    /// object arrives. Without it such objects are rejected, naming the field.
    pub fn set_cluster_objects(&mut self, on: bool) {
        self.cluster_objects = on;
    }

    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Stores what objects say now and resolves again the records that read them.
    /// Returns what was settled and the Endpoints checks whose Service changed.
    pub fn set_objects(&mut self, changes: Vec<ObjectChange>) -> (Applied, Vec<ObjectRef>) {
        let mut touched = Vec::new();
        for change in changes {
            if let Some(object) = self.objects.put(change) {
                touched.push(object);
            }
        }
        touched.sort();
        touched.dedup();
        let mut checks = Vec::new();
        let mut readers = Vec::new();
        for object in &touched {
            if object.0 == ObjectKind::Service
                && let Some(ids) = self.endpoint_checks.get(&object.1)
            {
                checks.extend(ids.iter().cloned());
            }
            if let Some(ids) = self.object_users.get(object) {
                readers.extend(ids.iter().cloned());
            }
        }
        (self.resolve_again(readers), checks)
    }

    /// Whether the Gateway API is installed; resolves the Gateway readers again.
    pub fn set_gateway_api(&mut self, installed: bool) -> Applied {
        if self.objects.gateway_api == installed {
            return Applied::default();
        }
        self.objects.gateway_api = installed;
        let readers = self
            .object_users
            .iter()
            .filter(|((kind, _), _)| *kind == ObjectKind::Gateway)
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        self.resolve_again(readers)
    }

    /// A record set with its object's data as it is now (others unchanged).
    pub(super) fn resolved(&self, set: RecordSet) -> RecordSet {
        match &set.data {
            RecordData::Object(values) => {
                let now = self.objects.resolve(&set.id, &values.source, set.rtype, set.ttl);
                RecordSet { data: RecordData::Object(Arc::new(now)), ..set }
            }
            _ => set,
        }
    }

    fn resolve_again(&mut self, records: Vec<ObjectRef>) -> Applied {
        let mut unsettled = Unsettled::default();
        for id in records {
            let Some(old) = self.record_entries.get(&id).and_then(|e| e.local.clone()) else {
                continue;
            };
            let new = Arc::new(self.resolved((*old).clone()));
            if *new == *old {
                continue;
            }
            if let Some(entry) = self.record_entries.get_mut(&id) {
                entry.local = Some(new.clone());
            }
            if let Some(candidates) = self.candidates.get_mut(&old.name) {
                for set in candidates.sets.iter_mut().filter(|s| Arc::ptr_eq(s, &old)) {
                    *set = new.clone();
                }
            }
            unsettled.names.extend(self.component(&old.name));
        }
        self.settle(unsettled)
    }
}
