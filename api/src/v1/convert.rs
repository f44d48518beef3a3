//! The gRPC transport carries the same documents as the HTTP API; these
//! conversions are the only place the two shapes meet, so a document cannot
//! mean one thing as JSON and another as protobuf.
//!
//! A document becomes a message infallibly (`From`). A message becomes a
//! document through `TryFrom`, which checks what protobuf cannot say: an
//! enumeration a document requires is set and known, a required sub-message
//! is present, a port fits in 16 bits. The error names the field at fault as
//! a path from the message converted (e.g. `items[3].source.kind`).
//!
//! Lists of documents and pages travel as small wrapper messages
//! (`NamespaceList`, `FlowPage`, …), which convert to and from `Vec` and
//! [`Page`](super::Page). The three requests whose id is in the URL path over HTTP
//! (approve/reject, apply a review, release) convert to and from `(id, body)`.

use super::{Problem, WhoAmI};
use crate::controller::v1 as pb;

/// A gRPC message that does not make a valid document, naming the field: the
/// server answers it as an invalid argument, a client as a broken server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConvertError {
    /// The field at fault, as a path from the message converted (`items[3].verdict`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConvertError {
    /// An error in `field` (of the message being converted).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// The same error seen from the message that holds `field`: the path
    /// gets `field.` in front, so nested errors name the whole way down.
    fn within(self, field: &str) -> Self {
        let path = if self.field.is_empty() { field.to_owned() } else { format!("{field}.{}", self.field) };
        Self { field: path, message: self.message }
    }
}

/// A request the server cannot turn into a document is the caller's fault.
impl From<ConvertError> for tonic::Status {
    fn from(e: ConvertError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// A required sub-message, converted; absent is an error naming `field`.
fn required<P, T>(value: Option<P>, field: &str) -> Result<T, ConvertError>
where
    T: TryFrom<P, Error = ConvertError>,
{
    match value {
        Some(v) => T::try_from(v).map_err(|e| e.within(field)),
        None => Err(ConvertError::new(field, "missing")),
    }
}

/// An optional sub-message, converted when present.
fn optional<P, T>(value: Option<P>, field: &str) -> Result<Option<T>, ConvertError>
where
    T: TryFrom<P, Error = ConvertError>,
{
    value.map(|v| T::try_from(v).map_err(|e| e.within(field))).transpose()
}

/// A repeated sub-message, converted item by item; an error names the index.
fn list<P, T>(values: Vec<P>, field: &str) -> Result<Vec<T>, ConvertError>
where
    T: TryFrom<P, Error = ConvertError>,
{
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| T::try_from(v).map_err(|e| e.within(&format!("{field}[{i}]"))))
        .collect()
}

/// Documents to messages, item by item.
fn to_pb<T, P: From<T>>(values: Vec<T>) -> Vec<P> {
    values.into_iter().map(P::from).collect()
}

/// A port: protobuf has no 16-bit integer, so the range is checked here.
fn port(value: u32, field: &str) -> Result<u16, ConvertError> {
    u16::try_from(value).map_err(|_| ConvertError::new(field, format!("{value} is not a port (at most 65535)")))
}

/// An optional port.
fn optional_port(value: Option<u32>, field: &str) -> Result<Option<u16>, ConvertError> {
    value.map(|v| port(v, field)).transpose()
}

/// An optional enumeration: absent is `None`; present, it must be set and known.
fn optional_enum<T>(
    value: Option<i32>,
    field: &str,
    decode: fn(i32, &str) -> Result<T, ConvertError>,
) -> Result<Option<T>, ConvertError> {
    value.map(|v| decode(v, field)).transpose()
}

/// A page of documents and its wrapper message (`FlowPage`, …), both ways.
macro_rules! page {
    ($pb:ty, $doc:ty) => {
        impl From<$crate::v1::Page<$doc>> for $pb {
            fn from(page: $crate::v1::Page<$doc>) -> Self {
                Self { items: $crate::v1::convert::to_pb(page.items), next_cursor: page.next_cursor }
            }
        }

        impl TryFrom<$pb> for $crate::v1::Page<$doc> {
            type Error = $crate::v1::convert::ConvertError;
            fn try_from(page: $pb) -> Result<Self, Self::Error> {
                Ok(Self { items: $crate::v1::convert::list(page.items, "items")?, next_cursor: page.next_cursor })
            }
        }
    };
}

/// A list of documents and its wrapper message (`NamespaceList`, …), both ways.
macro_rules! items {
    ($pb:ty, $doc:ty) => {
        impl From<Vec<$doc>> for $pb {
            fn from(items: Vec<$doc>) -> Self {
                Self { items: $crate::v1::convert::to_pb(items) }
            }
        }

        impl TryFrom<$pb> for Vec<$doc> {
            type Error = $crate::v1::convert::ConvertError;
            fn try_from(list: $pb) -> Result<Self, Self::Error> {
                $crate::v1::convert::list(list.items, "items")
            }
        }
    };
}

// After the macros, so the submodules see them.
mod baselines;
mod blocks;
mod enums;
mod exposure;
mod flows;
mod graph;
mod inventory;
mod k8s;
mod policies;
mod quarantine;
mod review;
mod trail;

pub use enums::{
    anomaly_kind, app_protocol, direction, event_type, level, mode, node_kind, outcome, peer_kind, phase,
    quarantine_state, reason, review_status, role, side, target_kind, verdict,
};

impl From<Problem> for pb::Problem {
    fn from(p: Problem) -> Self {
        Self {
            kind: p.kind,
            title: p.title,
            status: u32::from(p.status),
            detail: p.detail,
            object: p.object,
            field: p.field,
        }
    }
}

impl TryFrom<pb::Problem> for Problem {
    type Error = ConvertError;
    fn try_from(p: pb::Problem) -> Result<Self, ConvertError> {
        let status = u16::try_from(p.status)
            .map_err(|_| ConvertError::new("status", format!("{} is not an HTTP status", p.status)))?;
        Ok(Self { kind: p.kind, title: p.title, status, detail: p.detail, object: p.object, field: p.field })
    }
}

impl From<WhoAmI> for pb::WhoAmI {
    fn from(w: WhoAmI) -> Self {
        Self {
            user: w.user,
            role: pb::Role::from(w.role) as i32,
            namespaces: w.namespaces.map(|values| pb::StringList { values }),
            via: w.via,
        }
    }
}

impl TryFrom<pb::WhoAmI> for WhoAmI {
    type Error = ConvertError;
    fn try_from(w: pb::WhoAmI) -> Result<Self, ConvertError> {
        Ok(Self { user: w.user, role: role(w.role, "role")?, namespaces: w.namespaces.map(|l| l.values), via: w.via })
    }
}

#[cfg(test)]
mod tests {
    use bulkhead_model::Role;

