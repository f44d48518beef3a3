import { describe, expect, it } from "vitest";
import type { Graph, GraphEdge, GraphNode } from "../src/api/client";
import { flowPairs, layout, pairKey, shape, type MapFilter } from "../src/map/shape";

const node = (ns: string, name: string): GraphNode => ({ id: `workload:${ns}/Deployment/${name}`, kind: "workload", namespace: ns, name, workload_kind: "Deployment" });
const edge = (a: GraphNode, b: GraphNode, port: number, counts: Partial<GraphEdge> = {}): GraphEdge => ({
  source: a.id,
  destination: b.id,
  protocol: "TCP",
  port,
  connections: 10,
  forwarded: 10,
  dropped: 0,
  audit: 0,
  bytes: 100,
  first_seen_ns: 1,
  last_seen_ns: 2,
  folded: false,
  ...counts,
});
const web = node("shop", "web");
const api = node("shop", "api");
const db = node("shop", "db");
const ledger = node("bank", "ledger");
const graph: Graph = {
  level: "workload",
  nodes: [web, api, db, ledger],
  edges: [edge(web, api, 8080), edge(web, api, 9090, { connections: 2, forwarded: 0, dropped: 2 }), edge(api, db, 5432), edge(web, ledger, 9000, { audit: 3, forwarded: 7 })],
};
const all: MapFilter = { namespaces: [], verdict: "all", port: null, protocol: null, search: "" };

describe("shape", () => {
  it("merges the ports between two nodes into one edge, coloured by its worst verdict", () => {
    const s = shape({ graph, filter: all, collapsed: new Set() });
    const e = s.edges.find((x) => x.id === pairKey(web.id, api.id));
    expect(e?.ports).toEqual(["TCP/8080", "TCP/9090"]);
    expect(e?.connections).toBe(12);
    expect(e?.verdict).toBe("dropped");
    expect(s.edges.find((x) => x.target === ledger.id)?.verdict).toBe("audit");
    expect(s.groups.get("shop")).toBe(3);
  });

  it("names the scan edge for what it is, not port 0", () => {
    const scan = { ...graph, edges: [...graph.edges, edge(web, api, 0, { folded: true, connections: 900, dropped: 900, forwarded: 0 })] };
    const e = shape({ graph: scan, filter: all, collapsed: new Set() }).edges.find((x) => x.id === pairKey(web.id, api.id));
    expect(e?.ports).toEqual(["TCP/8080", "TCP/9090", "TCP/many ports (scan edge)"]);
    expect(e?.connections).toBe(912);
  });

  it("collapses a namespace into one node and drops the edges inside it", () => {
    const s = shape({ graph, filter: all, collapsed: new Set(["shop"]) });
    expect(s.nodes.map((n) => n.id).sort()).toEqual(["group:shop", ledger.id]);
    expect(s.nodes.find((n) => n.id === "group:shop")?.members).toBe(3);
    expect(s.edges.map((e) => e.id)).toEqual([pairKey("group:shop", ledger.id)]);
  });

  it("filters by namespace (keeping peers), verdict, port and protocol", () => {
    const bank = shape({ graph, filter: { ...all, namespaces: ["bank"] }, collapsed: new Set() });
    expect(bank.nodes.map((n) => n.id).sort()).toEqual([ledger.id, web.id].sort());
    const dropped = shape({ graph, filter: { ...all, verdict: "dropped" }, collapsed: new Set() });
    expect(dropped.edges.map((e) => e.ports)).toEqual([["TCP/9090"]]);
    const port = shape({ graph, filter: { ...all, port: 5432 }, collapsed: new Set() });
    expect(port.edges.map((e) => e.id)).toEqual([pairKey(api.id, db.id)]);
    const udp = shape({ graph, filter: { ...all, protocol: "udp" }, collapsed: new Set() });
    expect(udp.edges).toEqual([]);
  });

  it("matches a search by name or by label", () => {
    const labels = new Map([[db.id, { tier: "data" }]]);
    const s = shape({ graph, filter: { ...all, search: "tier=data" }, collapsed: new Set(), labels });
    expect(s.nodes.filter((n) => n.match).map((n) => n.id)).toEqual([db.id]);
    const byName = shape({ graph, filter: { ...all, search: "LEDG" }, collapsed: new Set() });
    expect(byName.nodes.filter((n) => n.match).map((n) => n.id)).toEqual([ledger.id]);
  });

  it("marks new, cut and allowed-but-unused edges, and quarantined nodes", () => {
    const s = shape({
      graph,
      filter: all,
      collapsed: new Set(),
      fresh: new Set([pairKey(api.id, db.id)]),
      cut: new Set([pairKey(web.id, ledger.id)]),
      quarantined: new Set([db.id]),
      allowed: {
        nodes: [],
        edges: [
          { source: web.id, destination: api.id, protocol: "TCP", port: 8080, observed: true },
          { source: ledger.id, destination: db.id, protocol: "TCP", port: 5432, observed: false },
        ],
      },
    });
    expect(s.edges.find((e) => e.id === pairKey(api.id, db.id))?.fresh).toBe(true);
    expect(s.edges.find((e) => e.id === pairKey(web.id, ledger.id))?.cut).toBe(true);
    const unused = s.edges.filter((e) => e.unused);
    expect(unused.map((e) => e.id)).toEqual([pairKey(ledger.id, db.id)]);
    expect(s.nodes.find((n) => n.id === db.id)?.quarantined).toBe(true);
  });

  it("puts workloads of the inventory without traffic on the map", () => {
    const spare = node("shop", "spare");
    const s = shape({ graph, workloads: [spare], filter: all, collapsed: new Set() });
    expect(s.nodes.some((n) => n.id === spare.id)).toBe(true);
    expect(s.groups.get("shop")).toBe(4);
  });

  it("names the edges a suggestion's flows run on", () => {
    const peer = (n: GraphNode) => ({ kind: "workload" as const, namespace: n.namespace, name: n.name, workload_kind: "Deployment", pod: `${n.name}-0` });
    const flow = { source: peer(web), destination: peer(ledger) } as Parameters<typeof flowPairs>[0][number];
    expect([...flowPairs([flow])]).toEqual([pairKey(web.id, ledger.id)]);
  });
});

describe("layout", () => {
  it("places every node once, keeps namespaces apart, and is deterministic", () => {
    const s = shape({ graph, filter: all, collapsed: new Set() });
    const a = layout(s.nodes);
    expect(a.positions.size).toBe(s.nodes.length);
    expect(layout(s.nodes)).toEqual(a);
    const p = (id: string) => a.positions.get(id)!;
    const d = (x: { x: number; y: number }, y: { x: number; y: number }) => Math.hypot(x.x - y.x, x.y - y.y);
    expect(d(p(web.id), p(api.id))).toBeLessThan(d(p(web.id), p(ledger.id)));
    expect(a.labels.map((l) => l.group).sort()).toEqual(["bank", "shop"]);
  });

  it("lays out 5 000 workloads in 50 namespaces without two nodes on one spot", () => {
    const nodes = Array.from({ length: 5000 }, (_, i) => ({ id: `n${i}`, label: "", group: `ns${i % 50}`, kind: "workload" as const, members: 1, quarantined: false, match: false, redacted: false }));
    const { positions } = layout(nodes);
    const spots = new Set([...positions.values()].map((p) => `${p.x.toFixed(3)},${p.y.toFixed(3)}`));
    expect(spots.size).toBe(5000);
  });
});
