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
    let yaml =
        format!("---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n{RECORD}");
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
    assert!(
        e.contains(r#"apiVersion: "failoverdns.io/v1" is not "failoverdns.io/v1alpha1""#),
        "{e}"
    );
}

#[test]
fn a_bad_field_is_named_with_its_path() {
    let e = error_of(&RECORD.replace("type: A", "type: AXFR"));
    assert!(e.starts_with("m.yaml: document 1: FailoverRecord web: spec.type:"), "{e}");
}

#[test]
fn document_markers_split_where_yaml_does() {
    // A directive before the first marker, content on a marker line, `...` ending a
    // document, an indented `---` inside a block scalar (not a marker), a comment-only prefix.
    let check = |name: &str| {
        format!(
            "apiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}}}\nspec: {{type: TCP, ipAddress: 192.0.2.1, port: 80}}\n"
        )
    };
    let txt = "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: txt}\nspec:\n  name: t.example.test\n  type: TXT\n  values:\n  - |\n    ---\n    not a marker\n";
    let yaml = format!(
        "# header\n%YAML 1.1\n---\n{}...\n{}--- {{apiVersion: failoverdns.io/v1alpha1, kind: HealthCheck, metadata: {{name: inline}}, spec: {{type: TCP, ipAddress: 192.0.2.1, port: 81}}}}\n---\n{txt}",
        check("a"),
        check("b")
    );
    let objects = parse_file("m.yaml", yaml.as_bytes()).unwrap();
    let names: Vec<String> = objects
        .iter()
        .map(|o| match o {
            Object::HealthCheck(i) => i.id.name.to_string(),
            Object::FailoverRecord(i) => i.id.name.to_string(),
        })
        .collect();
    assert_eq!(names, ["a", "b", "inline", "txt"]);
    let Object::FailoverRecord(r) = &objects[3] else { panic!() };
    assert_eq!(r.spec.values.as_deref(), Some(&["---\nnot a marker\n".to_string()][..]));
}

#[test]
fn a_spec_before_its_kind_is_read_the_same() {
    let yaml = "spec: {name: web.example.test, type: A, values: [192.0.2.1]}\nmetadata: {name: web, namespace: x}\nkind: FailoverRecord\napiVersion: failoverdns.io/v1alpha1\n";
    let objects = parse_file("m.yaml", yaml.as_bytes()).unwrap();
    let Object::FailoverRecord(r) = &objects[0] else { panic!("{objects:?}") };
    assert_eq!(
        (&*r.id.namespace, &*r.id.name, r.spec.name.as_str()),
        ("x", "web", "web.example.test")
    );
    let e = error_of(&yaml.replace("type: A", "type: AXFR"));
    assert!(e.starts_with("m.yaml: document 1: FailoverRecord web: spec.type:"), "{e}");
    let e = error_of(
        "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: web}\n",
    );
    assert_eq!(e, "m.yaml: document 1: FailoverRecord web: spec: required");
}

#[test]
fn yaml_errors_name_the_line_and_the_field() {
    let e = error_of(&RECORD.replace("{name: web}", "{name: web, name: x}"));
    assert_eq!(
        e,
        "m.yaml: document 1: metadata: duplicate mapping key `name` is not allowed here at line 3, column 23"
    );
    let e = error_of(&RECORD.replace("[192.0.2.1]}", "[192.0.2.1]"));
    assert!(e.starts_with("m.yaml: document 1: spec: unclosed bracket '{' at line 4"), "{e}");
}

