//! Manifest documents into objects: split at their `---` lines, each hashed from its
//! own text (an edit to one object of a large file parses that object only) and
//! deserialized straight into its typed spec under YAML budgets.

use std::hash::BuildHasher;
use std::sync::Arc;

use serde::Deserialize;

use super::{KnownId, Parsed};
use crate::model::{Change, Input, Kind, ObjectRef};
use crate::resources::{FailoverRecordSpec, HealthCheckSpec};

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
    pub(super) fn kind(&self) -> Kind {
        match self {
            Object::HealthCheck(_) => Kind::HealthCheck,
            Object::FailoverRecord(_) => Kind::FailoverRecord,
        }
    }

    pub(super) fn id(&self) -> &ObjectRef {
        match self {
            Object::HealthCheck(i) => &i.id,
            Object::FailoverRecord(i) => &i.id,
        }
    }

    pub(super) fn set_seq(&mut self, seq: u64) {
        match self {
            Object::HealthCheck(i) => i.seq = seq,
            Object::FailoverRecord(i) => i.seq = seq,
        }
    }

    pub(super) fn into_change(self) -> Change {
        match self {
            Object::HealthCheck(i) => Change::Check(i),
            Object::FailoverRecord(i) => Change::Record(i),
        }
    }
}

/// Parses every document of a manifest file into objects.
pub fn parse_file(path: &str, content: &[u8]) -> Result<Vec<Object>, ManifestError> {
    Ok(parse_documents(path, content)?.into_iter().map(|(o, _)| o).collect())
}

/// The document (numbered from 1) each HealthCheck and FailoverRecord of a file's
/// text stands in, for messages that point there (`failover-dns check`).
pub fn document_numbers(text: &str) -> Vec<(Kind, ObjectRef, usize)> {
    let file: Arc<str> = Arc::from("");
    let Ok(pieces) = split_documents(text) else { return Vec::new() };
    let mut found = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        if let Ok(Some(object)) = parse_document(piece, &file) {
            found.push((object.kind(), object.id().clone(), i + 1));
        }
    }
    found
}

/// Every document of a file's text that cannot be read, with its number (the server
/// stops at the first; a checker wants them all).
pub fn document_errors(text: &str) -> Vec<(usize, String)> {
    let file: Arc<str> = Arc::from("");
    let Ok(pieces) = split_documents(text) else { return Vec::new() };
    let parsed = pieces.iter().enumerate().map(|(i, piece)| (i + 1, parse_document(piece, &file)));
    parsed.filter_map(|(n, result)| result.err().map(|message| (n, message))).collect()
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
pub(super) fn parse_changed_documents(
    path: &str,
    content: &[u8],
    served: impl Fn(u64) -> Option<KnownId> + Sync,
) -> Result<Vec<Parsed>, ManifestError> {
    let text = std::str::from_utf8(content).map_err(|e| ManifestError::Parse {
        path: path.into(),
        doc: 1,
        message: format!("not UTF-8: {e}"),
    })?;
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
            let err = |message: String| ManifestError::Parse {
                path: path.into(),
                doc: first + i + 1,
                message,
            };
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
                let thread = std::thread::Builder::new()
                    .spawn_scoped(scope, move || parse_run(k * run, chunk));
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
pub(super) fn split_documents(text: &str) -> Result<Vec<&str>, usize> {
    let mut starts = vec![0];
    let mut at = 0;
    let mut ended = false;
    for line in text.split_inclusive('\n') {
        let marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        };
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
pub(super) fn yaml_options() -> serde_saphyr::Options {
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
    if !doc.unknown.is_empty()
        && matches!(doc.kind.as_str(), Some("HealthCheck" | "FailoverRecord"))
    {
        // Refused as the API server's strict field validation refuses it: a typo must
        // not quietly fall back to a default.
        let fields: Vec<String> = doc.unknown.iter().map(|f| format!("{f:?}")).collect();
        return Err(format!(
            "{} {}: unknown field {}",
            doc.kind.as_str().unwrap_or_default(),
            doc.name.as_deref().unwrap_or("<unnamed>"),
            fields.join(", ")
        ));
    }
    let kind = doc.kind.text("kind")?;
    let api_version = doc.api_version.text("apiVersion")?;
    let Some(spec) = doc.spec else {
        if !matches!(kind.as_str(), "HealthCheck" | "FailoverRecord") {
            tracing::debug!(file = &**file, kind, "ignoring a document of another kind");
            return Ok(None);
        }
        return Err(format!(
            "{kind} {}: spec: required",
            doc.name.as_deref().unwrap_or("<unnamed>")
        ));
    };
    let expected = format!("{}/{}", crate::resources::GROUP, crate::resources::VERSION);
    if api_version != expected {
        return Err(format!("apiVersion: {api_version:?} is not {expected:?}"));
    }
    let name = doc.name.filter(|n| !n.is_empty()).ok_or("metadata.name: required")?;
    let id = ObjectRef::new(doc.namespace.unwrap_or_else(|| "default".into()), name);
    let file = Some(file.clone());
    Ok(Some(match spec {
        Spec::Check(spec) => {
            Object::HealthCheck(Input { id, seq: 0, file, generation: None, spec: *spec })
        }
        Spec::Record(spec) => {
            Object::FailoverRecord(Input { id, seq: 0, file, generation: None, spec: *spec })
        }
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
        let doc = serde::de::DeserializeSeed::deserialize(
            spec_as,
            serde_path_to_error::Deserializer::new(de, &mut track),
        );
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
    let at = error
        .location()
        .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
        .unwrap_or_default();
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
    /// Fields the kind does not have (`spec.requestIntervall`, `sepc`).
    unknown: Vec<String>,
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

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<Doc>, D::Error> {
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
            unknown: Vec::new(),
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
                    let unknown = &mut doc.unknown;
                    match spec_as {
                        SpecAs::Check => {
                            doc.spec = Some(Spec::Check(map.next_value_seed(Strict::new(unknown))?))
                        }
                        SpecAs::Record => {
                            doc.spec =
                                Some(Spec::Record(map.next_value_seed(Strict::new(unknown))?))
                        }
                        SpecAs::Kind | SpecAs::Skip => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                "status" => {
                    map.next_value::<IgnoredAny>()?;
                }
                other => {
                    doc.unknown.push(other.to_owned());
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(doc))
    }
}

/// Reads a `T` and notes every field it does not have, by its path from `spec`.
struct Strict<'u, T> {
    unknown: &'u mut Vec<String>,
    reads: std::marker::PhantomData<T>,
}

impl<'u, T> Strict<'u, T> {
    fn new(unknown: &'u mut Vec<String>) -> Self {
        Self { unknown, reads: std::marker::PhantomData }
    }
}

impl<'de, T: Deserialize<'de>> serde::de::DeserializeSeed<'de> for Strict<'_, T> {
    type Value = Box<T>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Box<T>, D::Error> {
        serde_ignored::deserialize(deserializer, |path| self.unknown.push(spec_path(&path)))
    }
}

/// `spec.checks[2].name`, as the API server names a field.
pub(super) fn spec_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => "spec".into(),
        Path::Seq { parent, index } => format!("{}[{index}]", spec_path(parent)),
        Path::Map { parent, key } => format!("{}.{key}", spec_path(parent)),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => spec_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, ip: &str) -> String {
        format!(
            "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}}}\nspec: {{name: {name}.example.test, type: A, values: [\"{ip}\"]}}\n"
        )
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
        let error =
            parse_documents("big.yaml", broken.concat().as_bytes()).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("big.yaml: document {}:", PARALLEL_DOCUMENTS + 1)),
            "{error}"
        );
    }
}
