//! Standalone source: FailoverRecord and HealthCheck manifests from files, watched
//! for edits. A reload reads only files whose bytes changed and hands the model only
//! the objects whose documents changed. A file that fails to parse, or whose edit
//! would reject records that were valid before, is reported and its last good
//! version keeps being served; a file that cannot be read is reported and keeps its
//! objects. Only a file that is really gone, or really holds fewer objects, removes
//! objects.
//!
//! Reading and parsing ([`Manifests::read`], documents in [`parse`]) happen off the
//! sink; [`Manifests::commit`] hands it one batch per changed file, and costs what
//! changed. [`watch`] reads again on file events, SIGHUP and a periodic rescan.

mod delegations;
mod disk;
mod parse;
pub mod watch;

pub use disk::{ContentDigest, Stamp};
use disk::{list_dir, read_limited};

pub use parse::{
    MAX_DOCUMENTS, MAX_YAML_ALIASES, MAX_YAML_DEPTH, MAX_YAML_REPLAYED, ManifestError, Object,
    document_errors, document_numbers, parse_documents, parse_file,
};

use std::collections::{BTreeMap, BTreeSet};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{Change, FxIndexMap, Kind, ObjectRef};
use crate::sink::{Admission, BatchResult, SinkError, SinkHandle};
use crate::state::State;
use crate::view::SourceError;
use delegations::FileDelegations;
use parse::parse_changed_documents;

use crate::model::delegation::Delegation;

