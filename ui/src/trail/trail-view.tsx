// The access trail of a pod: the incident timeline over a window (by default
// from 30 minutes before its quarantine), new edges marked, the second hop,
// its quarantines and audit records; exported as JSON or CSV for a ticket.
import { useEffect, useState } from "react";
import { get, getText } from "../api/client";
import { replace } from "../route";
import { bytes, time } from "../ui/format";
import { ErrorBox, Show, useApi } from "../ui/states";
import { peerName, position, timeline, type TimelineEvent, type Trail, type TrailConnection } from "./timeline";

const POD = /^[^/\s]+\/[^/\s]+$/;

function save(name: string, type: string, text: string) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  a.click();
  URL.revokeObjectURL(a.href);
}

function ConnectionRow({ c }: { c: TrailConnection }) {
  return (
    <tr className={c.new_edge ? "new-edge" : undefined} data-testid="trail-connection">
      <td>{c.direction === "egress" ? "→ to" : "← from"}</td>
      <td>{peerName(c.peer)}</td>
      <td>
        {c.port}/{c.protocol}
      </td>
      <td>
        <span className={`badge ${c.verdict === "dropped" ? "warn" : c.verdict === "audit" ? "audit" : ""}`}>{c.verdict}</span>
        {c.new_edge && <span className="badge warn">new</span>}
      </td>
      <td>{c.connections}</td>
      <td>{bytes(c.bytes)}</td>
      <td>{time(c.first_seen_ns)}</td>
      <td>{time(c.last_seen_ns)}</td>
    </tr>
  );
}

function Connections({ list, testid }: { list: TrailConnection[]; testid: string }) {
  return (
    <table className="compact" data-testid={testid}>
      <thead>
        <tr>
          <th>direction</th>
          <th>peer</th>
          <th>port</th>
          <th>verdict</th>
          <th>connections</th>
          <th>bytes</th>
          <th>first seen</th>
          <th>last seen</th>
        </tr>
      </thead>
      <tbody>
        {list.map((c, i) => (
          <ConnectionRow key={i} c={c} />
        ))}
      </tbody>
    </table>
  );
}

function describe(e: TimelineEvent): string {
  switch (e.kind) {
    case "connection": {
      const c = e.connection;
      const arrow = c.direction === "egress" ? "→" : "←";
      return `${arrow} ${peerName(c.peer)} ${c.port}/${c.protocol} ${c.verdict} ×${c.connections}${c.new_edge ? " (new)" : ""}`;
    }
    case "quarantined":
      return `quarantine ${e.quarantine.id} by ${e.quarantine.created_by}: ${e.quarantine.reason}`;
    case "released":
      return `quarantine ${e.quarantine.id} ${e.quarantine.state}${e.quarantine.released_by ? ` by ${e.quarantine.released_by}` : ""}`;
    case "audit":
      return `${e.entry.user} ${e.entry.action} ${e.entry.target} (${e.entry.outcome})`;
  }
}

function Timeline({ t }: { t: Trail }) {
  const events = timeline(t);
  return (
    <>
      <div className="strip" aria-hidden="true">
        {events.map((e, i) => (
          <span
            key={i}
            className={`mark ${e.kind}${e.kind === "connection" && e.connection.new_edge ? " new" : ""}`}
            style={{ left: `${position(e.at, t.since_ns, t.until_ns)}%` }}
            title={`${time(e.at)} ${describe(e)}`}
          />
        ))}
      </div>
      <ol className="timeline" data-testid="trail-timeline">
        {events.map((e, i) => (
          <li key={i} className={`${e.kind}${e.kind === "connection" && e.connection.new_edge ? " new-edge" : ""}`}>
            <time>{time(e.at)}</time> {describe(e)}
          </li>
        ))}
      </ol>
    </>
  );
}

export function TrailView({ params }: { params: URLSearchParams }) {
  const pod = params.get("pod") ?? "";
  const since = params.get("since") ?? "30m";
  const until = params.get("until") ?? "";
  const [draft, setDraft] = useState({ pod, since, until });
  useEffect(() => setDraft({ pod, since, until }), [pod, since, until]);
  const query = { pod, since, until: until || undefined };
  const trail = useApi(
    (signal) => (POD.test(pod) ? get("Loading the access trail", "/api/v1/trail", query, undefined, signal) : Promise.resolve(null)),
    [pod, since, until],
  );
  const [exportError, setExportError] = useState<Error | null>(null);
  const stem = `trail-${pod.replace("/", "_")}`;
  const csv = async () => {
    setExportError(null);
    try {
      save(`${stem}.csv`, "text/csv", await getText("Exporting the trail as CSV", "/api/v1/trail/csv", query, "text/csv"));
    } catch (e) {
      setExportError(e instanceof Error ? e : new Error(String(e)));
    }
  };
  return (
    <div className="trail-view">
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          replace("trail", draft);
        }}
      >
        <label>
          Pod
          <input value={draft.pod} onChange={(e) => setDraft({ ...draft, pod: e.target.value.trim() })} placeholder="namespace/name" data-testid="trail-pod" />
        </label>
        <label>
          Since
          <input value={draft.since} onChange={(e) => setDraft({ ...draft, since: e.target.value.trim() })} placeholder="30m or RFC 3339" data-testid="trail-since" />
        </label>
        <label>
          Until
          <input value={draft.until} onChange={(e) => setDraft({ ...draft, until: e.target.value.trim() })} placeholder="now" />
        </label>
        <button type="submit" data-testid="trail-show">
          Show
        </button>
      </form>
      {pod && !POD.test(pod) && <p className="notice">A pod is namespace/name.</p>}
      {!pod && <p className="muted">Name a pod, or open its trail from a quarantine.</p>}
      <Show loaded={trail} what="the access trail" isEmpty={(t) => t === null}>
        {(t) =>
          t && (
            <>
              <h2 data-testid="trail-title">
                {t.pod}
                {t.workload ? ` (${t.workload.kind} ${t.workload.namespace}/${t.workload.name})` : ""}
              </h2>
              <p className="muted">
                {time(t.since_ns)} – {time(t.until_ns)} · {t.connections.length} connection group(s), {t.connections.filter((c) => c.new_edge).length} new against the baseline ·{" "}
                {t.quarantines.length} quarantine(s) · {t.audit.length} audit record(s)
              </p>
              <div className="actions">
                <button type="button" onClick={() => save(`${stem}.json`, "application/json", JSON.stringify(t, null, 2))} data-testid="trail-json">
                  Export JSON
                </button>
                <button type="button" onClick={csv} data-testid="trail-csv">
                  Export CSV
                </button>
              </div>
              {exportError && <ErrorBox error={exportError} />}
              <h3>Timeline</h3>
              {t.connections.length + t.quarantines.length + t.audit.length === 0 ? <p className="muted">Nothing in this window.</p> : <Timeline t={t} />}
              <h3>Connections</h3>
              {t.connections.length === 0 ? <p className="muted">No connection in this window.</p> : <Connections list={t.connections} testid="trail-connections" />}
              <h3>Second hop: what the pods it reached did next</h3>
              {t.second_hop.length === 0 ? (
                <p className="muted">No pod it reached connected onward in this window.</p>
              ) : (
                t.second_hop.map((h) => (
                  <section key={h.via.id} data-testid="trail-hop">
                    <h4>
                      via {peerName(h.via)}, reached {time(h.reached_ns)}
                    </h4>
                    <Connections list={h.connections} testid="trail-hop-connections" />
                  </section>
                ))
              )}
            </>
          )
        }
      </Show>
    </div>
  );
}
