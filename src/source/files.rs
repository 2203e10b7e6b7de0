//! Standalone source: FailoverRecord and HealthCheck manifests from files, watched
//! for edits. A reload reads only files whose bytes changed and hands the model only
//! the objects whose documents changed. A file that fails to parse, or whose edit
//! would reject records that were valid before, is reported and its last good
//! version keeps being served; a file that cannot be read is reported and keeps its
//! objects. Only a file that is really gone, or really holds fewer objects, removes
//! objects.
//!
//! Reading and parsing ([`Manifests::read`]) needs no lock on the state; only
//! [`Manifests::commit`] does, and it costs what changed.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::model::{Change, FxIndexMap, Input, Kind, ObjectRef};
use crate::resources::{FailoverRecordSpec, HealthCheckSpec};
use crate::state::{SourceError, State};

/// A file that lost objects (or vanished) is applied only once it has stayed so for
/// this long: a writer that truncates and rewrites in place, or deletes and recreates,
/// must not make names vanish meanwhile. Edits that remove nothing apply at once.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// Manifests larger than this are refused (a link to `/dev/zero` must not eat memory).
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// Documents per manifest file: room for a million records in one file, while a file
/// of nothing but `---` lines cannot make the splitter hold a hundred million of them.
pub const MAX_DOCUMENTS: usize = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("{path}: document {doc}: {message}")]
    Parse { path: String, doc: usize, message: String },
}

#[derive(Clone, Debug)]
pub enum Object {
    HealthCheck(Input<HealthCheckSpec>),
    FailoverRecord(Input<FailoverRecordSpec>),
}

impl Object {
    fn kind(&self) -> Kind {
        match self {
            Object::HealthCheck(_) => Kind::HealthCheck,
            Object::FailoverRecord(_) => Kind::FailoverRecord,
        }
    }

    fn id(&self) -> &ObjectRef {
        match self {
            Object::HealthCheck(i) => &i.id,
            Object::FailoverRecord(i) => &i.id,
        }
    }

    fn set_seq(&mut self, seq: u64) {
        match self {
            Object::HealthCheck(i) => i.seq = seq,
            Object::FailoverRecord(i) => i.seq = seq,
        }
    }

    fn into_change(self) -> Change {
        match self {
            Object::HealthCheck(i) => Change::Check(i),
            Object::FailoverRecord(i) => Change::Record(i),
        }
    }
}

fn removal(key: &ObjectKey) -> Change {
    match key.0 {
        Kind::HealthCheck => Change::RemoveCheck(key.1.clone()),
        Kind::FailoverRecord => Change::RemoveRecord(key.1.clone()),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::HealthCheck => "HealthCheck",
        Kind::FailoverRecord => "FailoverRecord",
    }
}

/// Objects are identified by kind, namespace and name across all files.
type ObjectKey = (Kind, ObjectRef);

/// Length and two independent 64-bit hashes of some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentDigest(usize, u64, u64);

impl ContentDigest {
    fn of(content: &[u8]) -> Self {
        let hash = |key: u64| {
            let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            h.write_u64(key);
            h.write(content);
            h.finish()
        };
        Self(content.len(), hash(0x9e37_79b9_7f4a_7c15), hash(0xc2b2_ae3d_27d4_eb4f))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() }
    }
}

/// An object ever seen, by its place in [`Manifests::known`]: places never change,
/// since nothing is forgotten there, and the place is also the object's age.
type KnownId = u32;

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

/// One file's news from [`Manifests::read`].
pub enum FileNews {
    Gone,
    /// Kept with its objects: a read error is not a removal.
    Unreadable(String),
    Parsed { stamp: Stamp, digest: ContentDigest, objects: Result<Vec<Parsed>, String> },
    /// Read again (its stamp changed) but with the same bytes.
    Same { stamp: Stamp },
}

/// One document of a file that changed.
// Nearly every document of a first load is `New`: boxing would allocate each one.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// New or edited: parsed, with the hash of its text.
    New(Object, u64),
    /// The very text of an object this file serves: not parsed again.
    Same(KnownId, u64),
}

