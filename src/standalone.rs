//! Standalone source: FailoverRecord and HealthCheck manifests from files, watched
//! for edits. A file that fails to parse, or whose edit would reject records that
//! were valid before, is reported and its last good version keeps being served.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{self, Fqdn, Input, ObjectRef, Problem, Severity};
use crate::resources::{FailoverRecord, FailoverRecordSpec, HealthCheck, HealthCheckSpec};
use crate::state::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: document {doc}: {message}")]
    Parse { path: String, doc: usize, message: String },
}

#[derive(Clone, Debug)]
pub enum Object {
    HealthCheck(Input<HealthCheckSpec>),
    FailoverRecord(Input<FailoverRecordSpec>),
}

impl Object {
    fn key(&self) -> (&'static str, &ObjectRef) {
        match self {
            Object::HealthCheck(i) => ("HealthCheck", &i.id),
            Object::FailoverRecord(i) => ("FailoverRecord", &i.id),
        }
    }
}

/// Length and two independent 64-bit hashes of a file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ContentDigest(usize, u64, u64);

impl ContentDigest {
    fn of(content: &[u8]) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let hash = |key: u64| {
            let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            h.write_u64(key);
            h.write(content);
            h.finish()
        };
        Self(content.len(), hash(0x9e37_79b9_7f4a_7c15), hash(0xc2b2_ae3d_27d4_eb4f))
    }
}

struct FileState {
    /// Digest of the last attempt's content, to skip files that did not change
    /// without keeping every file in memory.
    seen: Option<ContentDigest>,
    /// The objects currently served from this file.
    good: Option<Vec<Object>>,
    error: Option<String>,
}

/// The manifests under the configured paths and what is served from them.
pub struct Manifests {
    roots: Vec<PathBuf>,
    zones: Vec<Fqdn>,
    files: BTreeMap<PathBuf, FileState>,
    /// Age of every object ever seen, so conflicts favour what was there first.
    seqs: HashMap<(&'static str, ObjectRef), u64>,
    next_seq: u64,
}

impl Manifests {
    pub fn new(roots: Vec<PathBuf>, zones: Vec<Fqdn>) -> Self {
        Self { roots, zones, files: BTreeMap::new(), seqs: HashMap::new(), next_seq: 0 }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The `.yaml`/`.yml` files under the roots (a root may also be one file).
    fn scan(&self) -> (BTreeSet<PathBuf>, Vec<SourceError>) {
        let mut found = BTreeSet::new();
        let mut errors = Vec::new();
        for root in &self.roots {
            if root.is_dir() {
                walk(root, &mut found, &mut errors);
            } else if root.exists() {
                found.insert(root.clone());
            } else {
                errors.push(SourceError { file: root.display().to_string(), message: "no such file or directory".into() });
            }
        }
        (found, errors)
    }

    /// Re-reads every file that changed. Returns true when what is served changed.
    pub fn reload(&mut self) -> bool {
        let (paths, _) = self.scan();
        let mut changed = false;
        let gone: Vec<PathBuf> = self.files.keys().filter(|p| !paths.contains(*p)).cloned().collect();
        for path in gone {
            tracing::info!(file = %path.display(), "manifest removed");
            self.files.remove(&path);
            changed = true;
        }
        for path in paths {
            let content = match std::fs::read(&path) {
                Ok(c) => c,
                Err(e) => {
                    let state = self.files.entry(path.clone()).or_insert(FileState { seen: None, good: None, error: None });
                    state.error = Some(ManifestError::Read { path: path.display().to_string(), source: e }.to_string());
                    continue;
                }
            };
            if self.files.get(&path).is_some_and(|s| s.seen == Some(ContentDigest::of(&content))) {
                continue;
            }
            changed |= self.apply(&path, content);
        }
        changed
    }

    fn apply(&mut self, path: &Path, content: Vec<u8>) -> bool {
        let shown = path.display().to_string();
        let parsed = parse_file(&shown, &content).and_then(|objects| self.check_duplicates(path, objects));
        let state = self.files.entry(path.to_path_buf()).or_insert(FileState { seen: None, good: None, error: None });
        state.seen = Some(ContentDigest::of(&content));
        let objects = match parsed {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!(file = %shown, error = %e, "manifest rejected; keeping its last good version");
                state.error = Some(e.to_string());
                return false;
            }
        };
        let mut objects: Vec<Object> = objects.into_iter().map(|o| self.with_seq(o)).collect();
        objects.shrink_to_fit();
        let had_good = self.files[path].good.is_some();
        let before = self.errors_of_model(None);
        let after = self.errors_of_model(Some((path, &objects)));
        let introduced: Vec<&Problem> = after.iter().filter(|p| !before.contains(p)).collect();
        let state = self.files.get_mut(path).expect("inserted above");
        if had_good && !introduced.is_empty() {
            let list: Vec<String> = introduced.iter().map(|p| format!("{} {}: {}", p.object, p.field, p.message)).collect();
            let message = format!("edit rejected, keeping the previous version: {}", list.join("; "));
            tracing::warn!(file = %shown, problems = introduced.len(), "{message}");
            state.error = Some(message);
            return false;
        }
        tracing::info!(file = %shown, objects = objects.len(), "manifest loaded");
        state.good = Some(objects);
        state.error = None;
        true
    }

