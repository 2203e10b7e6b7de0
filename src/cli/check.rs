//! `failover-dns check`: the manifests go through the very reading and validation of
//! `serve --manifests` (the files source into a [`State`]), and every problem is
//! printed with its file, document and field.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::{CheckArgs, Output};
use crate::model::{Fqdn, Kind, ObjectRef, Severity};
use crate::snapshot::ZoneSettings;
use crate::source::files::{Manifests, document_errors, document_numbers};
use crate::state::State;

/// One problem found.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: &'static str,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// `HealthCheck default/web` (none for a file that could not be read or parsed:
    /// its message says where).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.severity, self.file)?;
        if let Some(document) = self.document {
            write!(f, ": document {document}")?;
        }
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("--zone {zone:?}: {message}")]
    Zone { zone: String, message: String },
    #[error("--manifests {path}: {source}")]
    Path { path: String, source: std::io::Error },
}

/// Every problem of the manifests, errors first, each list in file order.
pub fn findings(args: &CheckArgs) -> Result<Vec<Finding>, CheckError> {
    let zones = args
        .zones
        .iter()
        .map(|z| {
            Fqdn::parse(z).map_err(|e| CheckError::Zone { zone: z.clone(), message: e.to_string() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for path in &args.manifests {
        std::fs::metadata(path)
            .map_err(|source| CheckError::Path { path: path.display().to_string(), source })?;
    }
    let settings = ZoneSettings { zones, nameservers: Vec::new(), soa_ttl: 300, negative_ttl: 60 };
    let mut state = State::new(settings);
    state.set_require_delegation(args.require_delegation);
    if args.cluster {
        state.set_cluster_objects();
    }
    let mut manifests = Manifests::new(args.manifests.clone());
    let pending = manifests.read();
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    runtime.block_on(manifests.commit(pending, &mut state)).expect("a State takes every change");

    let mut found = Vec::new();
    for e in manifests.errors() {
        let message = e.message.strip_prefix(&format!("{}: ", e.file)).unwrap_or(&e.message);
        let (document, message) = split_document(message);
        // A document that cannot be read stops the server's reading of its file at the
        // first; here every one is told.
        let text = std::fs::read_to_string(&e.file).unwrap_or_default();
        let all = if document.is_some() { document_errors(&text) } else { Vec::new() };
        if all.is_empty() {
            let file = e.file.clone();
            found.push(Finding {
                severity: "error",
                file,
                document,
                object: None,
                field: None,
                message,
            });
        }
        for (n, message) in all {
            let file = e.file.clone();
            found.push(Finding {
                severity: "error",
                file,
                document: Some(n),
                object: None,
                field: None,
                message,
            });
        }
    }
    let mut documents: HashMap<String, HashMap<(Kind, ObjectRef), usize>> = HashMap::new();
    for problem in &state.model().problems {
        let file = problem.file.clone().unwrap_or_default();
        let in_file = documents.entry(file.clone()).or_insert_with(|| {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            document_numbers(&text).into_iter().map(|(k, id, n)| ((k, id), n)).collect()
        });
        found.push(Finding {
            severity: match problem.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            document: in_file.get(&(problem.kind, problem.object.clone())).copied(),
            file,
            object: Some(format!("{:?} {}", problem.kind, problem.object)),
            field: Some(problem.field.clone()),
            message: problem.message.clone(),
        });
    }
    found.sort_by(|a, b| {
        (a.severity != "error", &a.file, a.document).cmp(&(
            b.severity != "error",
            &b.file,
            b.document,
        ))
    });
    Ok(found)
}

/// `document 3: ...` → (3, "...").
fn split_document(message: &str) -> (Option<usize>, String) {
    let parsed = message.strip_prefix("document ").and_then(|rest| {
        let (n, rest) = rest.split_once(": ")?;
        Some((n.parse().ok()?, rest.to_owned()))
    });
    match parsed {
        Some((n, rest)) => (Some(n), rest),
        None => (None, message.to_owned()),
    }
}

/// Prints the findings; true when none is an error.
pub fn run(args: &CheckArgs) -> Result<bool, CheckError> {
    let found = findings(args)?;
    let errors = found.iter().filter(|f| f.severity == "error").count();
    match args.output {
        Output::Json => {
            let json = serde_json::json!({ "errors": errors, "findings": found });
            println!("{}", serde_json::to_string_pretty(&json).expect("findings serialize"));
        }
        Output::Text => {
            for finding in &found {
                println!("{finding}");
            }
            let warnings = found.len() - errors;
            eprintln!("{errors} error(s), {warnings} warning(s)");
        }
    }
    Ok(errors == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_number_is_taken_out_of_the_message() {
        assert_eq!(split_document("document 3: spec.ttl: bad"), (Some(3), "spec.ttl: bad".into()));
        assert_eq!(split_document("cannot be read"), (None, "cannot be read".into()));
        assert_eq!(split_document("document x: y"), (None, "document x: y".into()));
    }
}
