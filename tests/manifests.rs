//! Parsing manifest files: which documents are taken, and errors that name the file,
//! the document and the field.

use failover_dns::source::files::{Object, parse_file};

fn error_of(yaml: &str) -> String {
    match parse_file("m.yaml", yaml.as_bytes()) {
        Ok(objects) => panic!("accepted: {objects:?}"),
        Err(e) => e.to_string(),
    }
}

const RECORD: &str = "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: web}\nspec: {name: web.example.test, type: A, values: [192.0.2.1]}\n";

#[test]
fn empty_documents_and_other_kinds_are_skipped() {
    let yaml = format!("---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n{RECORD}");
    let objects = parse_file("m.yaml", yaml.as_bytes()).unwrap();
    assert_eq!(objects.len(), 1);
    let Object::FailoverRecord(record) = &objects[0] else { panic!("{objects:?}") };
    assert_eq!((&*record.id.namespace, &*record.id.name), ("default", "web"));
    assert_eq!(record.file.as_deref(), Some("m.yaml"));
}

#[test]
fn a_document_that_is_not_an_object_is_an_error_naming_it() {
    let e = error_of(&format!("{RECORD}---\n- just\n- a list\n"));
    assert!(e.starts_with("m.yaml: document 2: expected a mapping"), "{e}");
}

#[test]
fn kind_and_api_version_must_be_strings() {
    let e = error_of("apiVersion: failoverdns.io/v1alpha1\nkind: [FailoverRecord]\n");
    assert_eq!(e, "m.yaml: document 1: kind: expected a string");
    let e = error_of("apiVersion: 1\nkind: HealthCheck\n");
    assert_eq!(e, "m.yaml: document 1: apiVersion: expected a string");
}

#[test]
fn a_wrong_api_version_is_named() {
    let e = error_of(&RECORD.replace("v1alpha1", "v1"));
    assert!(e.contains(r#"apiVersion: "failoverdns.io/v1" is not "failoverdns.io/v1alpha1""#), "{e}");
}

#[test]
fn a_bad_field_is_named_with_its_path() {
    let e = error_of(&RECORD.replace("type: A", "type: AXFR"));
    assert!(e.starts_with("m.yaml: document 1: FailoverRecord web: spec.type:"), "{e}");
}
