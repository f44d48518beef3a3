#![allow(clippy::unwrap_used)]

use serde_json::Value;

use super::*;

fn args() -> InstallArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        a: InstallArgs,
    }
    Wrap::parse_from(["install"]).a
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_defaults_learn_and_print_no_secrets() {
    let objects = objects(&args()).unwrap();
    let controller = find(&objects, "Deployment", "bulkhead-controller");
    let cargs = &controller["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(cargs.as_array().unwrap().iter().any(|a| a == "--mode=learn"), "{cargs}");
    assert!(!cargs.as_array().unwrap().iter().any(|a| a.as_str().unwrap().starts_with("--tokens-file")));
    assert!(objects.iter().all(|o| o["kind"] != "Secret"));
    for o in &objects {
        let cluster_scoped = matches!(
            o["kind"].as_str().unwrap(),
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        );
        assert_eq!(o["metadata"].get("namespace").is_none(), cluster_scoped, "{}", o["metadata"]);
        if !cluster_scoped {
            assert_eq!(o["metadata"]["namespace"], "bulkhead-system");
        }
    }
}

#[test]
fn the_controller_may_only_read_what_it_watches_and_review_callers() {
    let objects = objects(&args()).unwrap();
    let role = find(&objects, "ClusterRole", "bulkhead-controller");
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let resources: Vec<&str> = rule["resources"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let groups: Vec<&str> = rule["apiGroups"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        match (groups.as_slice(), resources.as_slice()) {
            (_, ["tokenreviews"] | ["subjectaccessreviews"]) => assert_eq!(verbs, ["create"]),
            // The retired kind is only looked for, to name what is left of it.
            (["bulkhead.dev"], ["clusternetworkpolicies"]) => assert_eq!(verbs, ["list"]),
            _ => assert_eq!(verbs, ["list", "watch"], "{resources:?}"),
        }
        assert!(!resources.contains(&"secrets") && !resources.contains(&"*"));
    }
    let agent_sa = find(&objects, "ServiceAccount", "bulkhead-agent");
    assert_eq!(agent_sa["automountServiceAccountToken"], false);
    assert!(
        objects.iter().all(|o| !(o["kind"] == "ClusterRoleBinding" && o.to_string().contains("bulkhead-agent"))),
        "the agent is bound to no role"
    );
    for role in bulkhead_model::Role::ALL {
        let r = find(&objects, "ClusterRole", &format!("bulkhead-{}", role.as_str()));
        assert_eq!(r["rules"][0]["verbs"][0], role.as_str());
        assert_eq!(r["rules"][0]["resources"][0], "access");
    }
}

#[test]
fn the_agent_has_only_the_capabilities_it_needs_each_with_its_reason() {
    let text = install(&args()).unwrap();
    let objects = objects(&args()).unwrap();
    let ds = find(&objects, "DaemonSet", "bulkhead-agent");
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["securityContext"]["privileged"], false);
    let added: Vec<&str> =
        c["securityContext"]["capabilities"]["add"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(added, ["BPF", "NET_ADMIN", "SYS_ADMIN"]);
    for cap in added {
        let line = format!("- {cap}");
        let at = text.lines().position(|l| l.trim() == line).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let comments: Vec<&str> =
            lines[..at].iter().rev().take_while(|l| l.trim_start().starts_with('#')).map(|l| l.trim()).collect();
        assert!(comments.last().is_some_and(|c| c.starts_with(&format!("# CAP_{cap}:"))), "{cap}: {comments:?}");
    }
    for (at, _) in agent::REASONS {
        assert!(text.lines().any(|l| l.trim() == at), "a reason for {at:?} has nothing to stand above");
    }
    assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
    assert!(c["livenessProbe"].is_object() && c["readinessProbe"].is_object());
}

#[test]
fn generated_secrets_hold_a_ca_a_certificate_for_the_services_and_a_hashed_admin_token() {
    let mut a = args();
    a.generate_secrets = true;
    a.namespace = "sec-x".into();
    let objects = objects(&a).unwrap();
    let tls = find(&objects, "Secret", TLS_SECRET);
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert!(tls["stringData"]["tls.crt"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    let token = find(&objects, "Secret", ADMIN_TOKEN_SECRET)["stringData"]["token"].as_str().unwrap().to_string();
    let file = find(&objects, "Secret", TOKENS_SECRET)["stringData"]["tokens.yaml"].as_str().unwrap().to_string();
    assert!(!file.contains(&token), "the tokens file keeps only the hash");
    assert!(file.contains(&bulkhead_controller::auth::tokens::hash(&token)));
    assert!(secrets::dns_names("sec-x").contains(&"bulkhead-controller.sec-x.svc".to_string()));
    let controller = find(&objects, "Deployment", "bulkhead-controller");
    assert!(controller.to_string().contains("--tokens-file=/etc/bulkhead/tokens/tokens.yaml"));
    // Two installs never share a CA or a token.
    let again = super::objects(&a).unwrap();
    assert_ne!(find(&again, "Secret", ADMIN_TOKEN_SECRET)["stringData"]["token"], token.as_str());
}

#[test]
fn bad_arguments_are_refused_by_name() {
    for (field, set) in [
        ("--namespace", (|a: &mut InstallArgs| a.namespace = "Bad_NS".into()) as fn(&mut InstallArgs)),
        ("--mode", |a| a.mode = "block".into()),
        ("--cluster", |a| a.cluster = String::new()),
        ("--image", |a| a.image = "a b".into()),
    ] {
        let mut a = args();
        set(&mut a);
        let e = objects(&a).unwrap_err().to_string();
        assert!(e.starts_with(field), "{field}: {e}");
    }
}

#[test]
fn uninstall_removes_the_controller_first_and_the_crds_and_namespace_last() {
    let a = UninstallArgs {
        namespace: "bulkhead-system".into(),
        node_cleanup: false,
        image: "bulkhead:1".into(),
        image_pull_policy: "IfNotPresent".into(),
    };
    let text = uninstall(&a).unwrap();
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    // The controller, in either shape, before the agents.
    assert_eq!(kinds[..2], ["Deployment", "StatefulSet"]);
    assert_eq!(kinds.get(2), Some(&"DaemonSet"));
    assert_eq!(kinds.last(), Some(&"Namespace"));
    assert!(kinds.contains(&"Secret") && kinds.contains(&"ClusterRole"));
    assert!(!text.contains("BEGIN"), "references only, no key material");
}

#[test]
fn the_node_cleanup_is_ready_only_after_its_init_container_cleaned() {
    let a = UninstallArgs {
        namespace: "bulkhead-system".into(),
        node_cleanup: true,
        image: "registry.example/bulkhead:1".into(),
        image_pull_policy: "Always".into(),
    };
    let text = uninstall(&a).unwrap();
    let docs: Vec<serde_yaml::Value> =
        serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["initContainers"][0]["args"][0], "node-cleanup");
    assert_eq!(spec["containers"][0]["args"][1], "--wait");
    assert_eq!(spec["initContainers"][0]["image"], "registry.example/bulkhead:1");
    assert!(spec["initContainers"][0]["securityContext"]["capabilities"]["add"].is_null());
}

/// The container's args as the binary would get them (Kubernetes expands `$(VAR)`).
fn container_args(object: &Value, env: &[(&str, &str)]) -> Vec<String> {
    let args = object["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap();
    let mut out = vec!["bulkhead".to_string()];
    for a in args {
        let mut a = a.as_str().unwrap().to_string();
        for (name, value) in env {
            a = a.replace(&format!("$({name})"), value);
        }
        out.push(a);
    }
    out
}

#[test]
fn agents_reach_the_controller_over_mtls_enrolling_with_a_token_bound_to_their_pod() {
    use clap::Parser;
    let mut a = args();
    a.namespace = "bh-x".into();
    let objects = objects(&a).unwrap();

    // The agent's args, through the binary's own parser: it dials the
    // controller's Service on the agents port and enrolls with its token.
    let ds = find(&objects, "DaemonSet", "bulkhead-agent");
    let argv = container_args(ds, &[("BULKHEAD_HOST_IP", "10.0.0.1")]);
    let argv: Vec<String> = argv.into_iter().chain(["--node=node-1".to_string()]).collect();
    let Ok(crate::Cli { command: crate::Command::Agent { uplink, .. }, .. }) = crate::Cli::try_parse_from(&argv) else {
        panic!("the agent's args do not parse: {argv:?}");
    };
    let up = uplink.uplink().unwrap().unwrap();
    assert_eq!(up.addr, format!("bulkhead-controller.bh-x.svc:{AGENTS_PORT}"));
    assert_eq!(up.server_name, "bulkhead-controller.bh-x.svc");
    assert!(secrets::dns_names("bh-x").contains(&up.server_name), "the generated certificate covers the name");
    let bulkhead_agent::uplink::Identity::Enroll { token } = &up.identity else {
        panic!("the agent does not enroll: {:?}", up.identity);
    };
    // The token is projected for the controller's audience, beside the CA only.
    let spec = &ds["spec"]["template"]["spec"];
    let identity = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "identity").unwrap();
    let sources = identity["projected"]["sources"].as_array().unwrap();
    let projected = &sources[0]["serviceAccountToken"];
    assert_eq!(projected["audience"], bulkhead_controller::agents::enroll::AUDIENCE);
    assert_eq!(
        token.strip_prefix(agent::IDENTITY_DIR).unwrap(),
        std::path::Path::new(projected["path"].as_str().unwrap())
    );
    assert_eq!(sources[1]["secret"]["items"], serde_json::json!([{ "key": "ca.crt", "path": "ca.crt" }]));
    assert_eq!(spec["automountServiceAccountToken"], false, "no API token beyond the projected one");

    // The controller's args parse too: it serves the agents port, enrolls
    // only the agents' ServiceAccount, and reads the optional revocations.
    let controller = find(&objects, "Deployment", "bulkhead-controller");
    let argv = container_args(controller, &[]);
    let Ok(crate::Cli { command: crate::Command::Controller(_), .. }) = crate::Cli::try_parse_from(&argv) else {
        panic!("the controller's args do not parse: {argv:?}");
    };
    assert!(argv.contains(&"--agent-service-account=bh-x:bulkhead-agent".to_string()), "{argv:?}");
    assert!(argv.iter().any(|a| a.starts_with("--agent-enroll-ca-key=")), "{argv:?}");
    let volumes = controller["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let revoked = volumes.iter().find(|v| v["name"] == "revoked").unwrap();
    assert_eq!(revoked["configMap"]["optional"], true);
    assert!(objects.iter().all(|o| o["metadata"]["name"] != REVOKED_CONFIG_MAP), "re-applying must not un-revoke");

    // The Service and the namespace's policy let agents in on that port.
    let service = find(&objects, "Service", "bulkhead-controller");
    assert!(service["spec"]["ports"].as_array().unwrap().iter().any(|p| p["port"] == AGENTS_PORT));
    let policy = find(&objects, "NetworkPolicy", "bulkhead-controller");
    assert!(policy["spec"]["ingress"].to_string().contains(&format!("\"port\":{AGENTS_PORT}")));
}

#[test]
fn ha_runs_two_replicas_of_which_only_the_leader_is_ready_with_rights_to_its_lease_alone() {
    use clap::Parser;
    let mut a = args();
    a.ha = true;
    let objects = objects(&a).unwrap();
    assert!(objects.iter().all(|o| o["kind"] != "Deployment"), "a StatefulSet replaces the Deployment");
    assert!(objects.iter().all(|o| o["kind"] != "PersistentVolumeClaim"), "each replica claims its own");
    let sts = find(&objects, "StatefulSet", "bulkhead-controller");
    assert_eq!(sts["spec"]["replicas"], 2);
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "state");
    let headless = find(&objects, "Service", sts["spec"]["serviceName"].as_str().unwrap());
    assert_eq!(
        (headless["spec"]["clusterIP"].as_str(), headless["spec"]["publishNotReadyAddresses"].as_bool()),
        (Some("None"), Some(true))
    );
    let env = sts["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(env.contains("POD_NAME") && env.contains("metadata.name"), "{env}");

    // The binary's own parser takes the args, --ha among them.
    let argv = container_args(sts, &[]);
    assert!(argv.contains(&"--ha".to_string()), "{argv:?}");
    let Ok(crate::Cli { command: crate::Command::Controller(_), .. }) = crate::Cli::try_parse_from(&argv) else {
        panic!("the controller's args do not parse: {argv:?}");
    };

    // Its Role reads and updates exactly the Lease and the state ConfigMap, in its namespace.
    let role = find(&objects, "Role", "bulkhead-controller-leader");
    for rule in role["rules"].as_array().unwrap() {
        let verbs = rule["verbs"].to_string();
        assert!(verbs == r#"["create"]"# || rule["resourceNames"].as_array().is_some_and(|n| !n.is_empty()), "{rule}");
    }
    assert!(role["rules"].to_string().contains(bulkhead_controller::ha::lease::DEFAULT_LEASE));
    assert!(role["rules"].to_string().contains(bulkhead_controller::ha::persist::DEFAULT_STATE));
    let binding = find(&objects, "RoleBinding", "bulkhead-controller-leader");
    assert_eq!(binding["subjects"][0]["name"], "bulkhead-controller");
    // Both replicas are ready; the Services follow the leader's label.
    for name in ["bulkhead-controller", "bulkhead-console"] {
        assert_eq!(find(&objects, "Service", name)["spec"]["selector"][bulkhead_controller::ha::label::LABEL], "true");
    }
    // A drain leaves one replica.
    assert_eq!(find(&objects, "PodDisruptionBudget", "bulkhead-controller")["spec"]["minAvailable"], 1);
    // Uninstall removes either shape.
    let text = uninstall(&UninstallArgs {
        namespace: a.namespace.clone(),
        node_cleanup: false,
        image: "bulkhead".into(),
        image_pull_policy: "IfNotPresent".into(),
    })
    .unwrap();
    assert!(text.contains("kind: StatefulSet") && text.contains("kind: Deployment"), "{text}");
}
