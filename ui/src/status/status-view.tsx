// Status: the generation, every node's sync state, unprotected pods, and
// the flow pipeline's counters and losses by stage.
import { useEffect } from "react";
import { get } from "../api/client";
import { Show, useApi } from "../ui/states";

export function StatusView() {
  const status = useApi((signal) => get("Loading the controller's status", "/api/v1/status", undefined, undefined, signal), []);
  useEffect(() => {
    const t = setInterval(status.reload, 5000);
    return () => clearInterval(t);
  }, [status.reload]);
  return (
    <Show loaded={status} what="status">
      {(s) => {
        const lost = Object.entries(s.flows.lost);
        return (
          <div className="status-view" data-testid="status">
            <section className="cards">
              <div className="card">
                <span>generation</span>
                <strong data-testid="generation">{s.generation}</strong>
              </div>
              <div className="card">
                <span>pods</span>
                <strong>{s.pods}</strong>
              </div>
              <div className="card">
                <span>policies</span>
                <strong>
                  {s.network_policies} + {s.cluster_policies} cluster
                </strong>
              </div>
              <div className="card">
                <span>identities · entries</span>
                <strong>
                  {s.identities} · {s.policy_entries}
                </strong>
              </div>
              <div className="card">
                <span>active quarantines</span>
                <strong>{s.quarantines_active}</strong>
              </div>
            </section>
            {s.last_error && <p className="banner warn">Last rejected change: {s.last_error}</p>}
            {s.policy_warnings.length > 0 && (
              <section className="banner warn" aria-label="Policy warnings">
                <p>Enforced other than as written, or not enforced:</p>
                <ul>
                  {s.policy_warnings.map((w) => (
                    <li key={w}>{w}</li>
                  ))}
                </ul>
              </section>
            )}
            <h3>Nodes</h3>
            <table className="compact">
              <thead>
                <tr>
                  <th>node</th>
                  <th>sync</th>
                  <th>applied generation</th>
                  <th>endpoints</th>
                  <th>entries</th>
                  <th>error</th>
                </tr>
              </thead>
              <tbody>
                {s.nodes.map((n) => (
                  <tr key={n.node} data-testid={`node-${n.node}`}>
                    <td>{n.node}</td>
                    <td className={n.in_sync ? "ok" : "bad"}>{n.in_sync ? "in sync" : "behind"}</td>
                    <td>{n.applied_generation}</td>
                    <td>{n.endpoints}</td>
                    <td>{n.policy_entries}</td>
                    <td>{n.error || "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <h3>Unprotected pods</h3>
            {s.unprotected.length === 0 ? (
              <p className="muted">None: every pod's interface carries the dataplane.</p>
            ) : (
              <ul>
                {s.unprotected.map((u) => (
                  <li key={u.pod} className="bad">
                    {u.pod} on {u.node}: {u.reason}
                  </li>
                ))}
              </ul>
            )}
            <h3>Flow pipeline</h3>
            <table className="compact">
              <tbody>
                <tr><td>received</td><td>{s.flows.received}</td></tr>
                <tr><td>connection records</td><td>{s.flows.records}</td></tr>
                <tr><td>not connections (counters, closes)</td><td>{s.flows.not_connections}</td></tr>
                <tr><td>stored</td><td>{s.flows.stored}</td></tr>
                <tr><td>evicted (retention)</td><td>{s.flows.evicted}</td></tr>
                <tr><td>anomalies</td><td>{s.flows.anomalies}</td></tr>
                {lost.map(([stage, n]) => (
                  <tr key={stage} className={Number(n) > 0 ? "bad" : ""}>
                    <td>lost at {stage}</td>
                    <td>{n}</td>
                  </tr>
                ))}
                {s.flows.storage_error && (
                  <tr className="bad"><td>storage error</td><td>{s.flows.storage_error}</td></tr>
                )}
              </tbody>
            </table>
          </div>
        );
      }}
    </Show>
  );
}