    use super::*;

    #[test]
    fn caller_and_problem_round_trip() -> Result<(), ConvertError> {
        for namespaces in [None, Some(vec![]), Some(vec!["shop".to_string(), "web".to_string()])] {
            let who = WhoAmI { user: "alice".into(), role: Role::Reviewer, namespaces, via: "token".into() };
            assert_eq!(WhoAmI::try_from(pb::WhoAmI::from(who.clone()))?, who);
        }
        let problem = Problem {
            kind: "about:blank".into(),
            title: "Bad Request".into(),
            status: 400,
            detail: "port out of range".into(),
            object: Some("NetworkPolicy shop/web".into()),
            field: Some("spec.ingress[0].ports[0].port".into()),
        };
        assert_eq!(Problem::try_from(pb::Problem::from(problem.clone()))?, problem);
        Ok(())
    }

    #[test]
    fn an_unset_required_enum_names_its_field() {
        let who = pb::WhoAmI {
            user: "alice".into(),
            role: pb::Role::Unspecified as i32,
            namespaces: None,
            via: "unix".into(),
        };
        let err = WhoAmI::try_from(who).err();
        assert_eq!(err.as_ref().map(|e| e.field.as_str()), Some("role"));
        let unknown = pb::WhoAmI { user: "alice".into(), role: 42, namespaces: None, via: "unix".into() };
        assert_eq!(WhoAmI::try_from(unknown).err().map(|e| e.field), Some("role".to_string()));
    }

    #[test]
    fn nested_errors_name_the_whole_path() {
        let err = ConvertError::new("verdict", "not set").within("flow").within("items[2]");
        assert_eq!(err.to_string(), "items[2].flow.verdict: not set");
    }
}