/// What [`Manifests::read`] found, to be committed under the state lock.
pub struct Pending {
    news: Vec<(PathBuf, FileNews)>,
    scan_errors: Vec<SourceError>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.news.is_empty()
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
}

impl Manifests {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots,
            files: BTreeMap::new(),
            known: FxIndexMap::default(),
            scan_errors: Vec::new(),
            unsettled: FxHashMap::default(),
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
                Ok(meta) if meta.is_dir() => walk(root, &mut found, &mut errors, &mut unlisted),
                Ok(_) => {
                    found.insert(root.clone());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    errors.push(SourceError { file: root.display().to_string(), message: "no such file or directory".into() });
                }
                Err(e) => {
                    errors.push(SourceError { file: root.display().to_string(), message: e.to_string() });
                    unlisted.push(root.clone());
                }
            }
        }
        (found, errors, unlisted)
    }

    /// Reads and parses every file whose bytes changed (no lock needed).
    pub fn read(&self) -> Pending {
        let (paths, scan_errors, unlisted) = self.scan();
        let mut news = Vec::new();
        for path in self.files.keys().filter(|p| !paths.contains(*p)) {
            if let Some(dir) = unlisted.iter().find(|d| path.starts_with(d)) {
                let message = format!("cannot list {}; keeping what this file held", dir.display());
                news.push((path.clone(), FileNews::Unreadable(message)));
            } else {
                news.push((path.clone(), FileNews::Gone));
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
                    news.push((path.clone(), FileNews::Unreadable(e.to_string())));
                    continue;
                }
            };
            let digest = ContentDigest::of(&content);
            // Unchanged bytes: served as they are, or rejected for the same reason again.
            if known.is_some_and(|s| s.seen == Some(digest)) {
                news.push((path, FileNews::Same { stamp }));
                continue;
            }
            let shown = path.display().to_string();
            // An edit to one object of a large file parses that object only.
            let served = self.served_digests(&path);
            let objects = parse_changed_documents(&shown, &content, |digest| served.get(&digest).cloned())
                .map_err(|e| e.to_string());
            news.push((path, FileNews::Parsed { stamp, digest, objects }));
        }
        Pending { news, scan_errors }
    }

    /// The objects served from `path`, by the hash of their document's text.
    fn served_digests(&self, path: &Path) -> FxHashMap<u64, KnownId> {
        let Some(ids) = self.files.get(path).and_then(|f| f.objects.as_ref()) else { return FxHashMap::default() };
        ids.iter()
            .filter_map(|&id| {
                let served = self.known[id as usize].served.as_ref().filter(|s| *s.file == *path)?;
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

    fn key(&self, id: KnownId) -> &ObjectKey {
        self.known.get_index(id as usize).expect("known objects are never forgotten").0
    }

    fn known_mut(&mut self, id: KnownId) -> &mut Known {
        &mut self.known[id as usize]
    }

    /// Applies what [`Manifests::read`] found. Returns true when what is served changed.
    pub fn commit(&mut self, pending: Pending, state: &mut State) -> bool {
        self.scan_errors = pending.scan_errors;
        let mut changed = false;
        for (path, news) in pending.news {
            changed |= match news {
                FileNews::Gone if !self.settled(&path) => false,
                FileNews::Gone => self.remove_file(&path, state),
                FileNews::Unreadable(message) => {
                    let shown = path.display().to_string();
                    tracing::warn!(file = %shown, error = %message, "manifest cannot be read; keeping its objects");
                    let file = self.files.entry(path).or_default();
                    file.error = Some(format!("cannot be read: {message}; keeping its last objects"));
                    file.seen = None;
                    file.stamp = None;
                    false
                }
                FileNews::Same { stamp } => {
                    // Back as it was (deleted and recreated): nothing waits any more.
                    self.unsettled.remove(&path);
                    if let Some(file) = self.files.get_mut(&path) {
                        file.stamp = Some(stamp);
                    }
                    false
                }
                FileNews::Parsed { stamp, digest, objects } => {
                    let changed = self.apply_file(&path, digest, objects, state);
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
        state.source_errors = self.errors();
        state.loaded = true;
        changed
    }

    /// Reads, parses and commits in one go (start-up, tests).
    pub fn reload(&mut self, state: &mut State) -> bool {
        let pending = self.read();
        self.commit(pending, state)
    }

    fn remove_file(&mut self, path: &Path, state: &mut State) -> bool {
        tracing::info!(file = %path.display(), "manifest removed");
        let Some(file) = self.files.remove(path) else { return false };
        let ids = file.objects.unwrap_or_default();
        for &id in &ids {
            self.known_mut(id).served = None;
        }
        let applied = state.apply(ids.iter().map(|&id| removal(self.key(id))));
        !applied.is_empty()
    }

    fn apply_file(
        &mut self,
        path: &Path,
        digest: ContentDigest,
        parsed: Result<Vec<Parsed>, String>,
        state: &mut State,
    ) -> bool {
        let shown = path.display().to_string();
        let file = self.files.entry(path.to_path_buf()).or_default();
        file.seen = Some(digest);
        let parsed = parsed.and_then(|objects| self.check_duplicates(path, objects));
        let objects = match parsed {
            Ok(objects) => objects,
            Err(message) => {
                tracing::warn!(file = %shown, error = %message, "manifest rejected; keeping its last good version");
                self.files.get_mut(path).expect("inserted above").error = Some(message);
                return false;
            }
        };
        let shared_path: Arc<Path> = Arc::from(path);
        let previous: Vec<KnownId> = self.files[path].objects.clone().unwrap_or_default();
        let had_good = self.files[path].objects.is_some();
        let mut changes = Vec::with_capacity(objects.len());
        let mut now: Vec<KnownId> = Vec::with_capacity(objects.len());
        let mut digests: Vec<(KnownId, u64)> = Vec::with_capacity(objects.len());
        // A first load of a large file grows the table once.
        self.known.reserve_exact(objects.len().saturating_sub(previous.len()));
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
                    let unchanged = known.get().served.as_ref().is_some_and(|s| s.digest == object_digest && *s.file == *path);
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
        // Only a file that served objects before can have lost some.
        let present: FxHashSet<KnownId> =
            if previous.is_empty() { FxHashSet::default() } else { now.iter().copied().collect() };
        let gone: Vec<KnownId> = previous.iter().filter(|id| !present.contains(id)).copied().collect();
        if gone.is_empty() {
            self.unsettled.remove(path);
        } else if !self.settled(path) {
            tracing::debug!(file = %shown, removed = gone.len(), "manifest lost objects; waiting for it to settle");
            self.files.get_mut(path).expect("inserted above").seen = None;
            return false;
        }
        changes.extend(gone.iter().map(|&id| removal(self.key(id))));
        // Decided before anything is served: a query never sees an edit that is refused.
        let mut introduced: Vec<String> = Vec::new();
        let accepted = state.apply_if(changes, |applied| {
            introduced = applied.new_errors().map(|p| format!("{} {}: {}", p.object, p.field, p.message)).collect();
            !had_good || introduced.is_empty()
        });
        let Some(applied) = accepted else {
            let message = format!("edit rejected, keeping the previous version: {}", introduced.join("; "));
            tracing::warn!(file = %shown, problems = introduced.len(), "{message}");
            self.files.get_mut(path).expect("inserted above").error = Some(message);
            return false;
        };
        for &id in &gone {
            self.known_mut(id).served = None;
        }
        for (id, digest) in digests {
            self.known_mut(id).served = Some(Served { file: shared_path.clone(), digest });
        }
        tracing::info!(file = %shown, objects = now.len(), changed = !applied.is_empty(), "manifest loaded");
        now.shrink_to_fit();
        let file = self.files.get_mut(path).expect("inserted above");
        file.objects = Some(now);
        file.error = None;
        !applied.is_empty()
    }

    /// An object may be defined in one file only.
    fn check_duplicates(&self, path: &Path, objects: Vec<Parsed>) -> Result<Vec<Parsed>, String> {
        let mut mine: FxHashSet<ObjectKey> = FxHashSet::with_capacity_and_hasher(objects.len(), Default::default());
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
            let error = ManifestError::Parse {
                path: path.display().to_string(),
                doc: 0,
                message: format!("{} {} is already defined in {place}", kind_name(key.0), key.1),
            };
            return Err(error.to_string());
        }
        Ok(objects)
    }

    /// Files whose current content is not served, and why.
    pub fn errors(&self) -> Vec<SourceError> {
        let mut errors = self.scan_errors.clone();
        errors.extend(self.files.iter().filter_map(|(p, s)| {
            s.error.as_ref().map(|e| SourceError { file: p.display().to_string(), message: e.clone() })
        }));
        errors
    }
}

/// A regular file's bytes, up to [`MAX_FILE_BYTES`]. Anything else (a FIFO, a device)
/// is refused before it is opened, so it cannot block or flood the reader.
fn read_limited(path: &Path) -> Result<(Stamp, Vec<u8>), ManifestError> {
    let shown = || path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| ManifestError::Read { path: shown(), source })?;
    if !meta.is_file() {
        return Err(ManifestError::Unreadable { path: shown(), message: "not a regular file".into() });
    }
    if meta.len() > MAX_FILE_BYTES {
        let message = format!("{} bytes; manifests may hold at most {MAX_FILE_BYTES}", meta.len());
        return Err(ManifestError::Unreadable { path: shown(), message });
    }
    let file = std::fs::File::open(path).map_err(|source| ManifestError::Read { path: shown(), source })?;
    let mut content = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut content).map_err(|source| ManifestError::Read { path: shown(), source })?;
    if content.len() as u64 > MAX_FILE_BYTES {
        let message = format!("more than {MAX_FILE_BYTES} bytes");
        return Err(ManifestError::Unreadable { path: shown(), message });
    }
    Ok((Stamp::of(&meta), content))
}

fn walk(dir: &Path, found: &mut BTreeSet<PathBuf>, errors: &mut Vec<SourceError>, unlisted: &mut Vec<PathBuf>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(SourceError { file: dir.display().to_string(), message: e.to_string() });
            unlisted.push(dir.to_path_buf());
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors.push(SourceError { file: dir.display().to_string(), message: e.to_string() });
                unlisted.push(dir.to_path_buf());
                return;
            }
        };
        let path = entry.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue; // editor swap files and the like
        }
        if path.is_dir() {
            walk(&path, found, errors, unlisted);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            found.insert(path);
        }
    }
}

