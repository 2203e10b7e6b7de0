//! Who may serve which names: `NameDelegation`s (cluster-scoped) name DNS names
//! (`*.SUFFIX`: every name below SUFFIX, not SUFFIX itself) and the namespaces (a list
//! and/or a label selector) that may serve them. While at least one exists, or
//! `--require-delegation` is set, a record set is served only when a delegation covers
//! both its name and its namespace; namespaces one delegation covers for a name may
//! share that name. Pure data; the model settles the names a change covers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::Fqdn;
use crate::resources::{LabelSelector, NameDelegationSpec};

/// One name a delegation covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamePattern {
    Exact(Fqdn),
    /// `*.SUFFIX`: the names below SUFFIX (as `.SUFFIX.` ends them).
    Below(String),
}

impl NamePattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().strip_prefix("*.") {
            Some(suffix) => Ok(NamePattern::Below(format!(".{}", Fqdn::parse(suffix)?.as_str()))),
            None => Ok(NamePattern::Exact(Fqdn::parse(text)?)),
        }
    }

    pub fn matches(&self, name: &Fqdn) -> bool {
        match self {
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Below(suffix) => name.as_str().ends_with(suffix.as_str()),
        }
    }
}

/// A label selector, as Kubernetes evaluates it (every requirement must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    pub fn parse(selector: &LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::In(key.clone(), BTreeSet::from([value.clone()])));
        }
        for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            let field = format!("spec.namespaceSelector.matchExpressions[{i}]");
            requirements.push(match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!("{field}.values: required with operator {}", e.operator));
                }
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => {
                    return Err(format!(
                        "{field}.operator: {other:?} is not In, NotIn, Exists or DoesNotExist"
                    ));
                }
            });
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// One valid NameDelegation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    pub name: Arc<str>,
    pub names: Vec<NamePattern>,
    pub namespaces: BTreeSet<Arc<str>>,
    pub selector: Option<Selector>,
}