#[test]
fn a_nesting_bomb_is_refused_at_the_depth_limit() {
    // 100,000 levels: refused once past the limit, not after reading them all.
    let depth = 100_000;
    let yaml = format!(
        "{}spec: {}{}\n",
        RECORD.lines().take(3).map(|l| format!("{l}\n")).collect::<String>(),
        "{a: ".repeat(depth),
        "}".repeat(depth)
    );
    let e = error_of(&yaml);
    assert!(e.starts_with("m.yaml: document 1: spec.a."), "{e}");
    assert!(e.contains("YAML document nested deeper than 32 levels at line 4"), "{e}");
    // Block style too, and whatever the kind.
    let mut yaml = String::from("apiVersion: v1\nkind: ConfigMap\ndata:\n");
    for level in 1..200 {
        yaml += &format!("{}a:\n", " ".repeat(level));
    }
    assert!(error_of(&yaml).contains("nested deeper than 32 levels"));
}

#[test]
fn an_alias_bomb_is_refused_before_it_expands() {
    // Ten levels of ten aliases each: 10^10 nodes if expanded.
    let mut yaml = String::from(
        "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: web}\nx0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for level in 1..10 {
        let p = level - 1;
        yaml += &format!("x{level}: &a{level} [{}]\n", vec![format!("*a{p}"); 10].join(", "));
    }
    yaml += "spec: {name: web.example.test, type: A, values: [192.0.2.1]}\n";
    let e = error_of(&yaml);
    assert!(e.starts_with("m.yaml: document 1: x"), "{e}");
    assert!(e.contains("too large or too complex") && e.contains("> 10000"), "{e}");
    // Many aliases of a small anchor are refused by count.
    let many = format!(
        "apiVersion: v1\nkind: ConfigMap\nx: &a y\nlist: [{}]\n",
        vec!["*a"; 2000].join(", ")
    );
    assert!(error_of(&many).contains("more than 1000 anchors or aliases"), "{}", error_of(&many));
    // A few aliases are fine.
    let fine = RECORD.replace("values: [192.0.2.1]", "values: [&ip 192.0.2.1]")
        + "---\n"
        + &RECORD.replace("{name: web}", "{name: web2}");
    assert_eq!(parse_file("m.yaml", fine.as_bytes()).unwrap().len(), 2);
}

#[test]
fn a_file_of_too_many_documents_is_refused() {
    use failover_dns::source::files::MAX_DOCUMENTS;
    let e = error_of(&"---\n".repeat(MAX_DOCUMENTS + 5));
    assert_eq!(
        e,
        format!(
            "m.yaml: document {}: a manifest file may hold at most {MAX_DOCUMENTS} documents",
            MAX_DOCUMENTS + 1
        )
    );
    // Up to the limit, empty documents are just skipped.
    assert!(parse_file("m.yaml", "---\n".repeat(1000).as_bytes()).unwrap().is_empty());
}

/// As the API server's strict field validation: a field the kind does not have is an
/// error naming it, not a silent default.
#[test]
fn unknown_fields_are_refused_naming_them() {
    let check = "apiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {name: web}\nspec: {type: HTTP, ipAddress: 192.0.2.1, requestIntervall: 200ms}\n";
    let e = error_of(check);
    assert!(e.contains("m.yaml"), "{e}");
    assert!(e.contains(r#"HealthCheck web: unknown field "spec.requestIntervall""#), "{e}");
    // Deeper, and beside the spec.
    let record = "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: web}\nspec: {name: web.example.test, type: A, valuesFrom: {service: {name: db, adress: Endpoints}}, geo: eu}\nstatuz: {}\n";
    let e = error_of(record);
    for field in [r#""spec.valuesFrom.service.adress""#, r#""spec.geo""#, r#""statuz""#] {
        assert!(e.contains(field), "{field} in {e}");
    }
    // What the API server gives back (status, metadata it fills in) is not unknown, and
    // other kinds are not this parser's business.
    let served = format!(
        "{RECORD}status: {{serving: true}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\nextra: 1\n"
    );
    let served = served
        .replace("metadata: {name: web}", "metadata: {name: web, uid: 1, resourceVersion: \"7\"}");
    assert_eq!(parse_file("m.yaml", served.as_bytes()).unwrap().len(), 1);
}