/// Parses every document of a manifest file into objects.
pub fn parse_file(path: &str, content: &[u8]) -> Result<Vec<Object>, ManifestError> {
    Ok(parse_documents(path, content)?.into_iter().map(|(o, _)| o).collect())
}

/// Parses every document of a manifest file into objects, each with a hash of its
/// document's text.
///
/// Documents are split at their `---` lines first (as kubectl does; YAML forbids such
/// a line inside a scalar), so each is hashed from its own text and deserialized
/// straight into its typed spec, without an intermediate tree.
pub fn parse_documents(path: &str, content: &[u8]) -> Result<Vec<(Object, u64)>, ManifestError> {
    let parsed = parse_changed_documents(path, content, |_| None)?;
    Ok(parsed
        .into_iter()
        .filter_map(|p| match p {
            Parsed::New(object, digest) => Some((object, digest)),
            Parsed::Same(..) => None,
        })
        .collect())
}

/// Like [`parse_documents`], but a document whose text hash `served` knows is not
/// parsed again.
fn parse_changed_documents(
    path: &str,
    content: &[u8],
    served: impl Fn(u64) -> Option<KnownId> + Sync,
) -> Result<Vec<Parsed>, ManifestError> {
    let text = std::str::from_utf8(content)
        .map_err(|e| ManifestError::Parse { path: path.into(), doc: 1, message: format!("not UTF-8: {e}") })?;
    let file: Arc<str> = Arc::from(path);
    let pieces = split_documents(text).map_err(|doc| ManifestError::Parse {
        path: path.into(),
        doc,
        message: format!("a manifest file may hold at most {MAX_DOCUMENTS} documents"),
    })?;
    // Documents parse independently: a large file is parsed on every core, in
    // contiguous runs, so the first error is still the first in the file.
    // (available_parallelism reads cgroup files: asked only for a file that could use it.)
    let threads = match pieces.len() / PARALLEL_DOCUMENTS {
        0 | 1 => 1,
        most => std::thread::available_parallelism().map_or(1, |n| n.get()).min(most),
    };
    let run = pieces.len().div_ceil(threads).max(1);
    let parse_run = |first: usize, run: &[&str]| -> Result<Vec<Parsed>, ManifestError> {
        let mut objects = Vec::with_capacity(run.len());
        for (i, piece) in run.iter().enumerate() {
            let digest = rustc_hash::FxBuildHasher.hash_one(*piece);
            if let Some(key) = served(digest) {
                objects.push(Parsed::Same(key, digest));
                continue;
            }
            let err = |message: String| ManifestError::Parse { path: path.into(), doc: first + i + 1, message };
            if let Some(object) = parse_document(piece, &file).map_err(err)? {
                objects.push(Parsed::New(object, digest));
            }
        }
        Ok(objects)
    };
    if threads == 1 {
        return parse_run(0, &pieces);
    }
    let runs: Vec<Result<Vec<Parsed>, ManifestError>> = std::thread::scope(|scope| {
        let parse_run = &parse_run;
        let started: Vec<_> = pieces
            .chunks(run)
            .enumerate()
            .map(|(k, chunk)| {
                let thread = std::thread::Builder::new().spawn_scoped(scope, move || parse_run(k * run, chunk));
                (k, chunk, thread)
            })
            .collect();
        started
            .into_iter()
            .map(|(k, chunk, thread)| match thread {
                Ok(thread) => thread.join().expect("the manifest parser does not panic"),
                // No thread to be had (a process limit): this one parses the run.
                Err(_) => parse_run(k * run, chunk),
            })
            .collect()
    });
    let mut objects = Vec::with_capacity(pieces.len());
    for run in runs {
        objects.extend(run?);
    }
    Ok(objects)
}

