//! Label selectors, validated once at the boundary and matched many times.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

use crate::error::{Blame, PolicyError};

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// Most labels (or selector terms) one object may carry. Kubernetes sets no
/// count limit, but a set this large is a mistake or an attack on the
/// identity allocator, so it is refused with an error naming the object.
pub const MAX_LABELS: usize = 64;

/// A matchExpressions operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Requirement {
    /// The label is present with one of the values.
    In(String, BTreeSet<String>),
    /// The label is absent, or present with none of the values.
    NotIn(String, BTreeSet<String>),
    /// The label is present.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A validated label selector. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    /// Every requirement must hold (matchLabels become `In` with one value).
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector matching every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector of exact labels.
    pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let requirements =
            pairs.into_iter().map(|(k, v)| Requirement::In(k.to_string(), BTreeSet::from([v.to_string()]))).collect();
        Self { requirements }
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this is the empty selector.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Validates a wire selector; `field` is its path, for errors.
    pub(crate) fn parse(wire: &meta::LabelSelector, blame: &Blame, field: &str) -> Result<Self, PolicyError> {
        let mut requirements = Vec::new();
        let labels = wire.match_labels.as_ref().map(BTreeMap::len).unwrap_or(0);
        let exprs = wire.match_expressions.as_ref().map(Vec::len).unwrap_or(0);
        if labels + exprs > MAX_LABELS {
            return Err(blame.err(field, format!("{} terms; at most {MAX_LABELS} are allowed", labels + exprs)));
        }
        for (k, v) in wire.match_labels.iter().flatten() {
            let f = format!("{field}.matchLabels.{k}");
            check_key(k).map_err(|m| blame.err(&f, m))?;
            check_value(v).map_err(|m| blame.err(&f, m))?;
            requirements.push(Requirement::In(k.clone(), BTreeSet::from([v.clone()])));
        }
        for (i, e) in wire.match_expressions.iter().flatten().enumerate() {
            let f = format!("{field}.matchExpressions[{i}]");
            check_key(&e.key).map_err(|m| blame.err(format!("{f}.key"), m))?;
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            for v in &values {
                check_value(v).map_err(|m| blame.err(format!("{f}.values"), m))?;
            }
            let r = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(
                        blame.err(format!("{f}.values"), format!("operator {} needs at least one value", e.operator))
                    );
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(blame.err(format!("{f}.values"), format!("operator {} takes no values", e.operator)));
                }
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => {
                    return Err(blame.err(
                        format!("{f}.operator"),
                        format!("unknown operator {other:?}; expected In, NotIn, Exists or DoesNotExist"),
                    ));
                }
            };
            requirements.push(r);
        }
        Ok(Self { requirements })
    }
}

fn check_name(s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("{s:?} is longer than {max} characters"));
    }
    let ok_inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends = s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ends || !s.chars().all(ok_inner) {
        return Err(format!("{s:?} must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"));
    }
    Ok(())
}

/// Checks a label key: an optional DNS-subdomain prefix and a name of at most 63 characters.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return Err(format!("label key {key:?} has an empty or over-long prefix"));
            }
            let dns = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.');
            if !prefix.chars().all(dns) {
                return Err(format!("label key prefix {prefix:?} is not a DNS subdomain"));
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err(format!("label key {key:?} has an empty name"));
    }
    check_name(name, 63).map_err(|m| format!("label key: {m}"))
}

/// Checks a label value: empty, or a name of at most 63 characters.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value, 63).map_err(|m| format!("label value: {m}"))
}

/// Checks an object's own labels (count, keys and values).
pub(crate) fn check_labels(labels: &Labels, blame: &Blame, field: &str) -> Result<(), PolicyError> {
    if labels.len() > MAX_LABELS {
        return Err(blame.err(field, format!("{} labels; at most {MAX_LABELS} are allowed", labels.len())));
    }
    for (k, v) in labels {
        let f = format!("{field}.{k}");
        check_key(k).map_err(|m| blame.err(&f, m))?;
        check_value(v).map_err(|m| blame.err(&f, m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(yaml: &str) -> Result<Selector, PolicyError> {
        let wire: meta::LabelSelector = serde_yaml::from_str(yaml).unwrap();
        Selector::parse(&wire, &Blame::new("NetworkPolicy", Some("x"), "p"), "spec.podSelector")
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn operators_follow_kubernetes() {
        let s = sel("matchExpressions: [{key: app, operator: NotIn, values: [db]}]").unwrap();
        assert!(s.matches(&labels(&[])), "NotIn matches objects without the label");
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "db")])));
        let s = sel("matchExpressions: [{key: app, operator: DoesNotExist}]").unwrap();
        assert!(s.matches(&labels(&[("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "")])));
        let s = sel("{matchLabels: {a: b}, matchExpressions: [{key: c, operator: Exists}]}").unwrap();
        assert!(s.matches(&labels(&[("a", "b"), ("c", "")])));
        assert!(!s.matches(&labels(&[("a", "b")])));
        assert!(sel("{}").unwrap().matches(&labels(&[("any", "thing")])));
    }

    #[test]
    fn bad_selectors_name_the_field() {
        let e = sel("matchExpressions: [{key: app, operator: Near, values: [x]}]").unwrap_err().to_string();
        assert!(e.contains("NetworkPolicy x/p: spec.podSelector.matchExpressions[0].operator"), "{e}");
        let e = sel("matchExpressions: [{key: app, operator: In}]").unwrap_err().to_string();
        assert!(e.contains("needs at least one value"), "{e}");
        let e = sel("matchExpressions: [{key: app, operator: Exists, values: [a]}]").unwrap_err().to_string();
        assert!(e.contains("takes no values"), "{e}");
        let e = sel("matchLabels: {\"bad key!\": x}").unwrap_err().to_string();
        assert!(e.contains("matchLabels.bad key!"), "{e}");
        let many: String = (0..65).map(|i| format!("k{i}: v,")).collect();
        let e = sel(&format!("matchLabels: {{{many}}}")).unwrap_err().to_string();
        assert!(e.contains("at most 64"), "{e}");
    }
}
