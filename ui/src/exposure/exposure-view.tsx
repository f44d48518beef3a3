// Exposure: every service and workload port, how far it is exposed, who the
// policies in force let reach it and who did, and the findings. One row per
// port; a row opens to the workloads and the evidence.
import { Fragment, useState } from "react";
import { get, type Schemas } from "../api/client";
import { format, replace } from "../route";
import { time } from "../ui/format";
import { Show, useApi } from "../ui/states";

type Port = Schemas["ExposedPort"];
type FindingKind = Schemas["FindingKind"];

const FINDINGS: Record<FindingKind, string> = {
  database_exposed: "database exposed",
  cross_tenant: "other tenants",
  unused_path: "unused allowed path",
  undeclared: "undeclared port",
  no_policy: "no policy",
  protocol_mismatch: "speaks another protocol",
  listening_undeclared: "open, undeclared",
  not_listening: "declared, not open",
};

// Whether its pods listen on it, by the agents' reads of their sockets.
function listeningOf(p: Port): string {
  const l = p.listening;
  if (!l) return "not read";
  if (l.open.length === l.pods_read) return `open (${l.pods_read} pod${l.pods_read === 1 ? "" : "s"})`;
  return `${l.open.length}/${l.pods_read} open`;
}

// Declared type and what the payload samples heard, e.g. "http → tls".
function typeOf(p: Port): string {
  const declared = p.declared_protocol ?? "—";
  if (!p.speaks) return declared;
  // gRPC is HTTP/2 on the wire: either heard is the other's declaration
  const h2 = new Set(["grpc", "http2"]);
  const same = p.speaks === p.declared_protocol || (h2.has(p.speaks) && h2.has(p.declared_protocol ?? ""));
  return same ? `${declared} (heard ${p.speaks})` : `${declared} → ${p.speaks}`;
}

function heardLine(h: Schemas["HeardProtocol"]): string {
  const parts = [`${h.protocol ?? "unrecognised bytes"}: ${h.client_samples} client, ${h.server_samples} server sample(s)`];
  if (h.hosts.length) parts.push(`names ${h.hosts.join(", ")}`);
  if (h.alpn.length) parts.push(`ALPN ${h.alpn.join(", ")}`);
  if (h.methods.length) parts.push(`methods ${h.methods.join(", ")}`);
  return parts.join("; ");
}

const CLASSES: Record<Port["class"], string> = {
  internet_facing: "internet-facing",
  cluster_internal: "cluster-internal",
  headless: "headless",
  external_name: "ExternalName",
};

function label(p: Port): string {
  const owner = p.service ? `svc/${p.service}` : (p.workloads[0]?.name ?? "—");
  return `${p.namespace}/${owner}:${p.port}/${p.protocol}`;
}

function reachedBy(p: Port): string {
  if (p.can_reach.every_namespace) return `every namespace (${p.can_reach.namespaces.length})`;
  if (p.can_reach.namespaces.length === 0) return "none";
  return p.can_reach.namespaces.map((n) => `${n.namespace} ${n.workloads}/${n.of}`).join(", ");
}

