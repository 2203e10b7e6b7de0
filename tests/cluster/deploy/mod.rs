//! The deployment artifacts against the real thing: `deploy/` (kustomize), the Helm
//! chart `deploy/helm/failover-dns`, the Dockerfile, the CoreDNS snippets and the
//! README's flag table. Manifests go through a real kube-apiserver
//! (tests/support/cluster.rs) with RBAC on, and the controller binary runs as the
//! deployed ServiceAccount (a static token of that identity), so the ClusterRole is
//! proven both minimal (`kubectl auth can-i`) and sufficient (a failover scenario with
//! no 403 in the log). kubectl and helm are the cached builds of
//! `scripts/control-plane.sh build`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::support::cluster::{ControlPlane, tool};
use crate::support::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

mod artifacts;
mod chart;
mod coredns;
mod manifests;
mod optional;
mod rbac;

const NS: &str = "failover-dns";
/// The namespace deploy/namespaced/ watches.
const WATCHED: &str = "apps";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn path(rel: &str) -> String {
    repo().join(rel).to_str().unwrap().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a tool, asserts success, returns stdout.
fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `kubectl kustomize deploy/DIR` (DIR "" for deploy/ itself).
fn kustomize(dir: &str) -> String {
    run(&tool("kubectl"), &["kustomize", &path(&format!("deploy/{dir}"))])
}

/// `helm template failover-dns deploy/helm/failover-dns --namespace failover-dns ARGS`.
fn helm_template(args: &[&str]) -> String {
    let chart = path("deploy/helm/failover-dns");
    let mut all = vec!["template", "failover-dns", &chart, "--namespace", NS];
    all.extend_from_slice(args);
    run(&tool("helm"), &all)
}

/// What `helm template ARGS` renders but the CRDs and the hooks (the `helm test` pod):
/// the objects kustomize renders too.
fn helm_release_objects(args: &[&str]) -> Vec<Value> {
    objects(&helm_template(args))
        .into_iter()
        .filter(|o| {
            o["kind"] != "CustomResourceDefinition"
                && o.pointer("/metadata/annotations/helm.sh~1hook").is_none()
        })
        .collect()
}

/// The objects of a YAML stream (empty documents left out).
fn objects(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Option<Value>>(yaml)
        .expect("valid YAML")
        .into_iter()
        .flatten()
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered objects"))
}

fn assert_clean_apply(cp: &ControlPlane, what: &str, args: &[&str], stdin: Option<&str>) {
    let out = cp.kubectl_with_stdin(args, stdin);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{what}: kubectl {args:?} failed:\n{stderr}");
    // PodSecurity ("restricted" on the namespace) and deprecations report as warnings.
    assert!(!stderr.contains("Warning"), "{what}: warnings from the API server:\n{stderr}");
}