/// Where committed manifests go: the sink in the server, a [`State`] in tests.
pub trait Target {
    /// Applies one file's changes as one batch.
    fn apply(
        &mut self,
        changes: Vec<Change>,
        admission: Admission,
    ) -> impl Future<Output = Result<BatchResult, SinkError>> + Send;
    /// A NameDelegation as the files hold it now (None: gone).
    fn delegation(
        &mut self,
        name: String,
        delegation: Option<Delegation>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// What could not be read; the manifests have been read once.
    fn loaded(
        &mut self,
        errors: Vec<SourceError>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

impl Target for SinkHandle {
    async fn apply(
        &mut self,
        changes: Vec<Change>,
        admission: Admission,
    ) -> Result<BatchResult, SinkError> {
        SinkHandle::apply(self, changes, admission).await
    }

    async fn delegation(
        &mut self,
        name: String,
        delegation: Option<Delegation>,
    ) -> Result<(), SinkError> {
        self.send(crate::sink::Update::Delegation { name, delegation }).await
    }

    async fn loaded(&mut self, errors: Vec<SourceError>) -> Result<(), SinkError> {
        self.send(crate::sink::Update::SourceState { errors: Some(errors), complete: true }).await
    }
}

impl Target for State {
    async fn apply(
        &mut self,
        changes: Vec<Change>,
        admission: Admission,
    ) -> Result<BatchResult, SinkError> {
        Ok(crate::sink::apply_changes(self, changes, admission))
    }

    async fn delegation(
        &mut self,
        name: String,
        delegation: Option<Delegation>,
    ) -> Result<(), SinkError> {
        self.set_delegation(&name, delegation);
        Ok(())
    }

    async fn loaded(&mut self, errors: Vec<SourceError>) -> Result<(), SinkError> {
        self.set_source_errors(errors);
        self.mark_loaded();
        Ok(())
    }
}

/// A file that lost objects (or vanished) is applied only once it has stayed so for
/// this long: a writer that truncates and rewrites in place, or deletes and recreates,
/// must not make names vanish meanwhile. Edits that remove nothing apply at once.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// Manifests larger than this are refused (a link to `/dev/zero` must not eat memory).
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// Objects are identified by kind, namespace and name across all files.
type ObjectKey = (Kind, ObjectRef);

/// An object ever seen, by its place in [`Manifests::known`]: places never change,
/// since nothing is forgotten there, and the place is also the object's age.
pub(crate) type KnownId = u32;

/// What a file holds now, from [`Manifests::diff`].
struct FileObjects {
    changes: Vec<Change>,
    /// Its objects, in file order.
    now: Vec<KnownId>,
    /// The hash of each object's document.
    digests: Vec<(KnownId, u64)>,
}

/// Where and how a known object is served.
struct Known {
    served: Option<Served>,
}

struct Served {
    file: Arc<Path>,
    /// Hash of its document, to tell an edited object from an untouched one.
    digest: u64,
}

#[derive(Default)]
struct FileState {
    /// Size, modification time and inode when last read: a file whose stamp did not
    /// change is not read again, so a reload costs the files that changed.
    stamp: Option<Stamp>,
    /// Digest of the last attempt's content, to skip files that did not change
    /// without keeping every file in memory.
    seen: Option<ContentDigest>,
    /// The objects served from this file (None until a version was accepted).
    objects: Option<Vec<KnownId>>,
    error: Option<String>,
}

/// What [`Manifests::read`] found of one file.
pub(crate) enum FileChange {
    Gone,
    /// Kept with its objects: a read error is not a removal.
    Unreadable(String),
    Parsed {
        stamp: Stamp,
        digest: ContentDigest,
        objects: Result<Vec<Parsed>, String>,
        delegations: (Vec<Delegation>, Vec<SourceError>),
    },
    /// Read again (its stamp changed) but with the same bytes.
    Same {
        stamp: Stamp,
    },
}

/// One document of a file that changed.
// Nearly every document of a first load is `New`: boxing would allocate each one.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// New or edited: parsed, with the hash of its text.
    New(Object, u64),
    /// The very text of an object this file serves: not parsed again.
    Same(KnownId, u64),
}

/// What [`Manifests::read`] found, to be committed under the state lock.
pub struct Pending {
    files: Vec<(PathBuf, FileChange)>,
    scan_errors: Vec<SourceError>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The manifests under the configured paths and what is served from them.
pub struct Manifests {
    roots: Vec<PathBuf>,
    files: BTreeMap<PathBuf, FileState>,
    /// Every object ever seen (each in one entry, however many files name it).
    known: FxIndexMap<ObjectKey, Known>,
    scan_errors: Vec<SourceError>,
    /// Files seen losing objects (or gone), and since when.
    unsettled: FxHashMap<PathBuf, std::time::Instant>,
    /// The NameDelegations the files hold.
    delegations: FileDelegations,
}

impl Manifests {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots,
            files: BTreeMap::new(),
            known: FxIndexMap::default(),
            scan_errors: Vec::new(),
            unsettled: FxHashMap::default(),
            delegations: FileDelegations::default(),
        }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// True while a removal waits for [`SETTLE`]: read again after that long.
    pub fn settling(&self) -> bool {
        !self.unsettled.is_empty()
    }

    /// Whether a removal from `path` has waited long enough (starting the wait if not).
    fn settled(&mut self, path: &Path) -> bool {
        let now = std::time::Instant::now();
        let since = *self.unsettled.entry(path.to_path_buf()).or_insert(now);
        if now.duration_since(since) >= SETTLE {
            self.unsettled.remove(path);
            true
        } else {
            false
        }
    }

    /// The `.yaml`/`.yml` files under the roots (a root may also be one file), and the
    /// directories that could not be listed: what they held is not known to be gone.
    fn scan(&self) -> (BTreeSet<PathBuf>, Vec<SourceError>, Vec<PathBuf>) {
        let mut found = BTreeSet::new();
        let mut errors = Vec::new();
        let mut unlisted = Vec::new();
        for root in &self.roots {
            match std::fs::metadata(root) {
                Ok(meta) if meta.is_dir() => list_dir(root, &mut found, &mut errors, &mut unlisted),
                Ok(_) => {
                    found.insert(root.clone());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    errors.push(SourceError {
                        file: root.display().to_string(),
                        message: "no such file or directory".into(),
                    });
                }
                Err(e) => {
                    errors.push(SourceError {
                        file: root.display().to_string(),
                        message: e.to_string(),
                    });
                    unlisted.push(root.clone());
                }
            }
        }
        (found, errors, unlisted)
    }

    /// Reads and parses every file whose bytes changed (no lock needed).
    pub fn read(&self) -> Pending {
        let (paths, scan_errors, unlisted) = self.scan();
        let mut files = Vec::new();
        for path in self.files.keys().filter(|p| !paths.contains(*p)) {
            if let Some(dir) = unlisted.iter().find(|d| path.starts_with(d)) {
                let message = format!("cannot list {}; keeping what this file held", dir.display());
                files.push((path.clone(), FileChange::Unreadable(message)));
            } else {
                files.push((path.clone(), FileChange::Gone));
            }
        }
        for path in paths {
            let known = self.files.get(&path);
            if let (Some(file), Ok(meta)) = (known, std::fs::metadata(&path))
                && file.stamp == Some(Stamp::of(&meta))
            {
                continue;
            }
            let (stamp, content) = match read_limited(&path) {
                Ok(c) => c,
                Err(e) => {
                    files.push((path.clone(), FileChange::Unreadable(e.to_string())));
                    continue;
                }
            };
            let digest = ContentDigest::of(&content);
            // Unchanged bytes: served as they are, or rejected for the same reason again.
            if known.is_some_and(|s| s.seen == Some(digest)) {
                files.push((path, FileChange::Same { stamp }));
                continue;
            }
            let shown = path.display().to_string();
            // An edit to one object of a large file parses that object only.
            let served = self.served_digests(&path);
            let objects =
                parse_changed_documents(&shown, &content, |digest| served.get(&digest).cloned())
                    .map_err(|e| e.to_string());
            let delegations = std::str::from_utf8(&content)
                .map(|text| delegations::read(&shown, text))
                .unwrap_or_default();
            files.push((path, FileChange::Parsed { stamp, digest, objects, delegations }));
        }
        Pending { files, scan_errors }
    }

    /// The objects served from `path`, by the hash of their document's text.
    fn served_digests(&self, path: &Path) -> FxHashMap<u64, KnownId> {
        let Some(ids) = self.files.get(path).and_then(|f| f.objects.as_ref()) else {
            return FxHashMap::default();
        };
        ids.iter()
            .filter_map(|&id| {
                let served =
                    self.known[id as usize].served.as_ref().filter(|s| *s.file == *path)?;
                Some((served.digest, id))
            })
            .collect()
    }

    fn key_of(&self, parsed: &Parsed) -> ObjectKey {
        match parsed {
            Parsed::New(o, _) => (o.kind(), o.id().clone()),
            Parsed::Same(id, _) => self.key(*id).clone(),
        }
    }

    /// The removal of a known object.
    fn removal(&self, id: KnownId) -> Change {
        let (kind, id) = self.key(id);
        Change::removal(*kind, id.clone())
    }

    fn key(&self, id: KnownId) -> &ObjectKey {
        self.known.get_index(id as usize).expect("known objects are never forgotten").0
    }

    fn known_mut(&mut self, id: KnownId) -> &mut Known {
        &mut self.known[id as usize]
    }

    /// Applies what [`Manifests::read`] found, one batch per file. Returns true when
    /// what is served changed.
    pub async fn commit(
        &mut self,
        pending: Pending,
        target: &mut impl Target,
    ) -> Result<bool, SinkError> {
        self.scan_errors = pending.scan_errors;
        let mut changed = false;
        for (path, file_change) in pending.files {
            changed |= match file_change {
                FileChange::Gone if !self.settled(&path) => false,
                FileChange::Gone => self.remove_file(&path, target).await?,
                FileChange::Unreadable(message) => {
                    let shown = path.display().to_string();
                    tracing::warn!(file = %shown, error = %message, "manifest cannot be read; keeping its objects");
                    let file = self.files.entry(path).or_default();
                    file.error =
                        Some(format!("cannot be read: {message}; keeping its last objects"));
                    file.seen = None;
                    file.stamp = None;
                    false
                }
                FileChange::Same { stamp } => {
                    // Back as it was (deleted and recreated): nothing waits any more.
                    self.unsettled.remove(&path);
                    if let Some(file) = self.files.get_mut(&path) {
                        file.stamp = Some(stamp);
                    }
                    false
                }
                FileChange::Parsed { stamp, digest, objects, delegations } => {
                    let changed =
                        self.apply_file(&path, digest, objects, delegations, target).await?;
                    // A deferred file is read again, whatever its stamp.
                    if !self.unsettled.contains_key(&path)
                        && let Some(file) = self.files.get_mut(&path)
                    {
                        file.stamp = Some(stamp);
                    }
                    changed
                }
            };
        }
        target.loaded(self.errors()).await?;
        Ok(changed)
    }

    async fn remove_file(
        &mut self,
        path: &Path,
        target: &mut impl Target,
    ) -> Result<bool, SinkError> {
        tracing::info!(file = %path.display(), "manifest removed");
        self.delegations.remove_file(path);
        self.send_delegations(target).await?;
        let Some(file) = self.files.remove(path) else { return Ok(false) };
        let ids = file.objects.unwrap_or_default();
        for &id in &ids {
            self.known_mut(id).served = None;
        }
        let removals = ids.iter().map(|&id| self.removal(id)).collect();
        let result = target.apply(removals, Admission::All).await?;
        Ok(result == BatchResult::Applied { changed: true })
    }

    async fn apply_file(
        &mut self,
        path: &Path,
        digest: ContentDigest,
        parsed: Result<Vec<Parsed>, String>,
        delegations: (Vec<Delegation>, Vec<SourceError>),
        target: &mut impl Target,
    ) -> Result<bool, SinkError> {
        let shown = path.display().to_string();
        let file = self.files.entry(path.to_path_buf()).or_default();
        file.seen = Some(digest);
        let parsed = parsed.and_then(|objects| self.check_duplicates(path, objects));
        let objects = match parsed {
            Ok(objects) => objects,
            Err(message) => {
                tracing::warn!(file = %shown, error = %message, "manifest rejected; keeping its last good version");
                self.files.get_mut(path).expect("inserted above").error = Some(message);
                return Ok(false);
            }
        };
        // Who may serve which names goes first: a record never serves undelegated.
        self.delegations.set_file(path, delegations);
        self.send_delegations(target).await?;
        let shared_path: Arc<Path> = Arc::from(path);
        let previous: Vec<KnownId> = self.files[path].objects.clone().unwrap_or_default();
        let had_good = self.files[path].objects.is_some();
        let FileObjects { mut changes, mut now, digests } =
            self.diff(path, objects, previous.len());
        // Only a file that served objects before can have lost some.
        let present: FxHashSet<KnownId> =
            if previous.is_empty() { FxHashSet::default() } else { now.iter().copied().collect() };
        let gone: Vec<KnownId> =
            previous.iter().filter(|id| !present.contains(id)).copied().collect();
        if gone.is_empty() {
            self.unsettled.remove(path);
        } else if !self.settled(path) {
            tracing::debug!(file = %shown, removed = gone.len(), "manifest lost objects; waiting for it to settle");
            self.files.get_mut(path).expect("inserted above").seen = None;
            return Ok(false);
        }
        changes.extend(gone.iter().map(|&id| self.removal(id)));
        // Decided before anything is served: a query never sees an edit that is refused.
        let admission = if had_good { Admission::RefuseNewErrors } else { Admission::All };
        let changed = match target.apply(changes, admission).await? {
            BatchResult::Applied { changed } => changed,
            BatchResult::Refused { introduced } => {
                let message = format!(
                    "edit rejected, keeping the previous version: {}",
                    introduced.join("; ")
                );
                tracing::warn!(file = %shown, problems = introduced.len(), "{message}");
                self.files.get_mut(path).expect("inserted above").error = Some(message);
                return Ok(false);
            }
        };
        for &id in &gone {
            self.known_mut(id).served = None;
        }
        for (id, digest) in digests {
            self.known_mut(id).served = Some(Served { file: shared_path.clone(), digest });
        }
        tracing::info!(file = %shown, objects = now.len(), changed, "manifest loaded");
        now.shrink_to_fit();
        let file = self.files.get_mut(path).expect("inserted above");
        file.objects = Some(now);
        file.error = None;
        Ok(changed)
    }

    /// The objects a file holds now (each known by its place, new ones given one) and
    /// the changes for those that are new or whose document changed.
    fn diff(&mut self, path: &Path, objects: Vec<Parsed>, previous: usize) -> FileObjects {
        let mut changes = Vec::with_capacity(objects.len());
        let mut now: Vec<KnownId> = Vec::with_capacity(objects.len());
        let mut digests: Vec<(KnownId, u64)> = Vec::with_capacity(objects.len());
        // A first load of a large file grows the table once.
        self.known.reserve_exact(objects.len().saturating_sub(previous));
        for parsed in objects {
            let (mut object, object_digest) = match parsed {
                Parsed::New(object, digest) => (object, digest),
                Parsed::Same(id, digest) => {
                    digests.push((id, digest));
                    now.push(id);
                    continue;
                }
            };
            let (id, unchanged) = match self.known.entry((object.kind(), object.id().clone())) {
                indexmap::map::Entry::Occupied(known) => {
                    let served = known.get().served.as_ref();
                    let unchanged =
                        served.is_some_and(|s| s.digest == object_digest && *s.file == *path);
                    (known.index(), unchanged)
                }
                indexmap::map::Entry::Vacant(new) => {
                    let id = new.index();
                    new.insert(Known { served: None });
                    (id, false)
                }
            };
            let id = KnownId::try_from(id).expect("fewer than 2^32 objects");
            // The age of an object is the order in which it was first seen.
            object.set_seq(u64::from(id) + 1);
            if !unchanged {
                changes.push(object.into_change());
            }
            digests.push((id, object_digest));
            now.push(id);
        }
        FileObjects { changes, now, digests }
    }

    /// An object may be defined in one file only.
    fn check_duplicates(&self, path: &Path, objects: Vec<Parsed>) -> Result<Vec<Parsed>, String> {
        let mut mine: FxHashSet<ObjectKey> =
            FxHashSet::with_capacity_and_hasher(objects.len(), Default::default());
        for parsed in &objects {
            let key = self.key_of(parsed);
            let elsewhere = self
                .known
                .get(&key)
                .and_then(|k| k.served.as_ref())
                .map(|s| s.file.clone())
                .filter(|f| **f != *path);
            // The key is cloned again only for the message.
            if elsewhere.is_none() && mine.insert(key) {
                continue;
            }
            let key = self.key_of(parsed);
            let place = elsewhere.map_or("this file".to_string(), |p| p.display().to_string());
            let error = parse::ManifestError::Parse {
                path: path.display().to_string(),
                doc: 0,
                message: format!("{} {} is already defined in {place}", key.0.name(), key.1),
            };
            return Err(error.to_string());
        }
        Ok(objects)
    }

    /// Files whose current content is not served, and why.
    /// Brings the target's NameDelegations to what the files hold.
    async fn send_delegations(&mut self, target: &mut impl Target) -> Result<(), SinkError> {
        for (name, delegation) in self.delegations.changes() {
            target.delegation(name, delegation).await?;
        }
        Ok(())
    }

    pub fn errors(&self) -> Vec<SourceError> {
        let mut errors = self.scan_errors.clone();
        errors.extend(self.delegations.errors());
        errors.extend(self.files.iter().filter_map(|(p, s)| {
            s.error
                .as_ref()
                .map(|e| SourceError { file: p.display().to_string(), message: e.clone() })
        }));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Fqdn, RecordData};
    use crate::snapshot::ZoneSettings;

    fn record(name: &str, ip: &str) -> String {
        format!(
            "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}}}\nspec: {{name: {name}.example.test, type: A, values: [\"{ip}\"]}}\n"
        )
    }

    fn counts(pending: &Pending) -> (usize, usize) {
        let mut out = (0, 0);
        for (_, change) in &pending.files {
            if let FileChange::Parsed { objects: Ok(objects), .. } = change {
                for p in objects {
                    match p {
                        Parsed::New(..) => out.0 += 1,
                        Parsed::Same(..) => out.1 += 1,
                    }
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn an_edit_parses_only_the_documents_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("all.yaml");
        let zones = vec![Fqdn::parse("example.test").unwrap()];
        let mut state =
            State::new(ZoneSettings { zones, nameservers: vec![], soa_ttl: 300, negative_ttl: 60 });
        let mut manifests = Manifests::new(vec![dir.path().to_path_buf()]);
        let all = |ips: [&str; 3]| {
            ["a", "b", "c"].iter().zip(ips).map(|(n, ip)| record(n, ip)).collect::<String>()
        };
        std::fs::write(&file, all(["192.0.2.1", "192.0.2.2", "192.0.2.3"])).unwrap();
        let first = manifests.read();
        assert_eq!(counts(&first), (3, 0));
        manifests.commit(first, &mut state).await.unwrap();

        std::fs::write(&file, all(["192.0.2.1", "192.0.2.9", "192.0.2.3"])).unwrap();
        let edit = manifests.read();
        assert_eq!(counts(&edit), (1, 2), "only b is parsed again");
        manifests.commit(edit, &mut state).await.unwrap();
        let b = state.model().accepted_record(&ObjectRef::new("default", "b")).unwrap();
        let RecordData::Values(rrs) = &b.data else { panic!("{:?}", b.data) };
        assert_eq!(rrs[0].rdata().to_string(), "192.0.2.9");
        assert_eq!(state.model().record_ids().count(), 3);

        // A document dropped: the others stay untouched, and it goes (after settling).
        std::fs::write(&file, [record("a", "192.0.2.1"), record("c", "192.0.2.3")].concat())
            .unwrap();
        assert_eq!(counts(&manifests.read()), (0, 2));
    }
}
