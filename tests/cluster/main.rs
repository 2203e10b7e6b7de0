//! Against a real kube-apiserver and etcd (`support::cluster::ControlPlane`, built
//! into ~/.cache/failover-dns/bin by `scripts/control-plane.sh build`): the
//! controller in a cluster, the CRDs, the control-plane harness itself, and the
//! deployment artifacts (kustomize, Helm, RBAC, Dockerfile, CoreDNS).

#[path = "../support/mod.rs"]
mod support;

mod budget;
mod cluster;
mod cluster_crds;
mod cluster_harness;
mod deploy;
mod election;
mod objects;
mod quorum;
mod recovery;
mod tenants;
