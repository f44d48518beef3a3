//! The Lease: who leads. Timing follows client-go's leader election: a
//! holder renews every [`RETRY`]; a candidate takes the Lease only once it
//! has seen the same record unchanged for the Lease's duration by its own
//! clock (so clock skew between nodes does not matter), and a leader that
//! cannot renew within [`RENEW_DEADLINE`] steps down before anyone may
//! take over. Writes carry the resourceVersion they read: of two
//! candidates, the API server lets exactly one win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::ControllerError;

/// The Lease's name unless configured otherwise.
pub const DEFAULT_LEASE: &str = "bulkhead-controller";
/// How long a Lease holds without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long a leader may fail to renew before it steps down (below the duration).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the Lease is renewed or looked at.
pub const RETRY: Duration = Duration::from_secs(2);

/// This replica's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// It holds the Lease.
    Leader,
    /// Another replica holds it (named when known).
    Standby {
        /// The holder's identity.
        leader: Option<String>,
    },
}

impl Leadership {
    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        matches!(self, Self::Leader)
    }
}

impl std::fmt::Display for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Leader => f.write_str("leader"),
            Self::Standby { leader: Some(l) } => write!(f, "standby (the leader is {l})"),
            Self::Standby { leader: None } => f.write_str("standby (no leader known)"),
        }
    }
}

/// The record as last seen, and since when by this replica's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    holder: Option<String>,
    renewed: Option<MicroTime>,
    since: Instant,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    observed: Mutex<Option<Observed>>,
}

fn lease_err(e: kube::Error) -> ControllerError {
    ControllerError::Leadership { message: e.to_string() }
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    /// Competes for Lease `name` in `namespace` as `identity`.
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            observed: Mutex::new(None),
        }
    }

    fn spec(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One look at the Lease: create it, renew it, take it over once it
    /// expired, or leave it to its holder. A lost race is a standby, not an error.
    pub async fn step(&self) -> Result<Leadership, ControllerError> {
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(lease_err)? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(self.spec(None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Leadership::Leader),
                Err(e) if conflict(&e) => Ok(Leadership::Standby { leader: None }),
                Err(e) => Err(lease_err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let now = Instant::now();
        let expired = {
            let mut observed = self.observed.lock().await;
            let same = observed.as_ref().is_some_and(|o| o.holder == holder && o.renewed == spec.renew_time);
            if !same {
                *observed = Some(Observed { holder: holder.clone(), renewed: spec.renew_time.clone(), since: now });
            }
            let held_for = spec.lease_duration_seconds.map_or(LEASE_DURATION, |s| Duration::from_secs(s.max(1) as u64));
            observed.as_ref().is_some_and(|o| now.duration_since(o.since) >= held_for)
        };
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if !ours && holder.is_some() && !expired {
            return Ok(Leadership::Standby { leader: holder });
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours { spec.acquire_time.clone() } else { None };
        lease.spec = Some(self.spec(acquired, transitions));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                let renewed = written.spec.and_then(|s| s.renew_time);
                *self.observed.lock().await =
                    Some(Observed { holder: Some(self.identity.clone()), renewed, since: Instant::now() });
                if !ours {
                    tracing::warn!(previous = ?holder, identity = %self.identity, transitions, "took the controller lease");
                }
                Ok(Leadership::Leader)
            }
            // Someone else wrote first: they hold it now.
            Err(e) if conflict(&e) => Ok(Leadership::Standby { leader: None }),
            Err(e) => Err(lease_err(e)),
        }
    }

    /// The role at start: asks until the API server answers.
    pub async fn first(&self) -> Leadership {
        loop {
            match self.step().await {
                Ok(l) => return l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the controller lease yet; asking again");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Keeps looking every [`RETRY`] and returns the first role that
    /// differs from `current`: a leader that could not renew within
    /// [`RENEW_DEADLINE`] returns a standby, before any candidate may take over.
    pub async fn until_changed(&self, current: &Leadership) -> Leadership {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(RETRY).await;
            // Measured from when the attempt starts, and cut at the deadline:
            // a hung API connection must not keep a leader past it.
            let attempt = Instant::now();
            let left = RENEW_DEADLINE.saturating_sub(last_ok.elapsed()).max(Duration::from_millis(1));
            let stepped = match tokio::time::timeout(left, self.step()).await {
                Ok(r) => r,
                Err(_) => Err(ControllerError::Leadership { message: format!("no answer within {left:?}") }),
            };
            match stepped {
                Ok(l) if &l == current => last_ok = attempt,
                Ok(Leadership::Standby { leader }) if !current.is_leader() => {
                    // Still a standby; only the named leader changed.
                    last_ok = attempt;
                    tracing::debug!(?leader, "the controller lease changed hands");
                }
                Ok(l) => return l,
                Err(e) if current.is_leader() && last_ok.elapsed() >= RENEW_DEADLINE => {
                    tracing::error!(error = %e, "could not renew the controller lease in time: stepping down");
                    return Leadership::Standby { leader: None };
                }
                Err(e) => tracing::warn!(error = %e, "the controller lease could not be read"),
            }
        }
    }
}
