use bulkhead_model::exposure::{AppProtocol, Exposer, ExposureClass, FindingKind};
use bulkhead_policy::evaluate::PolicySet;
use bulkhead_policy::inventory::{HostNetworkPod, Inventory, Namespace, Pod, Service};
use bulkhead_policy::netpol::NetworkPolicy;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1 as net;

use super::*;
use crate::EdgeStats;

fn workload(pod: &Pod) -> Entity {
    Entity::Workload {
        namespace: pod.namespace.as_str().into(),
        kind: "Deployment".into(),
        name: pod.labels["app"].as_str().into(),
    }
}

fn w(ns: &str, name: &str) -> Entity {
    Entity::Workload { namespace: ns.into(), kind: "Deployment".into(), name: name.into() }
}

/// shop (tenant a): web behind a NodePort, redis behind a ClusterIP, api
/// behind a Local LoadBalancer, a headless peers service; other (tenant b):
/// client; ops: an ExternalName and a host-network exporter.
fn cluster() -> Inventory {
    let mut inv = Inventory::new("c");
    for (ns, tenant) in [("shop", "a"), ("other", "b"), ("ops", "")] {
        let labels =
            if tenant.is_empty() { String::new() } else { format!("labels: {{bulkhead.dev/tenant: {tenant}}}") };
        let o: core::Namespace = serde_yaml::from_str(&format!("metadata: {{name: {ns}, {labels}}}")).unwrap();
        inv.put_namespace(Namespace::try_from(&o).unwrap());
    }
    let pods = [
        ("shop", "web", "10.244.1.2", "n1", "[{containerPort: 8080, name: http}]"),
        ("shop", "redis", "10.244.1.3", "n1", "[{containerPort: 6379, name: tcp-redis}]"),
        (
            "shop",
            "api",
            "10.244.2.4",
            "n2",
            "[{containerPort: 8443, name: https}, {containerPort: 9000, hostPort: 9000}]",
        ),
        ("other", "client", "10.244.2.5", "n2", "[]"),
    ];
    for (ns, app, ip, node, ports) in pods {
        let o: core::Pod = serde_yaml::from_str(&format!(
            "metadata: {{name: {app}-1, namespace: {ns}, labels: {{app: {app}}}}}\n\
             spec: {{nodeName: {node}, containers: [{{name: c, ports: {ports}}}]}}\n\
             status: {{podIP: {ip}}}\n"
        ))
        .unwrap();
        inv.put_pod(Pod::from_object(&o, "c").unwrap().unwrap());
    }
    let host: core::Pod = serde_yaml::from_str(
        "metadata: {name: exporter, namespace: ops}\nspec: {hostNetwork: true, nodeName: n1, containers: [{name: c, ports: [{containerPort: 9100}]}]}\n",
    )
    .unwrap();
    inv.host_network.insert("ops/exporter".into(), HostNetworkPod::from_object(&host).unwrap().unwrap());
    let services = [
        "metadata: {name: web, namespace: shop}\nspec: {type: NodePort, clusterIP: 10.96.1.1, selector: {app: web}, ports: [{port: 80, targetPort: http, nodePort: 30080}]}",
        "metadata: {name: redis, namespace: shop}\nspec: {clusterIP: 10.96.1.2, selector: {app: redis}, ports: [{port: 6379, name: tcp-redis}]}",
        "metadata: {name: api, namespace: shop}\nspec: {type: LoadBalancer, externalTrafficPolicy: Local, clusterIP: 10.96.1.3, selector: {app: api}, ports: [{port: 443, targetPort: 8443, nodePort: 30443}]}\nstatus: {loadBalancer: {ingress: [{ip: 172.30.0.2}]}}",
        "metadata: {name: peers, namespace: shop}\nspec: {clusterIP: None, selector: {app: redis}, ports: [{port: 6379}]}",
        "metadata: {name: billing, namespace: ops}\nspec: {type: ExternalName, externalName: billing.example.com}",
    ];
    for s in services {
        let o: core::Service = serde_yaml::from_str(s).unwrap();
        inv.put_service(Service::try_from(&o).unwrap());
    }
    inv.nodes.insert("n1".into(), vec!["172.30.0.1".parse().unwrap()]);
    inv.nodes.insert("n2".into(), vec!["172.30.0.2".parse().unwrap()]);
    inv
}