/// A file with fewer documents than this per core is parsed on one thread.
const PARALLEL_DOCUMENTS: usize = 2000;

/// The documents of a YAML stream: each starts at a `---` line (the text before the
/// first one counts only if it holds more than comments and directives), and a `...`
/// line ends one.
/// Fails with the number of the first document past [`MAX_DOCUMENTS`].
fn split_documents(text: &str) -> Result<Vec<&str>, usize> {
    let mut starts = vec![0];
    let mut at = 0;
    let mut ended = false;
    for line in text.split_inclusive('\n') {
        let marker = |m: &str| line.strip_prefix(m).is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
        if marker("---") && at != 0 {
            if !ended {
                starts.push(at);
            }
            ended = false;
        } else if ended && !line.trim().is_empty() {
            // Content after `...` without `---` starts a document too.
            starts.push(at);
            ended = false;
        }
        at += line.len();
        if marker("...") {
            ended = true;
            starts.push(at);
        }
        if starts.len() > MAX_DOCUMENTS + 2 {
            return Err(MAX_DOCUMENTS + 1);
        }
    }
    starts.push(text.len());
    starts.dedup();
    let pieces: Vec<&str> = starts.windows(2).map(|w| &text[w[0]..w[1]]).collect();
    // A lone prefix of comments or directives is not a document of its own.
    let prefix = pieces.first().is_some_and(|p| !p.trim_start().starts_with("---") && is_blank(p));
    Ok(pieces.into_iter().skip(usize::from(prefix)).filter(|p| !is_end_only(p)).collect())
}

