//! Every operation of the API and the role it needs: the authorization
//! matrix, as data. Roles include the ones below them; scope (a tenant's
//! namespaces) is checked per object by each operation.

use bulkhead_model::Role;

macro_rules! ops {
    ($($(#[$m:meta])* $variant:ident => $name:literal, $role:ident, $what:literal;)+) => {
        /// An operation of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op { $($(#[$m])* $variant),+ }

        impl Op {
            /// Every operation.
            pub const ALL: &'static [Op] = &[$(Op::$variant),+];

            /// Its stable name (audit actions, metrics).
            pub const fn name(self) -> &'static str {
                match self { $(Op::$variant => $name),+ }
            }

            /// The role it needs.
            pub const fn role(self) -> Role {
                match self { $(Op::$variant => Role::$role),+ }
            }

            /// What it does, for refusals ("may not …").
            pub const fn describe(self) -> &'static str {
                match self { $(Op::$variant => $what),+ }
            }
        }
    };
}

ops! {
    /// Who the caller is.
    WhoAmI => "whoami", Viewer, "ask who they are";
    /// Take another cluster's pods as peers (the hub shares them).
    SetRemotePods => "set-remote-pods", Admin, "set another cluster's pods";
    /// The controller's status.
    Status => "status", Viewer, "read the status";
    /// Namespaces.
    Namespaces => "list-namespaces", Viewer, "list namespaces";
    /// Pods.
    Pods => "list-pods", Viewer, "list pods";
    /// Workloads.
    Workloads => "list-workloads", Viewer, "list workloads";
    /// Services.
    Services => "list-services", Viewer, "list services";
    /// Stored flows.
    Flows => "list-flows", Viewer, "read flows";
    /// The live flow stream.
    StreamFlows => "stream-flows", Viewer, "follow flows";
    /// The service graph.
    Graph => "graph", Viewer, "read the graph";
    /// What changed in the graph between two windows.
    GraphDiff => "graph-diff", Viewer, "compare graph windows";
    /// What a workload can reach.
    BlastRadius => "blast-radius", Viewer, "compute a blast radius";
    /// What the policies in force allow between workloads.
    AllowedEdges => "allowed-edges", Viewer, "read allowed edges";
    /// The exposure report.
    Exposure => "exposure", Viewer, "read the exposure report";
    /// Baselines.
    Baselines => "baselines", Viewer, "read baselines";
    /// Anomalies.
    Anomalies => "anomalies", Viewer, "read anomalies";
    /// Generate suggestions.
    Suggest => "suggest", Reviewer, "generate suggestions";
    /// The suggested policies as a Kubernetes List.
    Export => "export-suggestions", Viewer, "export suggestions";
    /// Review records.
    Reviews => "list-reviews", Viewer, "list suggestions";
    /// One suggestion in full.
    Review => "show-review", Viewer, "read a suggestion";
    /// Approve a suggestion.
    Approve => "approve", Reviewer, "approve suggestions";
    /// Reject a suggestion.
    Reject => "reject", Reviewer, "reject suggestions";
    /// Apply a suggestion in audit mode.
    ApplyAudit => "apply-audit", Reviewer, "apply suggestions in audit";
    /// Enforce a suggestion.
    ApplyEnforce => "apply-enforce", Admin, "enforce suggestions";
    /// Policies in force.
    Policies => "list-policies", Viewer, "list policies";
    /// Add or replace objects.
    Apply => "apply", Admin, "apply policies and objects";
    /// Delete objects.
    Delete => "delete", Admin, "delete policies and objects";
    /// Explain a verdict.
    Explain => "explain", Viewer, "explain verdicts";
    /// Quarantine a pod or workload.
    Quarantine => "quarantine", Responder, "quarantine";
    /// Release a quarantine.
    Release => "release", Responder, "release quarantines";
    /// Quarantines.
    Quarantines => "list-quarantines", Viewer, "list quarantines";
    /// One quarantine.
    QuarantineGet => "show-quarantine", Viewer, "read a quarantine";
    /// Block an IP or CIDR on every node.
    Block => "block", Responder, "block addresses";
    /// Lift a block.
    Unblock => "unblock", Responder, "lift blocks";
    /// The block list.
    Blocks => "list-blocks", Viewer, "list blocks";
    /// The access trail of a pod.
    Trail => "trail", Viewer, "read access trails";
    /// The audit log.
    Audit => "audit", Viewer, "read the audit log";
}