fn policies(docs: &[&str]) -> PolicySet {
    let mut set = PolicySet::default();
    for d in docs {
        let o: net::NetworkPolicy = serde_yaml::from_str(d).unwrap();
        set.put_network(NetworkPolicy::try_from(&o).unwrap());
    }
    set
}

fn edge(src: Entity, dst: Entity, port: u16, connections: u64) -> (Entity, Entity, EdgeKey, EdgeStats) {
    let key = EdgeKey { protocol: 6, port, service: None };
    (src, dst, key, EdgeStats { connections, forwarded: connections, last_seen_ns: 5, ..Default::default() })
}

fn run(inv: &Inventory, set: &PolicySet, observed: &[(Entity, Entity, EdgeKey, EdgeStats)]) -> Exposure {
    run_heard(inv, set, observed, &AppObservations::default())
}

fn run_heard(
    inv: &Inventory,
    set: &PolicySet,
    observed: &[(Entity, Entity, EdgeKey, EdgeStats)],
    apps: &AppObservations,
) -> Exposure {
    let sockets = Sockets::new();
    report(&Input {
        inventory: inv,
        policies: set,
        workload_of: &workload,
        observed,
        apps,
        since_ns: 0,
        sockets: &sockets,
    })
}

fn sample(server: Entity, port: u16, app: Option<AppProtocol>, from_server: bool, host: &str) -> crate::apps::AppSeen {
    crate::apps::AppSeen {
        server,
        protocol: 6,
        port,
        app,
        from_server,
        host: host.into(),
        alpn: Vec::new(),
        method: String::new(),
        time_ns: 7,
    }
}

#[test]
fn traffic_speaking_another_protocol_than_declared_is_a_finding_with_its_samples() {
    let inv = cluster();
    let mut apps = AppObservations::default();
    // web declares http on 8080 but speaks TLS; redis speaks what it declares.
    apps.add(&sample(w("shop", "web"), 8080, Some(AppProtocol::Tls), false, "web.shop"));
    apps.add(&sample(w("shop", "web"), 8080, Some(AppProtocol::Tls), true, ""));
    apps.add(&sample(w("shop", "web"), 8080, None, true, ""));
    apps.add(&sample(w("shop", "redis"), 6379, Some(AppProtocol::Redis), false, ""));
    let e = run_heard(&inv, &PolicySet::default(), &[], &apps);
    let web = port(&e, "shop", Some("web"), 80);
    assert_eq!(web.speaks, Some(AppProtocol::Tls));
    assert_eq!(web.heard.len(), 2);
    assert_eq!((web.heard[0].protocol, web.heard[0].heard.samples()), (Some(AppProtocol::Tls), 2));
    let mismatch = web.findings.iter().find(|f| f.kind == FindingKind::ProtocolMismatch).expect("a mismatch");
    assert!(mismatch.message.contains("declares http but its traffic is tls"), "{}", mismatch.message);
    assert!(mismatch.evidence[0].contains("1 sample(s) from clients, 1 from the server; names web.shop"));
    let redis = port(&e, "shop", Some("redis"), 6379);
    assert_eq!(redis.speaks, Some(AppProtocol::Redis));
    assert!(!kinds(redis).contains(&FindingKind::ProtocolMismatch));
    // Samples before the window do not count.
    let later = report(&Input {
        inventory: &inv,
        policies: &PolicySet::default(),
        workload_of: &workload,
        observed: &[],
        apps: &apps,
        since_ns: 8,
        sockets: &Sockets::new(),
    });
    assert_eq!(port(&later, "shop", Some("web"), 80).speaks, None);
}