/// Only blank lines, comments and directives.
fn is_blank(piece: &str) -> bool {
    piece.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l.starts_with('%')
    })
}

/// The empty piece a `...` line leaves before what follows.
fn is_end_only(piece: &str) -> bool {
    piece.trim().is_empty()
}

/// Budgets of one document: a FailoverRecord or a HealthCheck is a few levels deep and
/// has no use for many aliases, so nesting bombs and alias bombs are refused after a
/// bounded amount of work instead of eating time and memory.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_YAML_DEPTH,
            flow_nesting_limit: MAX_YAML_DEPTH,
            max_aliases: MAX_YAML_ALIASES,
            max_anchors: MAX_YAML_ALIASES,
            max_nodes: 100_000,
            max_events: 200_000,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: MAX_YAML_REPLAYED },
        with_snippet: false,
    }
}

/// Nesting deeper than this is refused (a manifest object needs about 6 levels).
pub const MAX_YAML_DEPTH: usize = 32;
/// Anchors or aliases per document beyond this are refused.
pub const MAX_YAML_ALIASES: usize = 1_000;
/// Nodes that aliases may expand to in one document.
pub const MAX_YAML_REPLAYED: usize = 10_000;

/// One document: None when it is empty or of another kind.
fn parse_document(piece: &str, file: &Arc<str>) -> Result<Option<Object>, String> {
    let doc = match read_document(piece, SpecAs::Kind) {
        Ok(Some(doc)) if doc.spec_before_kind => match doc.kind.as_str() {
            // Now that the kind is known, the spec is read as that kind.
            Some(kind @ ("HealthCheck" | "FailoverRecord")) => {
                let spec_as = if kind == "HealthCheck" { SpecAs::Check } else { SpecAs::Record };
                read_document(piece, spec_as).map_err(|e| name_error(piece, e))?
            }
            _ => Some(doc),
        },
        Ok(doc) => doc,
        Err(e) => return Err(name_error(piece, e)),
    };
    let Some(doc) = doc else { return Ok(None) };
    let kind = doc.kind.text("kind")?;
    let api_version = doc.api_version.text("apiVersion")?;
    let Some(spec) = doc.spec else {
        if !matches!(kind.as_str(), "HealthCheck" | "FailoverRecord") {
            tracing::debug!(file = &**file, kind, "ignoring a document of another kind");
            return Ok(None);
        }
        return Err(format!("{kind} {}: spec: required", doc.name.as_deref().unwrap_or("<unnamed>")));
    };
    let expected = format!("{}/{}", crate::resources::GROUP, crate::resources::VERSION);
    if api_version != expected {
        return Err(format!("apiVersion: {api_version:?} is not {expected:?}"));
    }
    let name = doc.name.filter(|n| !n.is_empty()).ok_or("metadata.name: required")?;
    let id = ObjectRef::new(doc.namespace.unwrap_or_else(|| "default".into()), name);
    let file = Some(file.clone());
    Ok(Some(match spec {
        Spec::Check(spec) => Object::HealthCheck(Input { id, seq: 0, file, generation: None, spec: *spec }),
        Spec::Record(spec) => Object::FailoverRecord(Input { id, seq: 0, file, generation: None, spec: *spec }),
    }))
}

