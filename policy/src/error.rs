//! Policy errors. Every one names the object and the field at fault, so an
//! operator can fix the manifest without reading Bulkhead's source.

/// Why an object was rejected or could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A field of an object is invalid.
    #[error("{object}: {field}: {message}")]
    Invalid {
        /// Kind and name of the object, e.g. "NetworkPolicy x/allow-80".
        object: String,
        /// Dotted path of the field, e.g. "spec.ingress[0].from[1].ipBlock.cidr".
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A YAML document could not be read at all.
    #[error("{source_name} document {document}: {message}")]
    Document {
        /// The file or stream the document came from.
        source_name: String,
        /// Index of the YAML document, from 0.
        document: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The dataplane cannot hold what a policy asks for.
    #[error("endpoint {pod}: {message}")]
    Capacity {
        /// "namespace/name" of the endpoint.
        pod: String,
        /// What limit was hit.
        message: String,
    },
    /// Identities ran out.
    #[error("identity space exhausted ({0} identities)")]
    IdentitiesExhausted(usize),
}

/// Builds `PolicyError::Invalid` for one object.
#[derive(Debug, Clone)]
pub(crate) struct Blame {
    object: String,
}

impl Blame {
    pub(crate) fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        let object = match namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        Self { object }
    }
    pub(crate) fn object(&self) -> &str {
        &self.object
    }
    pub(crate) fn err(&self, field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid { object: self.object.clone(), field: field.into(), message: message.into() }
    }
}