    fn with_seq(&mut self, mut object: Object) -> Object {
        let (kind, id) = object.key();
        let key = (kind, id.clone());
        let next = &mut self.next_seq;
        let seq = *self.seqs.entry(key).or_insert_with(|| {
            *next += 1;
            *next
        });
        match &mut object {
            Object::HealthCheck(i) => i.seq = seq,
            Object::FailoverRecord(i) => i.seq = seq,
        }
        object
    }

    /// Objects are identified by kind, namespace and name across all files.
    fn check_duplicates(&self, path: &Path, objects: Vec<Object>) -> Result<Vec<Object>, ManifestError> {
        let mut mine = BTreeSet::new();
        for o in &objects {
            let (kind, id) = o.key();
            let elsewhere = self.files.iter().filter(|(p, _)| *p != path).find(|(_, s)| {
                s.good.iter().flatten().any(|other| other.key() == (kind, id))
            });
            if !mine.insert((kind, id.clone())) || elsewhere.is_some() {
                let place = elsewhere.map_or("this file".to_string(), |(p, _)| p.display().to_string());
                return Err(ManifestError::Parse {
                    path: path.display().to_string(),
                    doc: 0,
                    message: format!("{kind} {id} is already defined in {place}"),
                });
            }
        }
        Ok(objects)
    }

    fn errors_of_model(&self, replace: Option<(&Path, &Vec<Object>)>) -> BTreeSet<Problem> {
        let (checks, records) = self.inputs_with(replace);
        let model = model::validate(&self.zones, &checks, &records);
        model.problems.into_iter().filter(|p| p.severity == Severity::Error).collect()
    }

    fn inputs_with(
        &self,
        replace: Option<(&Path, &Vec<Object>)>,
    ) -> (Vec<Input<HealthCheckSpec>>, Vec<Input<FailoverRecordSpec>>) {
        let mut checks = Vec::new();
        let mut records = Vec::new();
        let replaced = replace.map(|(p, _)| p);
        let objects = self
            .files
            .iter()
            .filter(|(p, _)| Some(p.as_path()) != replaced)
            .flat_map(|(_, s)| s.good.iter().flatten())
            .chain(replace.into_iter().flat_map(|(_, o)| o.iter()));
        for o in objects {
            match o {
                Object::HealthCheck(i) => checks.push(i.clone()),
                Object::FailoverRecord(i) => records.push(i.clone()),
            }
        }
        (checks, records)
    }

