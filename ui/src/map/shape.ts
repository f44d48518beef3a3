// What the map draws, as pure data: the API's workload graph grouped by
// namespace (collapsed namespaces become one node), filtered, with edges
// merged per pair of drawn nodes and marked new, allowed-only or cut by a
// suggestion; and a layout that keeps each namespace together.
import type { Allowed, Flow, Graph, GraphEdge, GraphNode, Peer, Verdict } from "../api/client";

export type VerdictFilter = Verdict | "all";

/** An edge's port as people read it: the scan edge stands for every port past the controller's limit. */
export function portLabel(e: { protocol: string; port: number; folded?: boolean }): string {
  return e.folded ? `${e.protocol}/many ports (scan edge)` : `${e.protocol}/${e.port}`;
}

export interface MapFilter {
  /** Only these namespaces (and their peers); empty: all. */
  namespaces: string[];
  verdict: VerdictFilter;
  port: number | null;
  protocol: string | null;
  /** Name or label (`key=value`) search; matches are highlighted. */
  search: string;
}

export interface MapNode {
  id: string;
  label: string;
  /** The namespace group it is drawn in ("" for world and nodes). */
  group: string;
  kind: GraphNode["kind"] | "group";
  /** Workloads behind a collapsed namespace. */
  members: number;
  quarantined: boolean;
  match: boolean;
  redacted: boolean;
}

export interface MapEdge {
  id: string;
  source: string;
  target: string;
  connections: number;
  forwarded: number;
  dropped: number;
  audit: number;
  bytes: number;
  /** The "protocol/port" pairs merged into it. */
  ports: string[];
  /** The API edges it stands for. */
  parts: GraphEdge[];
  /** What colours it: any drop, else any would-drop, else forwarded. */
  verdict: Verdict;
  /** Not in the learned baseline (an anomaly). */
  fresh: boolean;
  /** Allowed by the policies in force but never observed. */
  unused: boolean;
  /** A suggestion under review would drop flows on it. */
  cut: boolean;
}

export interface Shaped {
  nodes: MapNode[];
  edges: MapEdge[];
  /** Namespaces present, with how many workloads each has. */
  groups: Map<string, number>;
}

export interface ShapeInput {
  graph: Graph;
  /** Every workload of the inventory, observed or not. */
  workloads?: GraphNode[];
  filter: MapFilter;
  collapsed: ReadonlySet<string>;
  /** Node ids of workloads with a quarantined pod. */
  quarantined?: ReadonlySet<string>;
  /** Labels per node id, for search. */
  labels?: ReadonlyMap<string, Record<string, string>>;
  /** Keys (`source>destination`, node ids) of edges new since the baseline. */
  fresh?: ReadonlySet<string>;
  /** Keys of edges a suggestion would cut. */
  cut?: ReadonlySet<string>;
  /** The allowed overlay, when shown. */
  allowed?: Allowed | null;
}

/** The workload-level graph's node id of a workload (`workload:ns/Kind/name`). */
export function workloadNodeId(w: { namespace: string; kind: string; name: string }): string {
  return `workload:${w.namespace}/${w.kind}/${w.name}`;
}

/** "namespace/name" of a workload node id, as the API names workloads. */
export function workloadName(id: string): string | null {
  const m = /^workload:([^/]+)\/[^/]+\/(.+)$/.exec(id);
  return m ? `${m[1]}/${m[2]}` : null;
}

/** The graph node id of a flow's end, as the workload-level graph names it. */
export function peerNodeId(p: Peer): string | null {
  if (p.kind === "workload" && p.namespace && p.name && p.workload_kind) {
    return workloadNodeId({ namespace: p.namespace, kind: p.workload_kind, name: p.name });
  }
  if (p.kind === "namespace" && p.namespace) return `namespace:${p.namespace}`;
  return null;
}

export function pairKey(source: string, target: string): string {
  return `${source}>${target}`;
}

/** Keys of the edges flows run on (for a suggestion's would-drop list). */
export function flowPairs(flows: Flow[]): Set<string> {
  const out = new Set<string>();
  for (const f of flows) {
    const a = peerNodeId(f.source);
    const b = peerNodeId(f.destination);
    if (a && b) out.add(pairKey(a, b));
  }
  return out;
}

function groupOf(n: GraphNode): string {
  return n.namespace ?? "";
}

function matches(n: GraphNode, search: string, labels: Record<string, string> | undefined): boolean {
  const s = search.trim().toLowerCase();
  if (!s) return false;
  if (n.name.toLowerCase().includes(s) || n.id.toLowerCase().includes(s)) return true;
  const eq = s.indexOf("=");
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (eq > 0 ? `${k}=${v}`.toLowerCase() === s : k.toLowerCase().includes(s) || v.toLowerCase().includes(s)) return true;
  }
  return false;
}

function edgeVisible(e: GraphEdge, f: MapFilter): boolean {
  if (f.port !== null && e.port !== f.port) return false;
  if (f.protocol && e.protocol.toUpperCase() !== f.protocol.toUpperCase()) return false;
  if (f.verdict === "forwarded" && e.forwarded === 0) return false;
  if (f.verdict === "dropped" && e.dropped === 0) return false;
  if (f.verdict === "audit" && e.audit === 0) return false;
  return true;
}