#[test]
fn ports_open_but_undeclared_and_declared_but_not_open_are_findings_from_the_pods_sockets() {
    let inv = cluster();
    let open = |ports: &[(Protocol, u16)], loopback: &[(Protocol, u16)]| PodSockets {
        read_ns: 11,
        open: ports.iter().copied().collect(),
        loopback: loopback.iter().copied().collect(),
    };
    let mut sockets = Sockets::new();
    // web serves 8080 and a debug port nobody declared; redis binds loopback
    // only; api is not read at all.
    sockets.insert("shop/web-1".into(), open(&[(Protocol::Tcp, 8080), (Protocol::Tcp, 6060)], &[]));
    sockets.insert("shop/redis-1".into(), open(&[], &[(Protocol::Tcp, 6379)]));
    let run = |s: &Sockets| {
        report(&Input {
            inventory: &inv,
            policies: &PolicySet::default(),
            workload_of: &workload,
            observed: &[],
            apps: &AppObservations::default(),
            since_ns: 0,
            sockets: s,
        })
    };
    let e = run(&sockets);
    let web = port(&e, "shop", Some("web"), 80);
    // Traffic to a port nothing listens on is no use of it.
    let stray = [edge(w("other", "client"), w("shop", "web"), 7777, 1)];
    let with_stray = report(&Input {
        inventory: &inv,
        policies: &PolicySet::default(),
        workload_of: &workload,
        observed: &stray,
        apps: &AppObservations::default(),
        since_ns: 0,
        sockets: &sockets,
    });
    let p = with_stray.ports.iter().find(|p| p.port == 7777).expect("the reached port is listed");
    assert_eq!(p.did_reach.len(), 1);
    assert!(!kinds(p).contains(&FindingKind::Undeclared), "{:?}", p.findings);
    let unread = run_heard(&inv, &PolicySet::default(), &stray, &AppObservations::default());
    let p = unread.ports.iter().find(|p| p.port == 7777).expect("listed");
    assert!(kinds(p).contains(&FindingKind::Undeclared), "{:?}", p.findings);
    let l = web.listening.as_ref().expect("web was read");
    assert_eq!((l.pods_read, l.open.as_slice(), l.read_ns), (1, &["shop/web-1".to_string()][..], 11));
    assert!(!kinds(web).contains(&FindingKind::NotListening));
    let debug = e
        .ports
        .iter()
        .find(|p| p.workloads == [w("shop", "web")] && p.port == 6060)
        .expect("the undeclared open port is listed");
    assert!(!debug.declared);
    let f = debug.findings.iter().find(|f| f.kind == FindingKind::ListeningUndeclared).expect("finding");
    assert!(f.message.contains("1 pod(s) listen on TCP/6060 but no container declares it"), "{}", f.message);
    assert_eq!(f.evidence, vec!["shop/web-1 listens on TCP/6060"]);
    // Declared and targeted, but bound to loopback: not listening, for both services.
    for svc in ["redis", "peers"] {
        let redis = port(&e, "shop", Some(svc), 6379);
        let f = redis.findings.iter().find(|f| f.kind == FindingKind::NotListening).expect("not listening");
        assert!(f.message.contains("1 of 1 pod(s) read do not listen on TCP/6379"), "{}", f.message);
        assert!(f.evidence[0].contains("loopback only"), "{:?}", f.evidence);
    }
    // Not read: no claim either way.
    let api = port(&e, "shop", Some("api"), 443);
    assert_eq!(api.listening, None);
    assert!(!kinds(api).contains(&FindingKind::NotListening));
    // Nothing read: neither finding anywhere, and no extra port.
    let none = run(&Sockets::new());
    let counts = none.finding_counts();
    assert!(
        !counts.contains_key(&FindingKind::NotListening) && !counts.contains_key(&FindingKind::ListeningUndeclared)
    );
    assert!(!none.ports.iter().any(|p| p.port == 6060));
    // A pod that stops listening: closed, not loopback.
    sockets.insert("shop/web-1".into(), open(&[(Protocol::Tcp, 6060)], &[]));
    let e = run(&sockets);
    let web = port(&e, "shop", Some("web"), 80);
    assert_eq!(web.listening.as_ref().unwrap().closed, vec!["shop/web-1".to_string()]);
    let f = web.findings.iter().find(|f| f.kind == FindingKind::NotListening).expect("not listening");
    assert_eq!(f.evidence, vec!["shop/web-1: no socket on TCP/8080"]);
}