export function ExposureView({ params }: { params: URLSearchParams }) {
  const namespace = params.get("namespace") ?? "";
  const finding = (params.get("finding") ?? "") as FindingKind | "";
  const cls = params.get("class") ?? "";
  const since = params.get("since") ?? "";
  const report = useApi(
    (signal) =>
      get("Loading the exposure report", "/api/v1/exposure", { namespace: namespace || undefined, finding: finding || undefined, since: since || undefined }, undefined, signal),
    [namespace, finding, since],
  );
  const [open, setOpen] = useState<string | null>(null);
  const set = (k: string, v: string) => replace("exposure", { ...Object.fromEntries(params), [k]: v });
  return (
    <div className="exposure-view">
      <div className="filters">
        <label>
          Namespace
          <input value={namespace} onChange={(e) => set("namespace", e.target.value)} placeholder="all" data-testid="exposure-namespace" />
        </label>
        <label>
          Class
          <select value={cls} onChange={(e) => set("class", e.target.value)} data-testid="exposure-class">
            <option value="">any</option>
            {Object.entries(CLASSES).map(([k, v]) => (
              <option key={k} value={k}>
                {v}
              </option>
            ))}
          </select>
        </label>
        <label>
          Finding
          <select value={finding} onChange={(e) => set("finding", e.target.value)} data-testid="exposure-finding">
            <option value="">any</option>
            {Object.entries(FINDINGS).map(([k, v]) => (
              <option key={k} value={k}>
                {v}
              </option>
            ))}
          </select>
        </label>
        <label>
          Did reach since
          <input value={since} onChange={(e) => set("since", e.target.value)} placeholder="24h" size={6} />
        </label>
      </div>
      <Show loaded={report} what="the exposure report" isEmpty={(r) => r.ports.length === 0} empty="No port in your namespaces matches these filters.">
        {(r) => {
          const ports = r.ports.filter((p) => !cls || p.class === cls);
          return (
            <>
              <p className="summary" data-testid="exposure-summary">
                {ports.length} port(s);{" "}
                {r.findings.length === 0 ? "no findings" : r.findings.map((f) => `${f.count} ${FINDINGS[f.kind]}`).join(", ")}. Did reach since {time(r.since_ns)}.
              </p>
              <table className="compact" data-testid="exposure-table">
                <thead>
                  <tr>
                    <th>port</th>
                    <th>class</th>
                    <th>exposed by</th>
                    <th>type (declared → heard)</th>
                    <th>listening</th>
                    <th>world</th>
                    <th>namespaces that can reach</th>
                    <th>did reach</th>
                    <th>findings</th>
                  </tr>
                </thead>
                <tbody>
                  {ports.map((p) => {
                    const k = label(p);
                    const did = p.did_reach.reduce((n, d) => n + d.connections, 0);
                    return (
                      <Fragment key={k}>
                        <tr data-testid="exposure-row" data-class={p.class}>
                          <td>
                            <button type="button" className="link" aria-expanded={open === k} onClick={() => setOpen(open === k ? null : k)}>
                              {k}
                            </button>
                          </td>
                          <td>{CLASSES[p.class]}</td>
                          <td>{p.exposed_by.map((e) => e.detail).join("; ") || "—"}</td>
                          <td data-testid="exposure-type">{typeOf(p)}</td>
                          <td data-testid="exposure-listening">{listeningOf(p)}</td>
                          <td title={p.can_reach.world ?? undefined}>{p.can_reach.world ? "yes" : p.class === "internet_facing" ? "no" : "—"}</td>
                          <td>{p.policed ? reachedBy(p) : "not policed (host network)"}</td>
                          <td>{did ? `${did} from ${p.did_reach.length}` : "none"}</td>
                          <td>
                            {p.findings.map((f) => (
                              <span key={f.kind} className={`badge finding ${f.kind}`} data-testid="finding">
                                {FINDINGS[f.kind]}
                              </span>
                            ))}
                          </td>
                        </tr>
                        {open === k && (
                          <tr className="detail">
                            <td colSpan={9}>
                              <Detail p={p} />
                            </td>
                          </tr>
                        )}
                      </Fragment>
                    );
                  })}
                </tbody>
              </table>
            </>
          );
        }}
      </Show>
    </div>
  );
}

function Detail({ p }: { p: Port }) {
  return (
    <div className="exposure-detail" data-testid="exposure-detail">
      <p>
        Served by {p.workloads.map((w) => w.name).join(", ") || "no pod"} on {p.targets.join(", ") || "—"}
        {p.declared ? "" : " (no container declares it)"}.{" "}
        <a href={format("map", { node: p.workloads[0]?.id })}>Show on the map</a>
      </p>
      {p.heard.length > 0 && (
        <p data-testid="exposure-heard">
          Heard: {p.heard.map(heardLine).join(" · ")}
        </p>
      )}
      {p.listening && (
        <p data-testid="exposure-sockets">
          Sockets read {time(p.listening.read_ns)}: {p.listening.open.length} of {p.listening.pods_read} pod(s) listen
          {p.listening.loopback_only.length > 0 && `; loopback only: ${p.listening.loopback_only.join(", ")}`}
          {p.listening.closed.length > 0 && `; not listening: ${p.listening.closed.join(", ")}`}.
        </p>
      )}
      {p.can_reach.world && <p>World: {p.can_reach.world}</p>}
      <p>
        Can reach: {p.can_reach.workloads_total} workload(s)
        {p.can_reach.workloads.length > 0 && `: ${p.can_reach.workloads.map((w) => (w.namespace ? `${w.namespace}/${w.name}` : w.name)).join(", ")}`}
        {p.can_reach.workloads_total > p.can_reach.workloads.length && " …"}
      </p>
      <p>
        Did reach:{" "}
        {p.did_reach.length === 0
          ? "nobody in the window"
          : p.did_reach.map((d) => `${d.source.namespace ? `${d.source.namespace}/` : ""}${d.source.name} (${d.connections}${d.dropped ? `, ${d.dropped} dropped` : ""})`).join(", ")}
      </p>
      {p.findings.map((f) => (
        <div key={f.kind} className="finding-detail">
          <strong>{FINDINGS[f.kind]}:</strong> {f.message}
          <ul>
            {f.evidence.map((e) => (
              <li key={e}>{e}</li>
            ))}
            {f.workloads.length > 0 && <li>workloads: {f.workloads.map((w) => (w.namespace ? `${w.namespace}/${w.name}` : w.name)).join(", ")}</li>}
          </ul>
        </div>
      ))}
    </div>
  );
}