/// Why a document could not be read: the YAML itself (syntax, a budget), or a field.
enum ReadError {
    Yaml(String),
    Field { path: String, message: String },
}

fn read_document(piece: &str, spec_as: SpecAs) -> Result<Option<Doc>, ReadError> {
    let read = serde_saphyr::with_deserializer_from_str_with_options(piece, yaml_options(), |de| {
        serde::de::DeserializeSeed::deserialize(spec_as, de)
    });
    // Tracking the path costs an allocation per key: only a document that failed is
    // read again with it, for the message.
    read.or_else(|_| read_tracked(piece, spec_as))
}

fn read_tracked(piece: &str, spec_as: SpecAs) -> Result<Option<Doc>, ReadError> {
    let mut track = serde_path_to_error::Track::new();
    let mut in_fields = false;
    let read = serde_saphyr::with_deserializer_from_str_with_options(piece, yaml_options(), |de| {
        let doc = serde::de::DeserializeSeed::deserialize(spec_as, serde_path_to_error::Deserializer::new(de, &mut track));
        in_fields = doc.is_err();
        doc
    });
    read.map_err(|e| match in_fields {
        true => ReadError::Field { path: known_path(&track.path()), message: describe(&e) },
        false => ReadError::Yaml(describe(&e)),
    })
}