impl Delegation {
    /// Validates a NameDelegation; the error names the field.
    pub fn parse(name: &str, spec: &NameDelegationSpec) -> Result<Self, String> {
        if spec.names.is_empty() {
            return Err("spec.names: at least one name".into());
        }
        let names = spec
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| NamePattern::parse(n).map_err(|e| format!("spec.names[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let namespaces: BTreeSet<Arc<str>> =
            spec.namespaces.iter().flatten().map(|n| Arc::from(n.as_str())).collect();
        let selector = spec.namespace_selector.as_ref().map(Selector::parse).transpose()?;
        if namespaces.is_empty() && selector.is_none() {
            return Err("spec.namespaces: name namespaces, or give a namespaceSelector".into());
        }
        Ok(Self { name: Arc::from(name), names, namespaces, selector })
    }

    pub fn covers_name(&self, name: &Fqdn) -> bool {
        self.names.iter().any(|p| p.matches(name))
    }

    fn covers_namespace(&self, namespace: &str, labels: &Labels) -> bool {
        self.namespaces.contains(namespace)
            || self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(labels.get(namespace).map_or(&EMPTY, |l| l.as_ref())))
    }
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

type Labels = FxHashMap<Arc<str>, Arc<BTreeMap<String, String>>>;

/// Every delegation, the namespaces' labels their selectors look at, and whether
/// delegation is required even when none exists.
#[derive(Clone, Debug, Default)]
pub struct Delegations {
    pub required: bool,
    by_name: BTreeMap<Arc<str>, Arc<Delegation>>,
    labels: Labels,
}

impl Delegations {
    /// Whether the rule applies at all.
    pub fn active(&self) -> bool {
        self.required || !self.by_name.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Delegation>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Delegation>> {
        self.by_name.values()
    }

    /// Sets or removes one delegation; returns the old one.
    pub fn put(&mut self, name: &str, delegation: Option<Delegation>) -> Option<Arc<Delegation>> {
        match delegation {
            Some(d) => self.by_name.insert(Arc::from(name), Arc::new(d)),
            None => self.by_name.remove(name),
        }
    }

    /// A namespace's labels (None: it is gone); true when they changed.
    pub fn set_labels(
        &mut self,
        namespace: &str,
        labels: Option<BTreeMap<String, String>>,
    ) -> bool {
        match labels {
            Some(labels) => {
                let labels = Arc::new(labels);
                self.labels
                    .insert(Arc::from(namespace), labels.clone())
                    .is_none_or(|old| old != labels)
            }
            None => self.labels.remove(namespace).is_some(),
        }
    }

    /// Whether some delegation selects namespaces by label (only then do labels matter).
    pub fn uses_labels(&self) -> bool {
        self.by_name.values().any(|d| d.selector.is_some())
    }

    /// Whether a record set of `namespace` may serve `name`.
    pub fn allows(&self, name: &Fqdn, namespace: &str) -> bool {
        !self.active()
            || self
                .by_name
                .values()
                .any(|d| d.covers_name(name) && d.covers_namespace(namespace, &self.labels))
    }

    /// Whether one delegation covers `name` for both namespaces (they may share it).
    pub fn shared(&self, name: &Fqdn, a: &str, b: &str) -> bool {
        self.by_name.values().any(|d| {
            d.covers_name(name)
                && d.covers_namespace(a, &self.labels)
                && d.covers_namespace(b, &self.labels)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::LabelSelectorRequirement;

    fn spec(names: &[&str], namespaces: &[&str]) -> NameDelegationSpec {
        NameDelegationSpec {
            names: names.iter().map(|n| n.to_string()).collect(),
            namespaces: Some(namespaces.iter().map(|n| n.to_string()).collect()),
            namespace_selector: None,
        }
    }

    fn name(n: &str) -> Fqdn {
        Fqdn::parse(n).unwrap()
    }

    #[test]
    fn a_wildcard_covers_the_names_below_not_the_suffix() {
        let p = NamePattern::parse("*.shop.example.com").unwrap();
        assert!(p.matches(&name("www.shop.example.com")));
        assert!(p.matches(&name("a.b.shop.example.com")));
        assert!(!p.matches(&name("shop.example.com")));
        assert!(!p.matches(&name("myshop.example.com")));
        assert!(NamePattern::parse("www.Example.com").unwrap().matches(&name("www.example.com.")));
    }

    #[test]
    fn without_delegations_everything_is_allowed_unless_required() {
        let mut d = Delegations::default();
        assert!(d.allows(&name("www.example.com"), "team-a"));
        d.required = true;
        assert!(!d.allows(&name("www.example.com"), "team-a"));
    }

    #[test]
    fn a_delegation_allows_exactly_its_names_and_namespaces_and_lets_them_share() {
        let mut d = Delegations::default();
        let shop = Delegation::parse("shop", &spec(&["*.shop.example.com"], &["team-a", "team-b"]));
        d.put("shop", Some(shop.unwrap()));
        let www = name("www.shop.example.com");
        assert!(d.allows(&www, "team-a") && d.allows(&www, "team-b"));
        assert!(!d.allows(&www, "team-c"));
        assert!(!d.allows(&name("api.example.com"), "team-a"), "active: names not covered");
        assert!(d.shared(&www, "team-a", "team-b"));
        assert!(!d.shared(&www, "team-a", "team-c"));
    }

    #[test]
    fn a_label_selector_follows_the_namespaces_labels() {
        let mut d = Delegations::default();
        let selector = LabelSelector {
            match_labels: Some([("tenant".to_string(), "payments".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "frozen".into(),
                operator: "DoesNotExist".into(),
                values: None,
            }]),
        };
        let mut s = spec(&["pay.example.com"], &[]);
        s.namespaces = None;
        s.namespace_selector = Some(selector);
        d.put("pay", Some(Delegation::parse("pay", &s).unwrap()));
        let pay = name("pay.example.com");
        assert!(!d.allows(&pay, "team-a"), "no labels yet");
        let labels = |pairs: &[(&str, &str)]| {
            Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        assert!(d.set_labels("team-a", labels(&[("tenant", "payments")])));
        assert!(d.allows(&pay, "team-a"));
        assert!(!d.set_labels("team-a", labels(&[("tenant", "payments")])), "unchanged");
        d.set_labels("team-a", labels(&[("tenant", "payments"), ("frozen", "yes")]));
        assert!(!d.allows(&pay, "team-a"));
    }

    #[test]
    fn invalid_delegations_name_the_field() {
        let err = |s: NameDelegationSpec| Delegation::parse("x", &s).unwrap_err();
        assert!(err(spec(&[], &["a"])).starts_with("spec.names"));
        assert!(err(spec(&["bad name!"], &["a"])).starts_with("spec.names[0]"));
        assert!(err(spec(&["a.example.com"], &[])).starts_with("spec.namespaces"));
    }
}
