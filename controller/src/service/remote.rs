//! Other clusters' pods, given by the hub: peers of this cluster whose
//! identities carry their cluster's name. Changing them changes what
//! `clusters:` peers match, so it takes an admin of the whole cluster, and
//! each change (not each unchanged repeat) is audited.

use bulkhead_api::audit::Event;
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::hub::{RemotePods, RemotePodsTaken};

use super::{Op, Service, ServiceError};
use crate::auth::Principal;

impl Service {
    /// Takes `cluster`'s pods as peers, recompiling when they changed.
    pub async fn set_remote_pods(
        &self,
        who: &Principal,
        cluster: &str,
        req: RemotePods,
    ) -> Result<RemotePodsTaken, ServiceError> {
        let target = format!("cluster {cluster}");
        self.authorize(who, Op::SetRemotePods, &target)?;
        if who.scope.is_tenant() {
            let why = format!("{} may not {}: their scope is a tenant's", who.user, Op::SetRemotePods.describe());
            return Err(self.refuse(who, Op::SetRemotePods, &target, who.scope.namespaces().unwrap_or_default(), why));
        }
        bulkhead_policy::selector::check_value(cluster).map_err(|m| ServiceError::bad("cluster", m))?;
        let own = self.ctx.with_policy(|s| Ok(s.cluster().to_string())).await?;
        if cluster.is_empty() || cluster == own {
            return Err(ServiceError::bad(
                "cluster",
                format!("{cluster:?} is not another cluster (this one is {own:?})"),
            ));
        }
        let pods = crate::policy::remote::peers(cluster, req.pods)?;
        let count = pods.len() as u32;
        let name = cluster.to_string();
        let (changed, generation) = self.ctx.with_policy(move |s| s.set_remote(&name, pods)).await?;
        if changed {
            let detail = format!("{count} pods of cluster {cluster}, generation {generation}");
            let event =
                Event { action: Op::SetRemotePods.name(), target: &target, detail: &detail, ..Default::default() };
            self.ctx
                .audit
                .event(&who.caller(), Outcome::Ok, event)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
        }
        Ok(RemotePodsTaken { cluster: cluster.to_string(), pods: count, changed, generation })
    }
}