/// A YAML error in the words of this program's limits, with its line and column.
fn describe(error: &serde_saphyr::Error) -> String {
    use serde_saphyr::budget::BudgetBreach;
    let at = error.location().map(|l| format!(" at line {}, column {}", l.line(), l.column())).unwrap_or_default();
    let limit = match error {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => format!("nested deeper than {MAX_YAML_DEPTH} levels"),
            BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } => {
                format!("more than {MAX_YAML_ALIASES} anchors or aliases")
            }
            other => format!("too large or too complex ({other:?})"),
        },
        _ => {
            let message = error.render_with_formatter(&serde_saphyr::UserMessageFormatter);
            // The scanner's own limit on `[`/`{` nesting, set to the same depth.
            if !message.starts_with("recursion limit exceeded") {
                return message;
            }
            format!("nested deeper than {MAX_YAML_DEPTH} levels")
        }
    };
    format!("YAML document {limit}{at}")
}

/// A path with the segments serde could not name (`?`) left out.
fn known_path(path: &serde_path_to_error::Path) -> String {
    let shown = path.to_string();
    let kept: Vec<&str> = shown.split('.').filter(|s| *s != "?").collect();
    if kept.is_empty() { ".".into() } else { kept.join(".") }
}

/// The message of a document that could not be read, naming its kind and name when a
/// field is at fault (read again, without the spec).
fn name_error(piece: &str, error: ReadError) -> String {
    let (field, message) = match error {
        ReadError::Yaml(message) => return message,
        ReadError::Field { path, message } => (path, message),
    };
    let message = match field.as_str() {
        "." if message.contains("expected a mapping") => {
            return "expected a mapping (a Kubernetes object with apiVersion and kind)".into();
        }
        "." => return message,
        _ => format!("{field}: {message}"),
    };
    match read_document(piece, SpecAs::Skip) {
        Ok(Some(head)) => {
            let kind = head.kind.as_str().unwrap_or("object");
            let name = head.name.as_deref().unwrap_or("<unnamed>");
            format!("{kind} {name}: {message}")
        }
        // The YAML itself is broken: there is no kind or name to give.
        _ => message,
    }
}

/// What a manifest document holds, read in one pass: the spec is deserialized as the
/// kind named before it, everything else is skipped. A spec before its kind is
/// skipped and marked, and the document read again once the kind is known.
struct Doc {
    kind: Text,
    api_version: Text,
    name: Option<String>,
    namespace: Option<String>,
    spec: Option<Spec>,
    spec_before_kind: bool,
}

enum Spec {
    Check(Box<HealthCheckSpec>),
    Record(Box<FailoverRecordSpec>),
}

/// How to read `spec`.
#[derive(Clone, Copy)]
enum SpecAs {
    /// As the kind read before it.
    Kind,
    Check,
    Record,
    /// Not at all (the document is read for its kind and name only).
    Skip,
}

/// `kind` and `apiVersion`: strings, or absent.
#[derive(Default)]
enum Text {
    #[default]
    Absent,
    Str(String),
    Other,
}

