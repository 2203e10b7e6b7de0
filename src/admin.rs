//! The admin endpoint: probes for kubelet, Prometheus metrics, status and explain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::engine::{Decision, Engine};
use crate::health::{LeafHealth, check_status};
use crate::model::{Check, Fqdn, ObjectRef, Problem};
use crate::resources::HealthCheckStatus;
use crate::snapshot::{Owner, Rcode, record_type};
use crate::state::{SourceError, State};

/// Live health-check states, as the prober sees them (empty without a prober).
pub type ProbeStates = Arc<dyn Fn() -> HashMap<ObjectRef, LeafHealth> + Send + Sync>;

#[derive(Clone)]
pub struct Admin {
    pub state: Arc<Mutex<State>>,
    pub registry: Arc<Registry>,
    pub probe_states: ProbeStates,
    pub dns_ready: Arc<std::sync::atomic::AtomicBool>,
}

pub async fn serve(addr: SocketAddr, admin: Admin, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/explain", get(explain))
        .with_state(admin);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(error) = served {
            tracing::error!(%error, "admin server failed");
        }
    });
    tracing::info!(addr = %bound, "admin endpoint listening");
    Ok(bound)
}

async fn readyz(AxumState(admin): AxumState<Admin>) -> Response {
    let loaded = admin.state.lock().await.loaded;
    let dns = admin.dns_ready.load(std::sync::atomic::Ordering::Relaxed);
    if loaded && dns {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: configuration loaded={loaded}, dns serving={dns}\n"))
            .into_response()
    }
}

async fn metrics(AxumState(admin): AxumState<Admin>) -> Response {
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody<'a> {
    serial: u32,
    zones: &'a [Fqdn],
    ready: bool,
    health_checks: Vec<CheckStatus<'a>>,
    records: Vec<&'a Decision>,
    problems: Vec<&'a Problem>,
    source_errors: &'a [SourceError],
}

async fn status(AxumState(admin): AxumState<Admin>) -> Response {
    let probes = (admin.probe_states)();
    let state = admin.state.lock().await;
    let (model, verdicts) = (state.model(), state.verdicts());
    let serial = state.snapshot.load().serial;
    let now = std::time::SystemTime::now();
    let health_checks = model
        .checks
        .values()
        .map(|check| CheckStatus {
            namespace: &check.id.namespace,
            name: &check.id.name,
            check,
            healthy: verdicts.get(&check.id).unwrap_or(false),
            status: check_status(check, verdicts, probes.get(&check.id), now),
            probe: probes.get(&check.id).cloned(),
        })
        .collect();
    let decisions = Engine::new(model, verdicts).decide_all();
    let mut records: Vec<&Decision> = decisions.values().map(|d| &**d).collect();
    records.sort_by(|a, b| (&a.name, a.rtype).cmp(&(&b.name, b.rtype)));
    Json(StatusBody {
        serial,
        zones: &model.zones,
        ready: state.loaded,
        health_checks,
        records,
        problems: model.problems.iter().collect(),
        source_errors: &state.source_errors,
    })
    .into_response()
}

async fn explain(AxumState(admin): AxumState<Admin>, Query(params): Query<HashMap<String, String>>) -> Response {
    let bad = |m: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": m }))).into_response();
    let Some(name) = params.get("name") else { return bad("the name parameter is required".into()) };
    let name = match Fqdn::parse(name) {
        Ok(n) => n,
        Err(e) => return bad(format!("name: {e}")),
    };
    let type_text = params.get("type").map_or("A", String::as_str).to_ascii_uppercase();
    let code = match type_text.as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "ANY" => 255,
        other => return bad(format!("type: {other:?} is not one of A, AAAA, CNAME, TXT, MX, SRV, SOA, NS, ANY")),
    };
    let state = admin.state.lock().await;
    let snapshot = state.snapshot.load_full();
    let mut engine = Engine::new(state.model(), state.verdicts());
    let wire = crate::snapshot::wire_name(&name);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let answer = snapshot.resolve(&wire, code, &mut rng);
    // The decision path: the queried name and every name a CNAME chain reached.
    let mut steps: Vec<Arc<Decision>> = Vec::new();
    let mut names = vec![name.clone()];
    for (owner, _, _) in &answer.records {
        if let Owner::Node(node) = owner
            && let Ok(n) = Fqdn::parse(&node.name().to_ascii())
            && !names.contains(&n)
        {
            names.push(n);
        }
    }
    for n in &names {
        let types = [record_type(code), Some(crate::resources::RecordType::Cname)];
        for t in types.into_iter().flatten() {
            if let Some(d) = engine.decide(&(n.clone(), t)) {
                steps.push(d);
            }
        }
    }
    let answers: Vec<serde_json::Value> = answer
        .records
        .iter()
        .map(|(owner, _, rr)| {
            let owner = match owner {
                Owner::Query => name.to_string(),
                Owner::Node(node) => node.name().to_ascii(),
            };
            json!({ "name": owner, "type": rr.rdata().record_type().to_string(), "ttl": rr.ttl, "value": rr.rdata().to_string() })
        })
        .collect();
    let rcode = match answer.rcode {
        Rcode::NoError => "NOERROR",
        Rcode::NxDomain => "NXDOMAIN",
        Rcode::Refused => "REFUSED",
    };
    let zone = snapshot.zone_of(&wire).map(|z| snapshot.zones[z].name.to_string());
    let summary = match (answer.rcode, answer.records.is_empty(), zone.is_some()) {
        (Rcode::Refused, _, _) => format!("{name} is outside every served zone: REFUSED"),
        (Rcode::NxDomain, _, _) => format!("{name} has no records of any type: NXDOMAIN with the zone SOA"),
        (_, true, _) => format!("{name} exists but has no {type_text} records: NOERROR with no answers (NODATA) and the zone SOA"),
        _ => format!("{} record(s) in the answer", answer.records.len()),
    };
    Json(json!({
        "name": name,
        "type": type_text,
        "zone": zone,
        "rcode": rcode,
        "summary": summary,
        "serial": snapshot.serial,
        "decisions": steps.iter().map(|d| &**d).collect::<Vec<&Decision>>(),
        "exampleAnswer": answers,
    }))
    .into_response()
}
