//! The admin routes. Each reads one published [`View`] (and the prober's state of one
//! check at a time), so no request waits for the sink and no failover waits for a
//! request. `/status` is streamed a chunk of objects at a time and may be paged and
//! filtered, so even at a million records it holds little more than one chunk.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;
use serde_json::json;

use super::Admin;
use crate::codec::{qtype_by_name, record_type, wire_name};
use crate::engine::{Decision, Engine};
use crate::health::LeafHealth;
use crate::model::RecordType;
use crate::model::{Check, Fqdn, Key, ObjectRef};
use crate::prober::Prober;
use crate::resources::HealthCheckStatus;
use crate::snapshot::{Answer, Owner, Rcode};
use crate::status::check_status;
use crate::view::View;

/// Objects serialized per chunk of a streamed `/status`.
const CHUNK: usize = 256;

pub async fn readyz(AxumState(admin): AxumState<Admin>) -> Response {
    let loaded = admin.view.load().ready();
    let running = admin.alive.get();
    if loaded && running {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let why =
            format!("not ready: configuration loaded={loaded}, every task running={running}\n");
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

pub async fn metrics(AxumState(admin): AxumState<Admin>) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &admin.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckStatus<'a> {
    namespace: &'a str,
    name: &'a str,
    #[serde(flatten)]
    check: &'a Check,
    /// Effective health (calculated checks included), as the engine uses it.
    healthy: bool,
    /// The HealthCheck `status`, exactly as cluster mode writes it.
    status: HealthCheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<LeafHealth>,
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// Where a page of `/status` starts: after this check, or after this name + type.
#[derive(Clone, Debug, PartialEq)]
enum Position {
    Start,
    AfterCheck(ObjectRef),
    AfterRecord(Key),
}

impl Position {
    /// `check/<namespace>/<name>` or `record/<TYPE>/<name>`.
    fn token(&self) -> Option<String> {
        match self {
            Position::Start => None,
            Position::AfterCheck(id) => Some(format!("check/{}/{}", id.namespace, id.name)),
            Position::AfterRecord((name, rtype)) => Some(format!("record/{}/{name}", rtype.name())),
        }
    }

    fn parse(token: &str) -> Result<Self, String> {
        let bad = || format!("continue: {token:?} is not a token this server handed out");
        let (what, rest) = token.split_once('/').ok_or_else(bad)?;
        let (first, second) = rest.split_once('/').ok_or_else(bad)?;
        match what {
            "check" => Ok(Position::AfterCheck(ObjectRef::new(first, second))),
            "record" => {
                let rtype = RecordType::from_name(first).ok_or_else(bad)?;
                Ok(Position::AfterRecord((Fqdn::parse(second).map_err(|_| bad())?, rtype)))
            }
            _ => Err(bad()),
        }
    }
}

/// What a `/status` request asks for.
struct StatusQuery {
    /// Objects per page; None: all of them, streamed.
    limit: Option<usize>,
    from: Position,
    /// Only the records of this DNS name and the checks they use or of this name.
    name: Option<String>,
    unhealthy_only: bool,
}

impl StatusQuery {
    fn parse(params: &HashMap<String, String>) -> Result<Self, String> {
        let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
            None | Some(Ok(0)) => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => return Err("limit: a number of objects".into()),
        };
        let from = params
            .get("continue")
            .filter(|t| !t.is_empty())
            .map_or(Ok(Position::Start), |t| Position::parse(t))?;
        let unhealthy_only = match params.get("unhealthy").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(format!("unhealthy: {other:?} is not true or false")),
        };
        Ok(StatusQuery { limit, from, name: params.get("name").cloned(), unhealthy_only })
    }
}

/// The filter of one `/status` request, resolved against its view.
struct Filter {
    /// Records only at this name (a DNS name was asked for).
    record_name: Option<Fqdn>,
    /// Checks only with these ids, or this object name.
    checks: Option<(BTreeSet<ObjectRef>, String)>,
    unhealthy_only: bool,
}

impl Filter {
    fn new(view: &View, query: &StatusQuery) -> Self {
        let Some(name) = &query.name else {
            return Filter {
                record_name: None,
                checks: None,
                unhealthy_only: query.unhealthy_only,
            };
        };
        let record_name = Fqdn::parse(name).ok();
        let mut used = BTreeSet::new();
        if let Some(fqdn) = &record_name {
            for (_, sets) in
                view.sets.range((fqdn.clone(), RecordType::A)..=(fqdn.clone(), RecordType::Srv))
            {
                used.extend(sets.iter().filter_map(|s| s.health_check().cloned()));
            }
        }
        // A name that is not a DNS name matches no record.
        let record_name =
            Some(record_name.unwrap_or_else(|| Fqdn::parse("invalid.").expect("a valid name")));
        Filter {
            record_name,
            checks: Some((used, name.clone())),
            unhealthy_only: query.unhealthy_only,
        }
    }