    /// What is served now: every file's last good objects.
    pub fn inputs(&self) -> (Vec<Input<HealthCheckSpec>>, Vec<Input<FailoverRecordSpec>>) {
        self.inputs_with(None)
    }

    /// Files whose current content is not served, and why.
    pub fn errors(&self) -> Vec<SourceError> {
        let (_, mut errors) = self.scan();
        errors.extend(self.files.iter().filter_map(|(p, s)| {
            s.error.as_ref().map(|e| SourceError { file: p.display().to_string(), message: e.clone() })
        }));
        errors
    }
}

fn walk(dir: &Path, found: &mut BTreeSet<PathBuf>, errors: &mut Vec<SourceError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(SourceError { file: dir.display().to_string(), message: e.to_string() });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue; // editor swap files and the like
        }
        if path.is_dir() {
            walk(&path, found, errors);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            found.insert(path);
        }
    }
}

/// Parses every document of a manifest file into objects.
pub fn parse_file(path: &str, content: &[u8]) -> Result<Vec<Object>, ManifestError> {
    let text = std::str::from_utf8(content)
        .map_err(|e| ManifestError::Parse { path: path.into(), doc: 1, message: format!("not UTF-8: {e}") })?;
    let mut objects = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = i + 1;
        let err = |message: String| ManifestError::Parse { path: path.into(), doc, message };
        let value = serde_yaml::Value::deserialize(document).map_err(|e| err(e.to_string()))?;
        if value.is_null() {
            continue; // an empty document between `---` separators
        }
        // Read in place rather than through a typed copy of the whole document.
        if !value.is_mapping() {
            return Err(err("expected a mapping (a Kubernetes object with apiVersion and kind)".into()));
        }
        let type_field = |name: &str| match value.get(name) {
            None | Some(serde_yaml::Value::Null) => Ok(String::new()),
            Some(serde_yaml::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(err(format!("{name}: expected a string"))),
        };
        let kind = type_field("kind")?;
        let api_version = type_field("apiVersion")?;
        let expected = format!("{}/{}", crate::resources::GROUP, crate::resources::VERSION);
        if !matches!(kind.as_str(), "HealthCheck" | "FailoverRecord") {
            tracing::debug!(file = path, doc, kind, "ignoring a document of another kind");
            continue;
        }
        if api_version != expected {
            return Err(err(format!("apiVersion: {api_version:?} is not {expected:?}")));
        }
        let name_of = |v: &serde_yaml::Value| {
            v.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()).map(str::to_string)
        };
        let display = format!("{kind} {}", name_of(&value).unwrap_or_else(|| "<unnamed>".into()));
        let typed_err = |e: serde_path_to_error::Error<serde_yaml::Error>| {
            let field = e.path().to_string();
            err(format!("{display}: {field}: {}", e.inner()))
        };
        let object = match kind.as_str() {
            "HealthCheck" => {
                let hc: HealthCheck = serde_path_to_error::deserialize(value).map_err(typed_err)?;
                let id = object_ref(&hc.metadata).map_err(&err)?;
                Object::HealthCheck(Input { id, seq: 0, file: Some(path.into()), generation: None, spec: hc.spec })
            }
            _ => {
                let rec: FailoverRecord = serde_path_to_error::deserialize(value).map_err(typed_err)?;
                let id = object_ref(&rec.metadata).map_err(&err)?;
                Object::FailoverRecord(Input { id, seq: 0, file: Some(path.into()), generation: None, spec: rec.spec })
            }
        };
        objects.push(object);
    }
    Ok(objects)
}

fn object_ref(meta: &kube::core::ObjectMeta) -> Result<ObjectRef, String> {
    let name = meta.name.clone().filter(|n| !n.is_empty()).ok_or("metadata.name: required")?;
    Ok(ObjectRef::new(meta.namespace.clone().unwrap_or_else(|| "default".into()), name))
}
