//! Who is calling, and what they may see and do. The HTTP API authenticates
//! bearer tokens (a tokens file of hashes, or Kubernetes TokenReview with
//! the role from SubjectAccessReview); the root-only socket trusts the
//! kernel's peer credentials. Either way the service layer receives one
//! `Principal` and decides: the role bounds what it may do, the scope which
//! namespaces it may see and act in.

pub mod kubernetes;
pub mod pki;
pub mod tokens;

use std::collections::BTreeSet;

use bulkhead_api::audit::Caller;
use bulkhead_model::Role;

/// The namespaces a principal may see and act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace and the cluster-wide objects.
    Cluster,
    /// Only these namespaces: a tenant.
    Namespaces(BTreeSet<String>),
}

impl Scope {
    /// Whether `namespace` is in scope.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Namespaces(set) => set.contains(namespace),
        }
    }

    /// Whether at least one of two ends (their namespaces; `None` for
    /// addresses outside any namespace) is in scope.
    pub fn either(&self, a: Option<&str>, b: Option<&str>) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Namespaces(_) => a.is_some_and(|n| self.contains(n)) || b.is_some_and(|n| self.contains(n)),
        }
    }

    /// Whether this is a tenant's scope.
    pub fn is_tenant(&self) -> bool {
        matches!(self, Scope::Namespaces(_))
    }

    /// The namespaces, for a tenant.
    pub fn namespaces(&self) -> Option<Vec<String>> {
        match self {
            Scope::Cluster => None,
            Scope::Namespaces(set) => Some(set.iter().cloned().collect()),
        }
    }
}

/// How a principal was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The root-only Unix socket: the kernel vouches for the peer.
    Unix {
        /// Peer uid.
        uid: u32,
        /// Peer pid, when known.
        pid: Option<i32>,
    },
    /// A bearer token from the tokens file.
    Token,
    /// A Kubernetes token, through TokenReview and SubjectAccessReview.
    Kubernetes,
    /// The controller itself.
    System,
    /// One of the controller's response rules (the automatic quarantine).
    Rule,
}

impl Via {
    /// `unix`, `token`, `kubernetes`, `system` or `rule`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Via::Unix { .. } => "unix",
            Via::Token => "token",
            Via::Kubernetes => "kubernetes",
            Via::System => "system",
            Via::Rule => "rule",
        }
    }

    /// Who acted, for metrics: a `person`, a `rule` or the `system`.
    pub fn actor_kind(&self) -> &'static str {
        match self {
            Via::System => "system",
            Via::Rule => "rule",
            Via::Unix { .. } | Via::Token | Via::Kubernetes => "person",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's name.
    pub user: String,
    /// What the user may do.
    pub role: Role,
    /// Where the user may see and act.
    pub scope: Scope,
    /// How the user was authenticated.
    pub via: Via,
    /// Where the request came from: the peer address, or the socket peer.
    pub source: String,
}

impl Principal {
    /// Root on the host, over the socket: an admin of the whole cluster.
    /// `actor` is the name the client states (e.g. `$SUDO_USER`).
    pub fn unix(actor: &str, uid: u32, pid: Option<i32>) -> Self {
        let user = if actor.trim().is_empty() { format!("uid {uid}") } else { actor.trim().to_string() };
        let source = match pid {
            Some(pid) => format!("unix uid {uid} pid {pid}"),
            None => format!("unix uid {uid}"),
        };
        Self { user, role: Role::Admin, scope: Scope::Cluster, via: Via::Unix { uid, pid }, source }
    }

    /// The controller itself (quarantines ended with their pod, Kubernetes objects).
    pub fn system(what: &str) -> Self {
        Self {
            user: format!("system:{what}"),
            role: Role::Admin,
            scope: Scope::Cluster,
            via: Via::System,
            source: "controller".into(),
        }
    }

    /// A response rule of the controller acting on its own (the automatic
    /// quarantine): audited under the rule's name, `rule:NAME`.
    pub fn rule(name: &str) -> Self {
        Self {
            user: format!("rule:{name}"),
            role: Role::Responder,
            scope: Scope::Cluster,
            via: Via::Rule,
            source: "controller".into(),
        }
    }

    /// The caller as the audit log records it.
    pub fn caller(&self) -> Caller {
        let (uid, pid) = match self.via {
            Via::Unix { uid, pid } => (Some(uid), pid),
            _ => (None, None),
        };
        Caller {
            actor: self.user.clone(),
            role: Some(self.role),
            uid,
            pid,
            source: self.source.clone(),
            scope: self.scope.namespaces(),
        }
    }

    /// The name review records and quarantines keep: the user and how it was verified.
    pub fn signature(&self) -> String {
        match self.via {
            Via::Unix { uid, .. } => format!("{} (uid {uid})", self.user),
            _ => format!("{} ({})", self.user, self.via.as_str()),
        }
    }
}

/// Authentication failed: the request is answered 401 and audited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    /// The header is not a bearer token.
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
    /// No authenticator knows the token.
    #[error("the token is not valid")]
    Unknown,
    /// The token is valid but grants no role in any namespace.
    #[error("{user} has no Bulkhead role (bulkhead.dev access) in any namespace")]
    NoRole {
        /// Who.
        user: String,
    },
    /// The Kubernetes API could not be asked; the request fails closed.
    #[error("cannot verify the token with the Kubernetes API: {0}")]
    Backend(String),
    /// An enrolling token belongs to someone other than the agents' ServiceAccount.
    #[error("{user} may not enroll an agent: only {expected} may")]
    NotAnAgent {
        /// Who the token belongs to.
        user: String,
        /// The agents' ServiceAccount user.
        expected: String,
    },
    /// An enrolling token is not bound to a pod on a node.
    #[error(
        "the token of {user} names no node: mount a projected ServiceAccount token (bound to the pod) on Kubernetes 1.30 or newer, whose TokenReview reports authentication.kubernetes.io/node-name"
    )]
    NoNode {
        /// Who the token belongs to.
        user: String,
    },
    /// The node is in the revoked-agents file.
    #[error("node {node} is revoked")]
    Revoked {
        /// The node.
        node: String,
    },
}

/// Every way a bearer token can be verified, tried in order: the tokens
/// file, then (in a cluster) Kubernetes.
#[derive(Default)]
pub struct Authenticator {
    /// The tokens file, if configured.
    pub tokens: Option<tokens::TokenSource>,
    /// TokenReview and SubjectAccessReview, if running against a cluster.
    pub kubernetes: Option<kubernetes::KubernetesAuth>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.as_ref().map(tokens::TokenSource::len))
            .field("kubernetes", &self.kubernetes.is_some())
            .finish()
    }
}

impl Authenticator {
    /// The principal of an `Authorization` header value, from `source`.
    /// `namespaces` are the namespaces that exist, for Kubernetes scopes.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        source: &str,
        namespaces: impl FnOnce() -> Vec<String>,
    ) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        if let Some(found) = self.tokens.as_ref().and_then(|t| t.verify(token)) {
            return Ok(Principal {
                user: found.user.clone(),
                role: found.role,
                scope: found.scope(),
                via: Via::Token,
                source: source.to_string(),
            });
        }
        match &self.kubernetes {
            Some(k) => k.authenticate(token, source, namespaces).await,
            None => Err(AuthError::Unknown),
        }
    }
}

/// The scope of an optional namespace list: none means cluster-wide.
pub fn scope_of(namespaces: Option<&[String]>) -> Scope {
    match namespaces {
        None => Scope::Cluster,
        Some(list) => Scope::Namespaces(list.iter().cloned().collect::<BTreeSet<_>>()),
    }
}