    fn wants_check(&self, check: &Check, healthy: bool) -> bool {
        let named = self
            .checks
            .as_ref()
            .is_none_or(|(used, name)| used.contains(&check.id) || *check.id.name == **name);
        named && !(self.unhealthy_only && healthy)
    }

    fn wants_record(&self, decision: &Decision) -> bool {
        !(self.unhealthy_only && decision.candidates.iter().all(|c| c.healthy))
    }
}

/// Writes `/status` one chunk at a time from one view.
struct StatusWriter {
    view: Arc<View>,
    prober: Prober,
    filter: Filter,
    position: Position,
    /// Objects this page may still hold (None: no limit).
    room: Option<usize>,
    first_page: bool,
    phase: Phase,
    /// Whether the current JSON list has an element already.
    listed: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Head,
    Checks,
    Records,
    Tail,
    Done,
}

impl StatusWriter {
    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(64 * 1024);
        match self.phase {
            Phase::Head => {
                let view = &*self.view;
                out.extend_from_slice(b"{");
                write_field(&mut out, "serial", &view.serial(), false);
                write_field(&mut out, "zones", &view.zones, true);
                write_field(&mut out, "ready", &view.ready(), true);
                out.extend_from_slice(b",\"healthChecks\":[");
                self.phase = if matches!(self.position, Position::AfterRecord(_)) {
                    Phase::Records
                } else {
                    Phase::Checks
                };
                if self.phase == Phase::Records {
                    out.extend_from_slice(b"],\"records\":[");
                }
            }
            Phase::Checks => self.checks_chunk(&mut out),
            Phase::Records => self.records_chunk(&mut out),
            Phase::Tail => {
                out.extend_from_slice(b"]");
                if self.first_page {
                    let view = &*self.view;
                    write_field(
                        &mut out,
                        "problems",
                        &view.problems.iter().collect::<Vec<_>>(),
                        true,
                    );
                    write_field(&mut out, "sourceErrors", &*view.source_errors, true);
                }
                if self.room == Some(0)
                    && let Some(token) = self.position.token()
                {
                    write_field(&mut out, "continue", &token, true);
                }
                out.extend_from_slice(b"}\n");
                self.phase = Phase::Done;
            }
            Phase::Done => return None,
        }
        Some(out)
    }

    fn checks_chunk(&mut self, out: &mut Vec<u8>) {
        let view = self.view.clone();
        let after = match &self.position {
            Position::AfterCheck(id) => Some(id),
            _ => None,
        };
        let now = SystemTime::now();
        let mut last = None;
        let mut exhausted = true;
        for (taken, check) in view.checks_after(after).enumerate() {
            if taken == CHUNK || self.room == Some(0) {
                exhausted = false;
                break;
            }
            last = Some(check.id.clone());
            let healthy = view.verdicts.get(&check.id).unwrap_or(false);
            if !self.filter.wants_check(check, healthy) {
                continue;
            }
            let probe = crate::status::leaf(&self.prober, &view, &check.id);
            let status = CheckStatus {
                namespace: &check.id.namespace,
                name: &check.id.name,
                check,
                healthy,
                status: check_status(check, &view.verdicts, &view.checkers, probe.as_ref(), now),
                probe,
            };
            self.element(out, &status);
        }
        if let Some(id) = last {
            self.position = Position::AfterCheck(id);
        }
        if exhausted {
            out.extend_from_slice(b"],\"records\":[");
            self.listed = false;
            self.phase = Phase::Records;
        } else if self.room == Some(0) {
            self.phase = Phase::Tail;
            out.extend_from_slice(b"],\"records\":[");
        }
    }

    fn records_chunk(&mut self, out: &mut Vec<u8>) {
        let view = self.view.clone();
        let after = match &self.position {
            Position::AfterRecord(key) => Some(key.clone()),
            _ => None,
        };
        let mut engine = Engine::new(&*view, &view.verdicts);
        let mut last = None;
        let mut exhausted = true;
        let keys: Box<dyn Iterator<Item = &Key>> = match &self.filter.record_name {
            Some(name) => {
                let (first, last_type) =
                    ((name.clone(), RecordType::A), (name.clone(), RecordType::Srv));
                let lower = after.clone().map_or(first.clone(), |a| a.max(first));
                if lower > last_type {
                    Box::new(std::iter::empty())
                } else {
                    let range = view.sets.range(lower..=last_type).map(|(k, _)| k);
                    Box::new(range.filter(move |k| Some(*k) != after.as_ref()))
                }
            }
            None => Box::new(view.keys_after(after.as_ref())),
        };
        for (taken, key) in keys.enumerate() {
            if taken == CHUNK || self.room == Some(0) {
                exhausted = false;
                break;
            }
            last = Some(key.clone());
            let Some(decision) = engine.decide(key) else { continue };
            if self.filter.wants_record(&decision) {
                self.element(out, &*decision);
            }
        }
        if let Some(key) = last {
            self.position = Position::AfterRecord(key);
        }
        if exhausted {
            // Nothing follows: no continue token.
            self.position = Position::Start;
            self.phase = Phase::Tail;
        } else if self.room == Some(0) {
            self.phase = Phase::Tail;
        }
    }

    fn element(&mut self, out: &mut Vec<u8>, value: &impl Serialize) {
        if self.listed {
            out.push(b',');
        }
        self.listed = true;
        serde_json::to_writer(&mut *out, value).expect("status objects serialize");
        if let Some(room) = self.room.as_mut() {
            *room -= 1;
        }
    }
}