impl Text {
    fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(s) => Some(s),
            _ => None,
        }
    }

    fn text(self, field: &str) -> Result<String, String> {
        match self {
            Text::Absent => Ok(String::new()),
            Text::Str(s) => Ok(s),
            Text::Other => Err(format!("{field}: expected a string")),
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text::Str(v.to_owned()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Text, E> {
                Ok(Text::Absent)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Text, E> {
                Ok(Text::Absent)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Text, E> {
                Ok(Text::Other)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Text, E> {
                Ok(Text::Other)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Text, E> {
                Ok(Text::Other)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Text, E> {
                Ok(Text::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text::Other)
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

#[derive(Deserialize)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for SpecAs {
    type Value = Option<Doc>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Option<Doc>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SpecAs {
    type Value = Option<Doc>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a mapping (a Kubernetes object with apiVersion and kind)")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<Doc>, E> {
        Ok(None)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Option<Doc>, E> {
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Option<Doc>, A::Error> {
        use serde::de::IgnoredAny;
        let mut doc = Doc {
            kind: Text::Absent,
            api_version: Text::Absent,
            name: None,
            namespace: None,
            spec: None,
            spec_before_kind: false,
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "kind" => doc.kind = map.next_value()?,
                "apiVersion" => doc.api_version = map.next_value()?,
                "metadata" => {
                    if let Some(meta) = map.next_value::<Option<Meta>>()? {
                        (doc.name, doc.namespace) = (meta.name, meta.namespace);
                    }
                }
                "spec" => {
                    let spec_as = match (self, doc.kind.as_str()) {
                        (SpecAs::Kind, Some("HealthCheck")) => SpecAs::Check,
                        (SpecAs::Kind, Some("FailoverRecord")) => SpecAs::Record,
                        (SpecAs::Kind, None) => {
                            doc.spec_before_kind = true;
                            SpecAs::Skip
                        }
                        (SpecAs::Kind, Some(_)) => SpecAs::Skip,
                        (given, _) => given,
                    };
                    match spec_as {
                        SpecAs::Check => doc.spec = Some(Spec::Check(map.next_value()?)),
                        SpecAs::Record => doc.spec = Some(Spec::Record(map.next_value()?)),
                        SpecAs::Kind | SpecAs::Skip => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(doc))
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
        for (_, news) in &pending.news {
            if let FileNews::Parsed { objects: Ok(objects), .. } = news {
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

    /// A file large enough to be parsed on several threads keeps its order, and
    /// reports the first broken document by its place in the file.
    #[test]
    fn a_large_file_parses_in_order_and_reports_the_first_error() {
        let n = 2 * PARALLEL_DOCUMENTS + 500;
        let docs: Vec<String> = (0..n).map(|i| record(&format!("r{i}"), "192.0.2.1")).collect();
        let parsed = parse_documents("big.yaml", docs.concat().as_bytes()).unwrap();
        let names: Vec<String> = parsed.iter().map(|(o, _)| o.id().name.to_string()).collect();
        assert_eq!(names, (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>());

        let mut broken = docs.clone();
        // One error in each half: the one in the first half is reported.
        broken[PARALLEL_DOCUMENTS] = "---\nkind: [\n".into();
        broken[n - 5] = "---\nkind: [\n".into();
        let error = parse_documents("big.yaml", broken.concat().as_bytes()).unwrap_err().to_string();
        assert!(error.starts_with(&format!("big.yaml: document {}:", PARALLEL_DOCUMENTS + 1)), "{error}");
    }

    #[test]
    fn an_edit_parses_only_the_documents_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("all.yaml");
        let zones = vec![Fqdn::parse("example.test").unwrap()];
        let mut state = State::new(ZoneSettings { zones, nameservers: vec![], soa_ttl: 300, negative_ttl: 60 });
        let mut manifests = Manifests::new(vec![dir.path().to_path_buf()]);
        let all = |ips: [&str; 3]| ["a", "b", "c"].iter().zip(ips).map(|(n, ip)| record(n, ip)).collect::<String>();
        std::fs::write(&file, all(["192.0.2.1", "192.0.2.2", "192.0.2.3"])).unwrap();
        let first = manifests.read();
        assert_eq!(counts(&first), (3, 0));
        manifests.commit(first, &mut state);

        std::fs::write(&file, all(["192.0.2.1", "192.0.2.9", "192.0.2.3"])).unwrap();
        let edit = manifests.read();
        assert_eq!(counts(&edit), (1, 2), "only b is parsed again");
        manifests.commit(edit, &mut state);
        let b = state.model().accepted_record(&ObjectRef::new("default", "b")).unwrap();
        let RecordData::Values(rrs) = &b.data else { panic!("{:?}", b.data) };
        assert_eq!(rrs[0].rdata().to_string(), "192.0.2.9");
        assert_eq!(state.model().record_ids().count(), 3);

        // A document dropped: the others stay untouched, and it goes (after settling).
        std::fs::write(&file, [record("a", "192.0.2.1"), record("c", "192.0.2.3")].concat()).unwrap();
        assert_eq!(counts(&manifests.read()), (0, 2));
    }
}