/** Groups, filters and merges the graph into what the map draws. */
export function shape(input: ShapeInput): Shaped {
  const { graph, filter, collapsed } = input;
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  for (const w of input.workloads ?? []) if (!byId.has(w.id)) byId.set(w.id, w);
  const all = [...byId.values()];
  const groups = new Map<string, number>();
  for (const n of all) if (n.kind !== "world" && n.kind !== "host") groups.set(groupOf(n), (groups.get(groupOf(n)) ?? 0) + 1);
  const wanted = new Set(filter.namespaces);
  const inFilter = (n: GraphNode | undefined) => wanted.size === 0 || (n !== undefined && wanted.has(groupOf(n)));
  const drawnId = (n: GraphNode) => (n.namespace && collapsed.has(n.namespace) ? `group:${n.namespace}` : n.id);

  const nodes = new Map<string, MapNode>();
  const seen = new Set<string>();
  const add = (n: GraphNode) => {
    const id = drawnId(n);
    const existing = nodes.get(id);
    if (existing && seen.has(n.id)) return id;
    seen.add(n.id);
    const isMatch = matches(n, filter.search, input.labels?.get(n.id));
    const q = input.quarantined?.has(n.id) ?? false;
    if (existing) {
      if (existing.kind === "group") existing.members += 1;
      existing.match ||= isMatch;
      existing.quarantined ||= q;
      return id;
    }
    const group = id.startsWith("group:");
    nodes.set(id, {
      id,
      label: group ? `${n.namespace} (${groups.get(groupOf(n)) ?? 0})` : n.kind === "workload" ? n.name : `${n.kind} ${n.name}`,
      group: groupOf(n),
      kind: group ? "group" : n.kind,
      members: 1,
      quarantined: q,
      match: isMatch,
      redacted: n.redacted ?? false,
    });
    return id;
  };

  const edges = new Map<string, MapEdge>();
  const touch = (source: string, target: string): MapEdge => {
    const key = pairKey(source, target);
    let m = edges.get(key);
    if (!m) {
      m = {
        id: key,
        source,
        target,
        connections: 0,
        forwarded: 0,
        dropped: 0,
        audit: 0,
        bytes: 0,
        ports: [],
        parts: [],
        verdict: "forwarded",
        fresh: false,
        unused: false,
        cut: false,
      };
      edges.set(key, m);
    }
    return m;
  };

  for (const e of graph.edges) {
    const a = byId.get(e.source);
    const b = byId.get(e.destination);
    if (!a || !b || !(inFilter(a) || inFilter(b)) || !edgeVisible(e, filter)) continue;
    const s = add(a);
    const t = add(b);
    if (s === t) continue;
    const m = touch(s, t);
    m.connections += e.connections;
    m.forwarded += e.forwarded;
    m.dropped += e.dropped;
    m.audit += e.audit;
    m.bytes += e.bytes;
    m.parts.push(e);
    const port = portLabel(e);
    if (!m.ports.includes(port)) m.ports.push(port);
    m.fresh ||= input.fresh?.has(pairKey(e.source, e.destination)) ?? false;
    m.cut ||= input.cut?.has(pairKey(e.source, e.destination)) ?? false;
  }
  // Workloads without an observed edge are still part of the cluster.
  for (const n of all) if (inFilter(n) && n.kind === "workload" && filter.verdict === "all") add(n);

  if (input.allowed) {
    const known = new Map(input.allowed.nodes.map((n) => [n.id, n]));
    for (const e of input.allowed.edges) {
      if (e.observed) continue;
      if (filter.port !== null && e.port !== filter.port) continue;
      if (filter.protocol && e.protocol.toUpperCase() !== filter.protocol.toUpperCase()) continue;
      const a = byId.get(e.source) ?? known.get(e.source);
      const b = byId.get(e.destination) ?? known.get(e.destination);
      if (!a || !b || !(inFilter(a) || inFilter(b))) continue;
      const s = add(a);
      const t = add(b);
      if (s === t) continue;
      const m = touch(s, t);
      const port = `${e.protocol}/${e.port}`;
      if (!m.ports.includes(port)) m.ports.push(port);
      if (m.parts.length === 0) m.unused = true;
    }
  }
  for (const m of edges.values()) m.verdict = m.dropped > 0 ? "dropped" : m.audit > 0 ? "audit" : "forwarded";
  return { nodes: [...nodes.values()], edges: [...edges.values()], groups };
}

export interface GroupLabel {
  group: string;
  x: number;
  y: number;
}

export interface Layout {
  positions: Map<string, { x: number; y: number }>;
  /** Where each namespace's name is written. */
  labels: GroupLabel[];
}

/**
 * Positions that keep each namespace together: groups on a grid, largest
 * first, each one's nodes on a sunflower spiral around its centre (so
 * 5 000 workloads place in linear time, with no overlap and no jitter).
 */
export function layout(nodes: MapNode[]): Layout {
  const byGroup = new Map<string, MapNode[]>();
  for (const n of nodes) {
    const list = byGroup.get(n.group) ?? [];
    list.push(n);
    byGroup.set(n.group, list);
  }
  const ordered = [...byGroup.entries()].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]));
  const cols = Math.max(1, Math.ceil(Math.sqrt(ordered.length)));
  const cell = Math.max(...ordered.map(([, l]) => Math.sqrt(l.length)), 1) * 2.4 + 4;
  const out = new Map<string, { x: number; y: number }>();
  const golden = Math.PI * (3 - Math.sqrt(5));
  const labels: GroupLabel[] = [];
  ordered.forEach(([group, list], gi) => {
    const cx = (gi % cols) * cell;
    const cy = Math.floor(gi / cols) * cell;
    list.sort((a, b) => a.id.localeCompare(b.id));
    list.forEach((n, i) => {
      const r = Math.sqrt(i + 0.5) * 1.1;
      out.set(n.id, { x: cx + r * Math.cos(i * golden), y: cy + r * Math.sin(i * golden) });
    });
    // Sigma's y axis points up: the label sits above the group.
    labels.push({ group, x: cx, y: cy + Math.sqrt(list.length) * 1.1 + 1.2 });
  });
  return { positions: out, labels };
}