fn port<'a>(e: &'a Exposure, ns: &str, service: Option<&str>, port: u16) -> &'a ExposedPort {
    e.ports
        .iter()
        .find(|p| p.namespace == ns && p.service.as_deref() == service && p.port == port)
        .unwrap_or_else(|| panic!("no {ns} {service:?} {port} in {:#?}", e.ports))
}

fn kinds(p: &ExposedPort) -> Vec<FindingKind> {
    p.findings.iter().map(|f| f.kind).collect()
}

#[test]
fn classes_exposers_and_hints_come_from_the_inventory() {
    let inv = cluster();
    let e = run(&inv, &PolicySet::default(), &[]);
    let web = port(&e, "shop", Some("web"), 80);
    assert_eq!(web.class, ExposureClass::InternetFacing);
    assert_eq!(web.exposed_by[0].via, Exposer::NodePort);
    // Its own port is unnamed: the container port it targets, `http`, says.
    assert_eq!((web.targets.as_slice(), web.declared_protocol), (&[8080u16][..], Some(AppProtocol::Http)));
    let redis = port(&e, "shop", Some("redis"), 6379);
    assert_eq!((redis.class, redis.declared_protocol), (ExposureClass::ClusterInternal, Some(AppProtocol::Redis)));
    assert_eq!(port(&e, "shop", Some("peers"), 6379).class, ExposureClass::Headless);
    assert_eq!(port(&e, "ops", Some("billing"), 0).class, ExposureClass::ExternalName);
    let api = port(&e, "shop", Some("api"), 443);
    assert_eq!(api.exposed_by.iter().map(|e| e.via).collect::<Vec<_>>(), [Exposer::LoadBalancer, Exposer::NodePort]);
    let host_port = port(&e, "shop", None, 9000);
    assert_eq!((host_port.class, host_port.exposed_by[0].via), (ExposureClass::InternetFacing, Exposer::HostPort));
    let exporter = port(&e, "ops", None, 9100);
    assert!(!exporter.policed && exporter.can_reach.world.is_some());
    assert!(kinds(exporter).contains(&FindingKind::NoPolicy));
}

#[test]
fn with_no_policy_everything_reaches_everything_and_the_database_is_flagged() {
    let inv = cluster();
    let e = run(&inv, &PolicySet::default(), &[]);
    let redis = port(&e, "shop", Some("redis"), 6379);
    assert!(redis.can_reach.every_namespace && redis.can_reach.world.is_none());
    assert_eq!(redis.can_reach.workloads_total, 4);
    let k = kinds(redis);
    assert!(k.contains(&FindingKind::DatabaseExposed) && k.contains(&FindingKind::CrossTenant), "{k:?}");
    assert!(!k.contains(&FindingKind::UnusedPath), "open, not allowed by a rule: {k:?}");
    // A Cluster-policy NodePort reaches the pod as its own node's address.
    let web = port(&e, "shop", Some("web"), 80);
    assert!(web.can_reach.world.as_deref().unwrap().contains("172.30.0.1"), "{:?}", web.can_reach.world);
    assert!(kinds(web).contains(&FindingKind::NoPolicy));
}