fn write_field(out: &mut Vec<u8>, name: &str, value: &(impl Serialize + ?Sized), comma: bool) {
    if comma {
        out.push(b',');
    }
    serde_json::to_writer(&mut *out, name).expect("a string serializes");
    out.push(b':');
    serde_json::to_writer(&mut *out, value).expect("status fields serialize");
}

/// `/status[?limit=N][&continue=TOKEN][&name=NAME][&unhealthy=true]`: every health
/// check, then every record's current choice, in name order; with `limit`, at most
/// that many objects and a `continue` token for the next page. Problems and source
/// errors come with the first page.
pub async fn status(
    AxumState(admin): AxumState<Admin>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = match StatusQuery::parse(&params) {
        Ok(q) => q,
        Err(message) => return bad_request(message),
    };
    let view = admin.view.load_full();
    let filter = Filter::new(&view, &query);
    let writer = StatusWriter {
        view,
        prober: admin.prober.clone(),
        filter,
        first_page: query.from == Position::Start,
        position: query.from,
        room: query.limit,
        phase: Phase::Head,
        listed: false,
    };
    let Some(chunks) = write_in_background(writer) else {
        let busy = "too many /status requests at once; retry in a moment";
        return (StatusCode::SERVICE_UNAVAILABLE, busy).into_response();
    };
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(chunks)).into_response()
}

