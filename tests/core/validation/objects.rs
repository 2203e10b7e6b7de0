//! Records and checks that read Kubernetes objects (spec section 7): refused in
//! manifest files with the field named; in cluster mode a record's data follows its
//! object, and resolving it change by change ends where a model built with the objects
//! already there does.

use super::*;
use failover_dns::model::objects::{
    Facts, ObjectChange, ObjectKind, ServiceFacts, ServiceType, SliceFacts,
};
use failover_dns::model::{Model, ObjectRef};
use failover_dns::resources::{FailoverRecordSpec, ServiceRef, ServiceValues, ValuesFrom};

fn from_service(name: &str, service: &str) -> FailoverRecordSpec {
    let mut spec = simple_a(name, &[]);
    spec.values = None;
    spec.values_from = Some(ValuesFrom {
        service: Some(ServiceValues { name: service.into(), address: None }),
        ..ValuesFrom::default()
    });
    spec
}

fn endpoints_check(service: &str) -> HealthCheckSpec {
    HealthCheckSpec {
        type_: HealthCheckType::Endpoints,
        service_ref: Some(ServiceRef { name: service.into(), port: None }),
        ..HealthCheckSpec::default()
    }
}

#[test]
fn manifest_files_refuse_objects_as_values_and_targets_naming_the_field() {
    let mut w = world();
    w.record("from-service", from_service("db.example.com", "db"));
    w.record("plain", simple_a("plain.example.com", &["192.0.2.1"]));
    w.check("by-endpoints", endpoints_check("db"));
    let model = w.model();
    assert_rejected(&model, "from-service", "spec.valuesFrom");
    assert_served(&model, "plain");
    let problem = model.problems.iter().find(|p| p.object.name.as_ref() == "by-endpoints").unwrap();
    assert_eq!(problem.field, "spec.serviceRef");
    assert!(problem.message.contains("cluster mode"), "{}", problem.message);
}

fn service(ip: &str) -> Option<Facts> {
    Some(Facts::Service(ServiceFacts {
        service_type: ServiceType::ClusterIp,
        cluster_ips: Box::new([ip.parse().unwrap()]),
        external_name: None,
        load_balancer: Box::new([]),
    }))
}

fn change(kind: ObjectKind, name: &str, facts: Option<Facts>) -> ObjectChange {
    ObjectChange { kind, id: ObjectRef::new("default", name), facts }
}

fn values(model: &Model, name: &str) -> Vec<String> {
    let sets = &model.sets[&key(name, RecordType::A)];
    match &sets[0].data {
        RecordData::Object(o) => o.values.iter().map(|r| r.rdata().to_string()).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn in_cluster_mode_a_record_follows_its_service_change_by_change() {
    let w = {
        let mut w = world();
        w.record("db", from_service("db.example.com", "db"));
        w.record("other", from_service("other.example.com", "other"));
        w
    };
    let cluster_model = |objects: Vec<ObjectChange>| {
        let mut m = Model::new(&w.zones);
        m.set_cluster_objects(true);
        m.set_objects(objects);
        let changes = w.records.iter().cloned().map(model::Change::Record);
        m.apply(changes);
        m
    };
    let mut live = cluster_model(Vec::new());
    assert_eq!(values(&live, "db.example.com"), Vec::<String>::new(), "no Service yet");

    let (applied, checks) =
        live.set_objects(vec![change(ObjectKind::Service, "db", service("10.0.0.1"))]);
    assert!(checks.is_empty());
    assert_eq!(applied.keys.len(), 1, "only db's name is decided again: {:?}", applied.keys);
    assert_eq!(values(&live, "db.example.com"), ["10.0.0.1"]);

    let (applied, _) =
        live.set_objects(vec![change(ObjectKind::Service, "db", service("10.0.0.1"))]);
    assert!(applied.keys.is_empty(), "an unchanged Service decides nothing again");
    live.set_objects(vec![change(ObjectKind::Service, "db", service("10.0.0.2"))]);
    let scratch = cluster_model(vec![change(ObjectKind::Service, "db", service("10.0.0.2"))]);
    assert_eq!(values(&live, "db.example.com"), values(&scratch, "db.example.com"));
    assert_eq!(live.sets, scratch.sets, "change by change ends where a fresh model does");

    let (applied, _) = live.set_objects(vec![change(ObjectKind::Service, "db", None)]);
    assert_eq!(applied.keys.len(), 1);
    assert!(values(&live, "db.example.com").is_empty());
}

#[test]
fn an_endpoints_check_is_told_when_its_services_slices_change() {
    let mut m = Model::new(&[fqdn(ZONE)]);
    m.set_cluster_objects(true);
    m.apply([model::Change::Check(input("default", "db", 1, endpoints_check("db")))]);
    assert!(m.checks.contains_key(&ObjectRef::new("default", "db")), "{:?}", m.problems);
    let slice = Facts::EndpointSlice(SliceFacts {
        service: "db".into(),
        ports: Box::new([]),
        ready_endpoints: 2,
        ready_addresses: Box::new([]),
    });
    let (_, checks) = m.set_objects(vec![change(ObjectKind::EndpointSlice, "db-1", Some(slice))]);
    assert_eq!(checks, [ObjectRef::new("default", "db")]);
    let (_, checks) =
        m.set_objects(vec![change(ObjectKind::Service, "unrelated", service("10.0.0.9"))]);
    assert!(checks.is_empty(), "another Service's change tells nobody");
}
