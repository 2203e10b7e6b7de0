//! NameDelegations in manifest files (standalone mode holds them too, so the same
//! manifests give the same answers in both modes). Only documents of that kind are
//! read here; the record and check parser skips them. They are few and small: every
//! file's delegations are kept, and the union is compared with what was served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::parse::{spec_path, split_documents, yaml_options};
use crate::model::delegation::Delegation;
use crate::resources::NameDelegationSpec;
use crate::view::SourceError;

#[derive(Deserialize)]
struct Doc {
    kind: Option<String>,
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    metadata: Option<Meta>,
    spec: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Meta {
    name: Option<String>,
}

/// The NameDelegations of one file's text; an invalid one is an error naming the file,
/// the document and the field (the file's other delegations still count).
pub fn read(path: &str, text: &str) -> (Vec<Delegation>, Vec<SourceError>) {
    let (mut found, mut errors) = (Vec::new(), Vec::new());
    if !text.contains("NameDelegation") {
        return (found, errors);
    }
    let Ok(pieces) = split_documents(text) else { return (found, errors) };
    for (i, piece) in pieces.iter().enumerate().filter(|(_, p)| p.contains("NameDelegation")) {
        let error = |message: String| SourceError {
            file: path.to_owned(),
            message: format!("document {}: {message}", i + 1),
        };
        let doc: Doc = match serde_saphyr::from_str_with_options(piece, yaml_options()) {
            Ok(doc) => doc,
            Err(_) => continue, // the record parser reports broken YAML
        };
        if doc.kind.as_deref() != Some("NameDelegation") {
            continue;
        }
        let expected = format!("{}/{}", crate::resources::GROUP, crate::resources::VERSION);
        if doc.api_version.as_deref() != Some(&expected) {
            errors.push(error(format!("apiVersion: {:?} is not {expected:?}", doc.api_version)));
            continue;
        }
        let Some(name) = doc.metadata.and_then(|m| m.name).filter(|n| !n.is_empty()) else {
            errors.push(error("NameDelegation: metadata.name: required".into()));
            continue;
        };
        let spec = doc.spec.ok_or_else(|| "spec: required".to_owned()).and_then(|spec| {
            let mut unknown = Vec::new();
            let _ = serde_ignored::deserialize::<_, _, NameDelegationSpec>(&spec, |path| {
                unknown.push(format!("{:?}", spec_path(&path)));
            });
            if !unknown.is_empty() {
                return Err(format!("unknown field {}", unknown.join(", ")));
            }
            serde_path_to_error::deserialize::<_, NameDelegationSpec>(spec)
                .map_err(|e| format!("spec.{}: {}", e.path(), e.inner()))
        });
        match spec.and_then(|spec| Delegation::parse(&name, &spec)) {
            Ok(d) => found.push(d),
            Err(message) => errors.push(error(format!("NameDelegation {name}: {message}"))),
        }
    }
    (found, errors)
}

/// Every file's delegations.
#[derive(Debug, Default)]
pub struct FileDelegations {
    by_file: BTreeMap<PathBuf, (Vec<Delegation>, Vec<SourceError>)>,
    /// What the target holds now, by name.
    served: BTreeMap<String, Delegation>,
}

impl FileDelegations {
    pub fn set_file(&mut self, path: &Path, read: (Vec<Delegation>, Vec<SourceError>)) {
        if read.0.is_empty() && read.1.is_empty() {
            self.by_file.remove(path);
        } else {
            self.by_file.insert(path.to_path_buf(), read);
        }
    }

    pub fn remove_file(&mut self, path: &Path) {
        self.by_file.remove(path);
    }

    pub fn errors(&self) -> impl Iterator<Item = SourceError> + '_ {
        let mut seen = BTreeMap::new();
        let duplicates = self.by_file.iter().flat_map(|(path, (found, _))| {
            found
                .iter()
                .filter_map(|d| {
                    let first = seen.entry(d.name.to_string()).or_insert_with(|| path.clone());
                    (first != path).then(|| SourceError {
                        file: path.display().to_string(),
                        message: format!(
                            "NameDelegation {}: also in {}; the first file's counts",
                            d.name,
                            first.display()
                        ),
                    })
                })
                .collect::<Vec<_>>()
        });
        let duplicates: Vec<SourceError> = duplicates.collect();
        self.by_file.values().flat_map(|(_, errors)| errors.iter().cloned()).chain(duplicates)
    }

    /// The changes that bring the target to the files' delegations (the first file
    /// wins a name given twice).
    pub fn changes(&mut self) -> Vec<(String, Option<Delegation>)> {
        let mut now: BTreeMap<String, Delegation> = BTreeMap::new();
        for (found, _) in self.by_file.values() {
            for d in found {
                now.entry(d.name.to_string()).or_insert_with(|| d.clone());
            }
        }
        let mut changes = Vec::new();
        for (name, d) in &now {
            if self.served.get(name) != Some(d) {
                changes.push((name.clone(), Some(d.clone())));
            }
        }
        for name in self.served.keys().filter(|n| !now.contains_key(*n)) {
            changes.push((name.clone(), None));
        }
        self.served = now;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "---\napiVersion: failoverdns.io/v1alpha1\nkind: NameDelegation\nmetadata: {name: shop}\nspec: {names: [\"*.shop.example.com\"], namespaces: [team-a]}\n---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: x}\nspec: {name: a.example.com, type: A, values: [\"192.0.2.1\"]}\n---\napiVersion: failoverdns.io/v1alpha1\nkind: NameDelegation\nmetadata: {name: bad}\nspec: {names: [\"*.x.example.com\"]}\n";

    #[test]
    fn delegations_are_read_and_a_bad_one_names_the_field() {
        let (found, errors) = read("f.yaml", FILE);
        assert_eq!(found.len(), 1);
        assert_eq!(&*found[0].name, "shop");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("NameDelegation bad: spec.namespaces"), "{errors:?}");
        assert!(errors[0].message.starts_with("document 3"));
    }

    #[test]
    fn an_unknown_field_is_refused_naming_it() {
        let typo = "apiVersion: failoverdns.io/v1alpha1\nkind: NameDelegation\nmetadata: {name: shop}\nspec: {names: [\"*.shop.example.com\"], namespace: [team-a]}\n";
        let (found, errors) = read("f.yaml", typo);
        assert!(found.is_empty());
        assert!(
            errors[0].message.contains(r#"NameDelegation shop: unknown field "spec.namespace""#),
            "{errors:?}"
        );
    }

    #[test]
    fn changes_follow_the_files() {
        let mut files = FileDelegations::default();
        files.set_file(Path::new("f.yaml"), read("f.yaml", FILE));
        let first = files.changes();
        assert_eq!(first.len(), 1);
        assert!(files.changes().is_empty(), "nothing changed");
        files.remove_file(Path::new("f.yaml"));
        assert_eq!(files.changes(), vec![("shop".to_owned(), None)]);
    }
}