#[test]
fn policies_narrow_can_reach_and_unused_paths_are_reported() {
    let inv = cluster();
    let set = policies(&[
        "metadata: {name: redis, namespace: shop}\nspec: {podSelector: {matchLabels: {app: redis}}, ingress: [{from: [{podSelector: {}}]}]}",
        "metadata: {name: api, namespace: shop}\nspec: {podSelector: {matchLabels: {app: api}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}",
    ]);
    let observed = [edge(w("shop", "web"), w("shop", "redis"), 6379, 3)];
    let e = run(&inv, &set, &observed);
    let redis = port(&e, "shop", Some("redis"), 6379);
    assert_eq!(redis.can_reach.namespaces.iter().map(|n| n.namespace.as_str()).collect::<Vec<_>>(), ["shop"]);
    assert_eq!((redis.can_reach.namespaces[0].workloads, redis.can_reach.namespaces[0].of), (3, 3));
    assert!(!redis.can_reach.every_namespace);
    assert_eq!(redis.did_reach.len(), 1);
    assert_eq!((&redis.did_reach[0].source, redis.did_reach[0].connections), (&w("shop", "web"), 3));
    let k = kinds(redis);
    assert_eq!(k, [FindingKind::UnusedPath], "{:#?}", redis.findings);
    assert!(redis.findings[0].workloads.contains(&w("shop", "api")), "{:#?}", redis.findings);
    assert!(redis.findings[0].evidence[0].contains("shop/redis#0"));
    // The Local LoadBalancer keeps client addresses: a pod-only rule stops the world.
    let api = port(&e, "shop", Some("api"), 443);
    assert_eq!(api.can_reach.world, None);
    assert!(!kinds(api).contains(&FindingKind::NoPolicy));
}

#[test]
fn an_ip_block_opens_a_local_load_balancer_to_the_world_minus_its_exceptions() {
    let inv = cluster();
    let open = policies(&[
        "metadata: {name: api, namespace: shop}\nspec: {podSelector: {matchLabels: {app: api}}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: [203.0.113.0/24]}}]}]}",
    ]);
    let e = run(&inv, &open, &[]);
    let world = port(&e, "shop", Some("api"), 443).can_reach.world.clone().unwrap();
    assert!(!world.contains("203.0.113."), "the exception is not an example: {world}");
    let closed = policies(&[
        "metadata: {name: api, namespace: shop}\nspec: {podSelector: {matchLabels: {app: api}}, ingress: [{from: [{ipBlock: {cidr: 10.244.2.5/32}}]}]}",
    ]);
    assert_eq!(port(&run(&inv, &closed, &[]), "shop", Some("api"), 443).can_reach.world, None);
}

#[test]
fn a_database_port_is_flagged_even_when_its_name_says_otherwise() {
    let mut inv = cluster();
    let o: core::Service = serde_yaml::from_str(
        "metadata: {name: cache, namespace: shop}\nspec: {clusterIP: 10.96.1.9, selector: {app: redis}, ports: [{port: 6379, name: grpc}]}",
    )
    .unwrap();
    inv.put_service(Service::try_from(&o).unwrap());
    let e = run(&inv, &PolicySet::default(), &[]);
    let p = port(&e, "shop", Some("cache"), 6379);
    assert_eq!(p.declared_protocol, Some(AppProtocol::Grpc));
    assert!(kinds(p).contains(&FindingKind::DatabaseExposed), "{:#?}", p.findings);
}

#[test]
fn traffic_to_a_port_nobody_declares_is_its_own_entry_and_finding() {
    let inv = cluster();
    let observed = [edge(w("other", "client"), w("shop", "web"), 9999, 2)];
    let e = run(&inv, &PolicySet::default(), &observed);
    let p = port(&e, "shop", None, 9999);
    assert!(!p.declared);
    assert_eq!(kinds(p), [FindingKind::CrossTenant, FindingKind::Undeclared]);
    assert_eq!(p.findings[1].workloads, [w("other", "client")]);
    assert!(p.findings[1].evidence[0].starts_with("2 connection(s) from 1 source"), "{:#?}", p.findings);
    assert!(e.ports.iter().filter(|p| p.findings.iter().any(|f| f.kind == FindingKind::Undeclared)).count() == 1);
}