/// `/status` bodies being written at once; more are refused (503) rather than queued.
const STATUS_WRITERS: usize = 4;
static STATUS_WRITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Writes the body on a thread of its own at a low CPU priority, a chunk ahead of the
/// client: deciding 100k records for a dashboard must never take a core from the
/// prober, the sink or the DNS threads, so a failover is as fast with readers as without.
fn write_in_background(
    mut writer: StatusWriter,
) -> Option<impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static> {
    use std::sync::atomic::Ordering;
    if STATUS_WRITING.fetch_add(1, Ordering::AcqRel) >= STATUS_WRITERS {
        STATUS_WRITING.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    let (chunks, received) = tokio::sync::mpsc::channel::<Bytes>(1);
    let spawned = std::thread::Builder::new().name("admin-status".into()).spawn(move || {
        lower_priority();
        while let Some(chunk) = writer.next_chunk() {
            // The client went away: stop deciding.
            if chunks.blocking_send(Bytes::from(chunk)).is_err() {
                break;
            }
        }
        STATUS_WRITING.fetch_sub(1, Ordering::AcqRel);
    });
    if spawned.is_err() {
        STATUS_WRITING.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    Some(futures::stream::unfold(received, |mut received| async move {
        let chunk = received.recv().await?;
        Some((Ok(chunk), received))
    }))
}

/// The calling thread yields the CPU to every normal-priority thread (nice 19).
fn lower_priority() {
    // SAFETY: gettid and setpriority only name and adjust the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

pub async fn explain(
    AxumState(admin): AxumState<Admin>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(name) = params.get("name") else {
        return bad_request("the name parameter is required".into());
    };
    let name = match Fqdn::parse(name) {
        Ok(n) => n,
        Err(e) => return bad_request(format!("name: {e}")),
    };
    let type_text = params.get("type").map_or("A", String::as_str).to_ascii_uppercase();
    let Some(code) = qtype_by_name(&type_text) else {
        let expected = "A, AAAA, CNAME, TXT, MX, SRV, SOA, NS, ANY";
        return bad_request(format!("type: {type_text:?} is not one of {expected}"));
    };
    let view = admin.view.load_full();
    let snapshot = &view.snapshot;
    let mut engine = Engine::new(&*view, &view.verdicts);
    let wire = wire_name(&name);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let answer = snapshot.resolve(&wire, code, &mut rng);
    let steps = decision_path(&mut engine, &name, code, &answer);
    let answers = example_answer(&name, &answer);
    let rcode = match answer.rcode {
        Rcode::NoError => "NOERROR",
        Rcode::NxDomain => "NXDOMAIN",
        Rcode::Refused => "REFUSED",
    };
    let zone = snapshot.zone_of(&wire).map(|z| snapshot.zones[z].name.to_string());
    let summary = match (answer.rcode, answer.records.is_empty(), zone.is_some()) {
        (Rcode::Refused, _, _) => format!("{name} is outside every served zone: REFUSED"),
        (Rcode::NxDomain, _, _) => {
            format!("{name} has no records of any type: NXDOMAIN with the zone SOA")
        }
        (_, true, _) => {
            format!(
                "{name} exists but has no {type_text} records: NOERROR with no answers (NODATA) and the zone SOA"
            )
        }
        _ => format!("{} record(s) in the answer", answer.records.len()),
    };
    let checks = checks_behind(&view, &admin.prober, &steps);
    Json(json!({
        "name": name,
        "type": type_text,
        "zone": zone,
        "rcode": rcode,
        "summary": summary,
        "serial": snapshot.serial,
        "decisions": steps.iter().map(|d| &**d).collect::<Vec<&Decision>>(),
        "checks": checks,
        "exampleAnswer": answers,
    }))
    .into_response()
}

/// The health checks the decided record sets use, each with its verdict and every
/// checker's view of it.
fn checks_behind(view: &View, prober: &Prober, steps: &[Arc<Decision>]) -> Vec<serde_json::Value> {
    let mut ids: Vec<&ObjectRef> = steps
        .iter()
        .filter_map(|d| view.sets.get(&(d.name.clone(), d.rtype)))
        .flat_map(|sets| sets.iter().filter_map(|s| s.health_check()))
        .collect();
    ids.sort();
    ids.dedup();
    let now = SystemTime::now();
    ids.into_iter()
        .filter_map(|id| view.checks.get(id))
        .map(|check| {
            let leaf = crate::status::leaf(prober, view, &check.id);
            let status = check_status(check, &view.verdicts, &view.checkers, leaf.as_ref(), now);
            let condition = status.conditions.first();
            json!({
                "namespace": check.id.namespace,
                "name": check.id.name,
                "healthy": status.healthy,
                "reason": condition.map(|c| &c.reason),
                "message": condition.map(|c| &c.message),
                "checkers": status.checkers,
            })
        })
        .collect()
}

/// The decisions behind an answer: the queried name's and those of every name a
/// CNAME chain reached.
fn decision_path(
    engine: &mut Engine<'_>,
    name: &Fqdn,
    code: u16,
    answer: &Answer<'_>,
) -> Vec<Arc<Decision>> {
    let mut names = vec![name.clone()];
    for (owner, _, _) in &answer.records {
        if let Owner::Node(node) = owner
            && let Ok(n) = Fqdn::parse(&node.name().to_ascii())
            && !names.contains(&n)
        {
            names.push(n);
        }
    }
    let mut steps = Vec::new();
    for n in &names {
        for t in [record_type(code), Some(RecordType::Cname)].into_iter().flatten() {
            steps.extend(engine.decide(&(n.clone(), t)));
        }
    }
    steps
}

/// One possible answer, record by record, as JSON.
fn example_answer(name: &Fqdn, answer: &Answer<'_>) -> Vec<serde_json::Value> {
    answer
        .records
        .iter()
        .map(|(owner, _, rr)| {
            let owner = match owner {
                Owner::Query => name.to_string(),
                Owner::Node(node) => node.name().to_ascii(),
            };
            let (rtype, value) = (rr.rdata().record_type().to_string(), rr.rdata().to_string());
            json!({ "name": owner, "type": rtype, "ttl": rr.ttl, "value": value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let positions = [
            Position::AfterCheck(ObjectRef::new("team-a", "web")),
            Position::AfterRecord((Fqdn::parse("www.example.test").unwrap(), RecordType::Aaaa)),
        ];
        for p in positions {
            assert_eq!(Position::parse(&p.token().unwrap()), Ok(p));
        }
        assert!(Position::parse("nonsense").is_err());
        assert!(Position::parse("record/PTR/www.example.test.").is_err());
        assert_eq!(Position::Start.token(), None);
    }
}
