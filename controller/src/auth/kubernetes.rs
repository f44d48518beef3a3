//! Kubernetes tokens (ServiceAccounts and users): TokenReview says who the
//! token belongs to, SubjectAccessReview what Bulkhead role it has. Roles
//! are RBAC verbs on the virtual resource `access` of the `bulkhead.dev`
//! group, so a ClusterRole or Role grants them like any permission:
//!
//! ```yaml
//! rules:
//! - apiGroups: [bulkhead.dev]
//!   resources: [access]
//!   verbs: [viewer]        # viewer | responder | reviewer | admin
//! ```
//!
//! Granted cluster-wide (ClusterRoleBinding), the role covers the cluster;
//! granted in namespaces (RoleBindings), the principal is a tenant of those
//! namespaces with the weakest of its roles there, so a tenant never acts
//! in one namespace with the rights it has in another. Answers are cached
//! for a minute per token; any API failure refuses the request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bulkhead_model::Role;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

use super::{AuthError, Principal, Scope, Via};

/// The group of the virtual resource roles are verbs on.
pub const GROUP: &str = "bulkhead.dev";
/// The virtual resource roles are verbs on.
pub const RESOURCE: &str = "access";
const CACHE_FOR: Duration = Duration::from_secs(60);
/// At most this many namespaces are checked for a principal without a
/// cluster-wide role.
pub const MAX_NAMESPACES: usize = 512;

/// What a token was found to be: its user, role and scope, or why not.
type Reviewed = Result<(String, Role, Scope), AuthError>;

struct Who {
    user: String,
    uid: String,
    groups: Vec<String>,
}

/// TokenReview and SubjectAccessReview through a Kubernetes client.
pub struct KubernetesAuth {
    client: kube::Client,
    audiences: Vec<String>,
    cache: Mutex<BTreeMap<String, (Instant, Reviewed)>>,
}

impl KubernetesAuth {
    /// Verifies tokens with `client`'s API server; `audiences` are the
    /// audiences tokens must be issued for (empty: the API server's default).
    pub fn new(client: kube::Client, audiences: Vec<String>) -> Self {
        Self { client, audiences, cache: Mutex::new(BTreeMap::new()) }
    }

    /// The principal of `token`.
    pub async fn authenticate(
        &self,
        token: &str,
        source: &str,
        namespaces: impl FnOnce() -> Vec<String>,
    ) -> Result<Principal, AuthError> {
        let key = super::tokens::hash(token);
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).filter(|(at, _)| at.elapsed() < CACHE_FOR).map(|(_, r)| r.clone()));
        let result = match cached {
            Some(r) => r,
            None => {
                let r = self.review(token, namespaces).await;
                // A failing API server is not remembered: the next request asks again.
                if !matches!(r, Err(AuthError::Backend(_)))
                    && let Ok(mut c) = self.cache.lock()
                {
                    c.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
                    c.insert(key, (Instant::now(), r.clone()));
                }
                r
            }
        };
        let (user, role, scope) = result?;
        Ok(Principal { user, role, scope, via: Via::Kubernetes, source: source.to_string() })
    }

    async fn review(&self, token: &str, namespaces: impl FnOnce() -> Vec<String>) -> Reviewed {
        let who = self.token_review(token).await?;
        for role in Role::ALL.into_iter().rev() {
            if self.allowed(&who, role, None).await? {
                return Ok((who.user, role, Scope::Cluster));
            }
        }
        let mut granted: BTreeMap<String, Role> = BTreeMap::new();
        for ns in namespaces().into_iter().take(MAX_NAMESPACES) {
            for role in Role::ALL.into_iter().rev() {
                if self.allowed(&who, role, Some(&ns)).await? {
                    granted.insert(ns.clone(), role);
                    break;
                }
            }
        }
        let Some(role) = granted.values().min().copied() else {
            return Err(AuthError::NoRole { user: who.user });
        };
        Ok((who.user, role, Scope::Namespaces(granted.into_keys().collect::<BTreeSet<_>>())))
    }

    async fn token_review(&self, token: &str) -> Result<Who, AuthError> {
        let (name, user) = token_review(&self.client, token, &self.audiences).await?;
        Ok(Who { user: name, uid: user.uid.unwrap_or_default(), groups: user.groups.unwrap_or_default() })
    }

    async fn allowed(&self, who: &Who, role: Role, namespace: Option<&str>) -> Result<bool, AuthError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(who.user.clone()),
                uid: (!who.uid.is_empty()).then(|| who.uid.clone()),
                groups: Some(who.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.into()),
                    resource: Some(RESOURCE.into()),
                    verb: Some(role.as_str().into()),
                    namespace: namespace.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Backend(format!("SubjectAccessReview: {e}")))?;
        Ok(answer.status.is_some_and(|s| s.allowed && s.denied != Some(true)))
    }
}

/// Asks the API server who `token` belongs to (issued for `audiences`, or
/// its default when empty): the user name and everything TokenReview said
/// about them. Anything but an explicit "authenticated" with a name refuses.
pub async fn token_review(
    client: &kube::Client,
    token: &str,
    audiences: &[String],
) -> Result<(String, UserInfo), AuthError> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
        },
        ..Default::default()
    };
    let answer = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| AuthError::Backend(format!("TokenReview: {e}")))?;
    let status = answer.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(AuthError::Unknown);
    }
    // An authenticator that ignores audiences answers without them: the
    // token must be confirmed for one of ours.
    if !audiences.is_empty() && !status.audiences.as_ref().is_some_and(|got| got.iter().any(|a| audiences.contains(a)))
    {
        return Err(AuthError::Unknown);
    }
    let user = status.user.unwrap_or_default();
    match user.username.clone() {
        Some(name) if !name.is_empty() => Ok((name, user)),
        _ => Err(AuthError::Unknown),
    }
}
