// A node's panel (pods, labels, policies, recent flows, anomalies, blast
// radius, quarantine) and an edge's (ports, counts, deciding rule, flows).
import { get, type Anomaly, type Flow, type Pod } from "../api/client";
import { podWorkloadId } from "../api/inventory";
import { format } from "../route";
import { bytes, peer, time } from "../ui/format";
import { QuarantineButton } from "../ui/quarantine-dialog";
import { Panel } from "../ui/panel";
import { Show, useApi } from "../ui/states";
import { peerNodeId, portLabel, workloadName, type MapEdge, type Shaped } from "./shape";

function FlowList({ flows }: { flows: Flow[] }) {
  return (
    <table className="compact">
      <thead>
        <tr>
          <th>time</th>
          <th>from</th>
          <th>to</th>
          <th>verdict</th>
        </tr>
      </thead>
      <tbody>
        {flows.map((f) => (
          <tr key={f.id}>
            <td>{time(f.time_ns)}</td>
            <td>{peer(f.source)}</td>
            <td>
              {peer(f.destination)}:{f.dst_port}/{f.protocol}
            </td>
            <td className={`verdict ${f.verdict}`}>{f.verdict}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function NodePanel(props: {
  id: string;
  shaped: Shaped;
  pods: Pod[];
  labels?: Record<string, string>;
  anomalies: Anomaly[];
  onBlast: () => void;
  onReach: () => void;
  onClose: () => void;
  onChanged: () => void;
}) {
  const { id, shaped } = props;
  const node = shaped.nodes.find((n) => n.id === id);
  const name = workloadName(id);
  const pods = props.pods.filter((p) => podWorkloadId(p) === id);
  const podKeys = new Set(pods.map((p) => `${p.namespace}/${p.name}`));
  const policies = useApi((signal) => (name ? get("Loading policies", "/api/v1/policies", { namespace: name.split("/")[0] }, undefined, signal) : Promise.resolve([])), [name]);
  const flows = useApi(
    (signal) => (name ? get("Loading recent flows", "/api/v1/flows", { workload: name, side: "either", limit: 15 }, undefined, signal) : Promise.resolve({ items: [] })),
    [name],
  );
  const anomalies = props.anomalies.filter((a) => peerNodeId(a.source) === id || peerNodeId(a.destination) === id);
  if (!node) return <Panel title="Not on the map" onClose={props.onClose} testid="node-panel"><p>This node is not in the current view: clear the filters.</p></Panel>;
  return (
    <Panel title={node.label} onClose={props.onClose} testid="node-panel">
      <p className="muted">{id}</p>
      {node.kind === "group" && (
        <p>
          A collapsed namespace of {node.members} workload(s); expand it from the list to see them.
        </p>
      )}
      {name && (
        <div className="actions">
          <QuarantineButton target={{ kind: "workload", name }} onDone={props.onChanged} />
          <button type="button" onClick={props.onBlast} data-testid="blast-button">
            Blast radius
          </button>
          <button type="button" onClick={props.onReach} data-testid="reach-button">
            What can reach it
          </button>
          <a href={format("flows", { workload: name })}>All its flows</a>
        </div>
      )}
      {props.labels && Object.keys(props.labels).length > 0 && (
        <>
          <h3>Labels</h3>
          <p>
            {Object.entries(props.labels).map(([k, v]) => (
              <code key={k} className="tag">
                {k}={v}
              </code>
            ))}
          </p>
        </>
      )}
      {name && (
        <>
          <h3>Pods</h3>
          {pods.length === 0 ? (
            <p className="muted">No current pod.</p>
          ) : (
            <ul className="pods">
              {pods.map((p) => (
                <li key={p.name} data-testid={`pod-${p.name}`}>
                  {p.quarantined && <span className="badge quarantined">quarantined</span>} {p.name} <span className="muted">{p.ips.join(", ")} · {p.node} · {p.mode}</span>{" "}
                  {!p.quarantined && <QuarantineButton target={{ kind: "pod", name: `${p.namespace}/${p.name}` }} onDone={props.onChanged} />}
                </li>
              ))}
            </ul>
          )}
          <h3>Policies selecting it</h3>
          <Show loaded={policies} what="policies" isEmpty={(l) => l.filter((p) => p.selects.some((s) => podKeys.has(s))).length === 0} empty="No policy selects its pods: it is open to every peer.">
            {(list) => (
              <ul>
                {list
                  .filter((p) => p.selects.some((s) => podKeys.has(s)))
                  .map((p) => (
                    <li key={`${p.kind}/${p.namespace}/${p.name}`}>
                      {p.kind} {p.namespace ? `${p.namespace}/` : ""}
                      {p.name} <span className="muted">({p.ingress_rules} ingress, {p.egress_rules} egress rules)</span>
                    </li>
                  ))}
              </ul>
            )}
          </Show>
          <h3>Anomalies</h3>
          {anomalies.length === 0 ? (
            <p className="muted">None: every edge is in its baseline.</p>
          ) : (
            <ul>
              {anomalies.map((a) => (
                <li key={a.id}>
                  {a.scan ? (
                    <>
                      <strong>{a.kind === "port_scan" ? "Port scan" : "Host sweep"}</strong> from {peer(a.source)} ({a.scan.source_ip}): {a.scan.ports} port(s) on {a.scan.hosts} host(s),{" "}
                      {a.connections} attempt(s), {a.dropped} dropped, first {time(a.first_seen_ns)}
                    </>
                  ) : (
                    <>
                      {peer(a.source)} → {peer(a.destination)}:{a.port}/{a.protocol}, {a.connections} connection(s), {a.dropped} dropped, first {time(a.first_seen_ns)}
                    </>
                  )}
                </li>
              ))}
            </ul>
          )}
          <h3>Recent flows</h3>
          <Show loaded={flows} what="flows" isEmpty={(p) => p.items.length === 0}>
            {(p) => <FlowList flows={p.items} />}
          </Show>
        </>
      )}
    </Panel>
  );
}

export function EdgePanel({ id, shaped, pods, onClose }: { id: string; shaped: Shaped; pods: Pod[]; onClose: () => void }) {
  const edge: MapEdge | undefined = shaped.edges.find((e) => e.id === id);
  const src = edge ? workloadName(edge.source) : null;
  const dst = edge ? workloadName(edge.target) : null;
  const first = edge?.parts[0] ?? null;
  const port = first?.port ?? Number(edge?.ports[0]?.split("/")[1] ?? 0);
  const protocol = first?.protocol ?? edge?.ports[0]?.split("/")[0] ?? "TCP";
  const podOf = (w: string | null) => {
    const p = pods.find((x) => w && `${x.workload.namespace}/${x.workload.name}` === w);
    return p ? `${p.namespace}/${p.name}` : null;
  };
  const from = podOf(src);
  const to = podOf(dst);
  const explain = useApi(
    (signal) => (from && to && port ? get("Explaining the verdict", "/api/v1/explain", { from, to, port, protocol }, undefined, signal) : Promise.resolve(null)),
    [from, to, port, protocol],
  );
  const flows = useApi(
    (signal) =>
      src
        ? get("Loading the edge's flows", "/api/v1/flows", { workload: src, side: "source", port: port || undefined, limit: 200 }, undefined, signal).then((p) =>
            p.items.filter((f) => !edge || peerNodeId(f.destination) === edge.target).slice(0, 20),
          )
        : Promise.resolve([]),
    [src, port, edge?.target],
  );
  if (!edge) return <Panel title="Not on the map" onClose={onClose} testid="edge-panel"><p>This edge is not in the current view: clear the filters.</p></Panel>;
  const label = (nid: string) => shaped.nodes.find((n) => n.id === nid)?.label ?? nid;
  return (
    <Panel title={`${label(edge.source)} → ${label(edge.target)}`} onClose={onClose} testid="edge-panel">
      {edge.unused && <p className="notice">Allowed by the policies in force, never observed: a place to tighten.</p>}
      {edge.fresh && <p className="notice">New since the baseline (an anomaly).</p>}
      {edge.cut && <p className="notice">The suggestion under review would drop flows here.</p>}
      <table className="compact">
        <thead>
          <tr>
            <th>port</th>
            <th>service</th>
            <th>connections</th>
            <th>forwarded</th>
            <th>dropped</th>
            <th>audit</th>
            <th>bytes</th>
            <th>last seen</th>
          </tr>
        </thead>
        <tbody>
          {edge.parts.map((p) => (
            <tr key={`${p.protocol}/${p.port}/${p.service ?? ""}`}>
              <td>{portLabel(p)}</td>
              <td>{p.service ?? "—"}</td>
              <td>{p.connections}</td>
              <td>{p.forwarded}</td>
              <td>{p.dropped}</td>
              <td>{p.audit}</td>
              <td>{bytes(p.bytes)}</td>
              <td>{time(p.last_seen_ns)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>What decides it now</h3>
      {!from || !to ? (
        <p className="muted">Explained for pod-to-pod edges only; use the Policies view for addresses.</p>
      ) : (
        <Show loaded={explain} what="the verdict">
          {(x) =>
            x && (
              <p data-testid="edge-explain">
                {from} → {to}:{port}/{protocol}: <strong className={x.allowed ? "ok" : "bad"}>{x.allowed ? "allowed" : "denied"}</strong>
                <br />
                egress: {x.egress ? x.egress.decided_by : "—"}
                <br />
                ingress: {x.ingress ? x.ingress.decided_by : "—"}
              </p>
            )
          }
        </Show>
      )}
      <h3>Flows</h3>
      <Show loaded={flows} what="flows" isEmpty={(l) => l.length === 0} empty="No stored flow on this edge.">
        {(l) => <FlowList flows={l} />}
      </Show>
      {src && (
        <a href={format("flows", { workload: src, side: "source", port: port ? String(port) : undefined })}>Open in Flows</a>
      )}
    </Panel>
  );
}
