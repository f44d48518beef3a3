// The map: the whole cluster grouped by namespace, edges coloured by verdict
// and sized by connections, with filters in the URL, the allowed-vs-observed
// overlay, a suggestion's cut edges, and panels for a node or an edge.
import { useMemo, useState } from "react";
import { get, type Graph } from "../api/client";
import { allAnomalies, allPods, podWorkloadId } from "../api/inventory";
import { format, update } from "../route";
import { ErrorBox, Loading, useApi } from "../ui/states";
import { MapCanvas, type Highlight } from "./canvas";
import { marks, reachers } from "./exposure";
import { EdgePanel, NodePanel } from "./panels";
import { flowPairs, pairKey, peerNodeId, shape, workloadName, workloadNodeId, type MapFilter, type VerdictFilter } from "./shape";

function filterOf(p: URLSearchParams): MapFilter {
  const port = Number(p.get("port"));
  return {
    namespaces: (p.get("namespace") ?? "").split(",").filter(Boolean),
    verdict: (p.get("verdict") as VerdictFilter) || "all",
    port: Number.isInteger(port) && port > 0 ? port : null,
    protocol: p.get("protocol") || null,
    search: p.get("q") ?? "",
  };
}

export function MapView({ params }: { params: URLSearchParams }) {
  const filter = useMemo(() => filterOf(params), [params]);
  const since = params.get("since") ?? "";
  const overlay = params.get("allowed") === "1";
  const cutId = params.get("cut");
  const selectedNode = params.get("node");
  const selectedEdge = params.get("edge");
  const blastOf = params.get("blast");
  const reachOf = params.get("reach");
  const single = filter.namespaces.length === 1 ? filter.namespaces[0] : undefined;
  const set = (changes: Record<string, string | null>) => update("map", params, changes);

  const graph = useApi<Graph>((signal) => get("Loading the service graph", "/api/v1/graph", { level: "workload", since: since || undefined, namespace: single }, undefined, signal), [since, single]);
  const pods = useApi((signal) => allPods(signal), []);
  const workloads = useApi((signal) => get("Loading workloads", "/api/v1/workloads", {}, undefined, signal), []);
  const anomalies = useApi((signal) => allAnomalies(signal), []);
  const allowed = useApi(
    (signal) => (overlay ? get("Loading what the policies allow", "/api/v1/graph/allowed", { namespace: single }, undefined, signal) : Promise.resolve(null)),
    [overlay, single],
  );
  const cut = useApi(
    (signal) => (cutId ? get("Loading the suggestion's what-if", "/api/v1/suggestions/{id}", undefined, { id: Number(cutId) }, signal) : Promise.resolve(null)),
    [cutId],
  );
  const blast = useApi(
    (signal) => {
      const workload = blastOf ? workloadName(blastOf) : null;
      if (!workload) return Promise.resolve(null);
      return get("Computing the blast radius", "/api/v1/graph/blast-radius", { workload }, undefined, signal);
    },
    [blastOf],
  );
  const exposure = useApi((signal) => get("Loading the exposure report", "/api/v1/exposure", {}, undefined, signal), []);
  const marked = useMemo(() => marks(exposure.data), [exposure.data]);
  const reach = useMemo(() => (reachOf ? reachers(exposure.data, reachOf) : null), [exposure.data, reachOf]);
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set((params.get("collapse") ?? "").split(",").filter(Boolean)));

  // Workloads with no observed connection are on the map too.
  const inventoryNodes = useMemo(
    () =>
      (workloads.data ?? []).map((w) => ({
        id: workloadNodeId(w),
        kind: "workload" as const,
        namespace: w.namespace,
        name: w.name,
        workload_kind: w.kind,
      })),
    [workloads.data],
  );
  const quarantined = useMemo(() => new Set((pods.data ?? []).filter((p) => p.quarantined).map(podWorkloadId)), [pods.data]);
  const labels = useMemo(() => {
    const m = new Map<string, Record<string, string>>();
    for (const w of workloads.data ?? []) m.set(workloadNodeId(w), (w.labels ?? {}) as Record<string, string>);
    return m;
  }, [workloads.data]);
  const fresh = useMemo(() => {
    const s = new Set<string>();
    for (const a of anomalies.data ?? []) {
      if (a.kind !== "new_edge") continue;
      const x = peerNodeId(a.source);
      const y = peerNodeId(a.destination);
      if (x && y) s.add(pairKey(x, y));
    }
    return s;
  }, [anomalies.data]);
  const cutPairs = useMemo(() => (cut.data ? flowPairs(cut.data.what_if.would_drop.map((w) => w.flow)) : undefined), [cut.data]);

  // Drawn once what it is drawn from has loaded (or failed), rather than
  // redrawn as each part arrives: a full redraw of a big map costs seconds.
  const settled = [pods, workloads, anomalies].every((x) => x.data !== undefined || x.state === "error");
  const shaped = useMemo(
    () =>
      graph.data && settled
        ? shape({ graph: graph.data, workloads: inventoryNodes, filter, collapsed, quarantined, labels, fresh, cut: cutPairs, allowed: overlay ? allowed.data : null })
        : null,
    [graph.data, settled, inventoryNodes, filter, collapsed, quarantined, labels, fresh, cutPairs, overlay, allowed.data],
  );

  const highlight: Highlight = useMemo(() => {
    let nodes: Set<string> | null = null;
    if (blast.data && blastOf) nodes = new Set([blastOf, ...blast.data.reachable.map((n) => n.id)]);
    else if (reach && reachOf) nodes = new Set([reachOf, ...reach.ids]);
    else if (filter.search && shaped) nodes = new Set(shaped.nodes.filter((n) => n.match).map((n) => n.id));
    return { nodes, selectedNode, selectedEdge };
  }, [blast.data, blastOf, reach, reachOf, filter.search, shaped, selectedNode, selectedEdge]);

  const toggle = (ns: string) => {
    const next = new Set(collapsed);
    if (next.has(ns)) next.delete(ns);
    else next.add(ns);
    setCollapsed(next);
    set({ collapse: [...next].join(",") || null });
  };

  const groups = shaped ? [...shaped.groups.entries()].sort((a, b) => a[0].localeCompare(b[0])) : [];
  // Grouped by namespace, so two workloads of one name in two namespaces are told apart.
  const listed = useMemo(
    () =>
      shaped
        ? shaped.nodes
            .filter((n) => !filter.search || n.match)
            .sort((a, b) => a.group.localeCompare(b.group) || a.label.localeCompare(b.label))
            .slice(0, 300)
        : [],
    [shaped, filter.search],
  );
  const unused = shaped ? shaped.edges.filter((e) => e.unused).length : 0;
  const cutCount = shaped ? shaped.edges.filter((e) => e.cut).length : 0;

  return (
    <div className="map-view">
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Map filters">
        <label>
          Namespaces
          <input value={filter.namespaces.join(",")} onChange={(e) => set({ namespace: e.target.value.replace(/\s/g, "") || null, node: null, edge: null })} placeholder="all" list="map-namespaces" data-testid="map-namespace" />
          <datalist id="map-namespaces">
            {groups.map(([g]) => (
              <option key={g} value={g} />
            ))}
          </datalist>
        </label>
        <label>
          Verdict
          <select value={filter.verdict} onChange={(e) => set({ verdict: e.target.value === "all" ? null : e.target.value })}>
            <option value="all">all</option>
            <option value="forwarded">forwarded</option>
            <option value="dropped">dropped</option>
            <option value="audit">audit would-drop</option>
          </select>
        </label>
        <label>
          Port
          <input inputMode="numeric" size={6} value={filter.port ?? ""} onChange={(e) => set({ port: e.target.value || null })} />
        </label>
        <label>
          Protocol
          <select value={filter.protocol ?? ""} onChange={(e) => set({ protocol: e.target.value || null })}>
            <option value="">any</option>
            <option>TCP</option>
            <option>UDP</option>
            <option>SCTP</option>
            <option>ICMP</option>
          </select>
        </label>
        <label>
          Since
          <select value={since} onChange={(e) => set({ since: e.target.value || null })}>
            <option value="">all time</option>
            <option value="5m">5 minutes</option>
            <option value="15m">15 minutes</option>
            <option value="1h">1 hour</option>
            <option value="24h">24 hours</option>
          </select>
        </label>
        <label>
          Search
          <input type="search" value={filter.search} onChange={(e) => set({ q: e.target.value || null })} placeholder="name or label=value" data-testid="map-search" />
        </label>
        <label className="check">
          <input type="checkbox" checked={overlay} onChange={(e) => set({ allowed: e.target.checked ? "1" : null })} data-testid="map-allowed" />
          Allowed vs observed
        </label>
      </form>
      <Legend unused={overlay ? unused : null} cut={cutId ? cutCount : null} />
      {[workloads, pods, anomalies, allowed, cut, exposure].map((x, i) => x.state === "error" && <ErrorBox key={i} error={x.error} retry={x.reload} />)}
      {cut.data && (
        <div className="notice" data-testid="map-cut">
          Suggestion #{cut.data.record.id} ({cut.data.record.workload.namespace}/{cut.data.record.workload.name}) would drop{" "}
          {cut.data.what_if.would_drop.length} recorded flow(s), on the {cutCount} edge(s) drawn in magenta.{" "}
          <button type="button" className="link" onClick={() => set({ cut: null })}>
            Hide
          </button>
        </div>
      )}
      {reachOf && reach && (
        <div className="notice" data-testid="map-reach">
          {reach.ports === 0
            ? `${workloadName(reachOf) ?? reachOf} serves no port the exposure report knows of.`
            : `What can reach ${workloadName(reachOf) ?? reachOf}: ${reach.total} workload(s) under the policies in force${reach.total > reach.listed ? ` (${reach.listed} named, highlighted)` : " (highlighted)"}; the world: ${reach.world ?? "no"}.`}{" "}
          <button type="button" className="link" onClick={() => set({ reach: null })}>
            Clear
          </button>
        </div>
      )}
      {blast.data && blastOf && (
        <div className="notice" data-testid="map-blast">
          Blast radius of {blast.data.from.name}: {blast.data.reachable.length} reachable under the policies in force (highlighted).{" "}
          <button type="button" className="link" onClick={() => set({ blast: null })}>
            Clear
          </button>
        </div>
      )}
      <div className="map-body">
        <aside className="map-list" aria-label="Namespaces and workloads">
          <h3>Namespaces</h3>
          {groups.length === 0 && graph.data && <p className="muted">None yet.</p>}
          <ul>
            {groups.map(([g, n]) => (
              <li key={g}>
                <button type="button" className="link" aria-expanded={!collapsed.has(g)} onClick={() => toggle(g)} data-testid={`ns-toggle-${g}`}>
                  {collapsed.has(g) ? "▸" : "▾"} {g || "(outside)"} <span className="muted">{n}</span>
                </button>
              </li>
            ))}
          </ul>
          <div className="actions">
            <button type="button" className="ghost" onClick={() => { const all = new Set(groups.map(([g]) => g)); setCollapsed(all); set({ collapse: [...all].join(",") }); }}>
              Collapse all
            </button>
            <button type="button" className="ghost" onClick={() => { setCollapsed(new Set()); set({ collapse: null }); }}>
              Expand all
            </button>
          </div>
          <h3>{filter.search ? "Matches" : "Nodes"}</h3>
          <ul className="nodes">
            {listed.map((n, i) => (
              <li key={n.id}>
                {listed[i - 1]?.group !== n.group && <div className="ns-head">{n.group || "outside the cluster"}</div>}
                <button type="button" className="link" aria-current={n.id === selectedNode ? "true" : undefined} onClick={() => set({ node: n.id, edge: null })} data-node={n.id}>
                  {n.label}
                  {n.quarantined && <span className="badge quarantined">quarantined</span>}
                </button>
                {marked.internet.has(n.id) && <span className="badge internet" data-testid="badge-internet">internet-facing</span>}
                {marked.findings.has(n.id) && (
                  <a className="badge finding" href={format("exposure", { namespace: n.group || undefined })} data-testid="badge-findings">
                    {marked.findings.get(n.id)} finding(s)
                  </a>
                )}
              </li>
            ))}
          </ul>
        </aside>
        <section className="map-stage">
          {graph.state === "error" && <ErrorBox error={graph.error} retry={graph.reload} />}
          {!shaped && graph.state !== "error" && <Loading what="the service graph" />}
          {shaped && shaped.nodes.length === 0 && (
            <div className="state empty">No workloads or connections match. {graph.data?.nodes.length ? "Clear the filters to see the whole cluster." : "Nothing observed yet: flows appear here as pods talk."}</div>
          )}
          {shaped && shaped.nodes.length > 0 && (
            <MapCanvas
              shaped={shaped}
              highlight={highlight}
              onNode={(id) => set({ node: id, edge: null })}
              onEdge={(id) => set({ edge: id, node: null })}
              onStage={() => set({ node: null, edge: null })}
            />
          )}
        </section>
        {selectedNode && shaped && (
          <NodePanel
            id={selectedNode}
            shaped={shaped}
            pods={pods.data ?? []}
            labels={labels.get(selectedNode)}
            anomalies={anomalies.data ?? []}
            onBlast={() => set({ blast: selectedNode, reach: null })}
            onReach={() => set({ reach: selectedNode, blast: null })}
            onClose={() => set({ node: null })}
            onChanged={pods.reload}
          />
        )}
        {selectedEdge && shaped && <EdgePanel id={selectedEdge} shaped={shaped} pods={pods.data ?? []} onClose={() => set({ edge: null })} />}
      </div>
    </div>
  );
}

function Legend({ unused, cut }: { unused: number | null; cut: number | null }) {
  return (
    <div className="legend" aria-label="Legend">
      <span className="swatch forwarded" /> forwarded <span className="swatch dropped" /> dropped <span className="swatch audit" /> audit would-drop{" "}
      <span className="swatch fresh" /> thick: new since the baseline <span className="swatch quarantined" /> quarantined
      {unused !== null && (
        <>
          {" "}
          <span className="swatch allowed" /> allowed, never used: <strong data-testid="map-unused">{unused}</strong>
        </>
      )}
      {cut !== null && (
        <>
          {" "}
          <span className="swatch cut" /> would be cut
        </>
      )}
    </div>
  );
}
