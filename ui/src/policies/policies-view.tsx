// The policies in force, per namespace and cluster-wide, and "can A reach
// B:port?" answered by the controller's evaluator with the deciding rule.
import { useState, type FormEvent } from "react";
import { get, type Explanation } from "../api/client";
import { replace } from "../route";
import { ErrorBox, Show, useApi } from "../ui/states";

export function PoliciesView({ params }: { params: URLSearchParams }) {
  const namespace = params.get("namespace") ?? "";
  const list = useApi((signal) => get("Loading the policies in force", "/api/v1/policies", { namespace: namespace || undefined }, undefined, signal), [namespace]);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <div className="policies-view">
      <ExplainForm params={params} />
      <div className="filters">
        <label>
          Namespace
          <input value={namespace} onChange={(e) => replace("policies", { ...Object.fromEntries(params), namespace: e.target.value })} placeholder="all" />
        </label>
      </div>
      <Show loaded={list} what="policies" isEmpty={(l) => l.length === 0} empty="No policy in force here: every pod accepts every connection (Kubernetes' default).">
        {(l) => {
          const groups = new Map<string, typeof l>();
          for (const p of l) {
            const g = p.namespace ?? "cluster-wide";
            groups.set(g, [...(groups.get(g) ?? []), p]);
          }
          return [...groups.entries()].map(([g, ps]) => (
            <section key={g}>
              <h3>{g}</h3>
              <table className="compact">
                <thead>
                  <tr>
                    <th>kind</th>
                    <th>name</th>
                    <th>tier · priority</th>
                    <th>mode</th>
                    <th>rules</th>
                    <th>selects</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {ps.map((p) => {
                    const k = `${p.kind}/${p.namespace ?? ""}/${p.name}`;
                    return (
                      <tr key={k}>
                        <td>{p.kind}</td>
                        <td>{p.name}</td>
                        <td>
                          {p.tier ?? "—"} {p.priority ?? ""}
                        </td>
                        <td>{p.mode ?? "—"}</td>
                        <td>
                          {p.ingress_rules} in · {p.egress_rules} out
                        </td>
                        <td>{p.selects.length} pod(s)</td>
                        <td>
                          <button type="button" className="link" aria-expanded={open === k} onClick={() => setOpen(open === k ? null : k)}>
                            {open === k ? "Hide YAML" : "YAML"}
                          </button>
                          {open === k && <pre className="yaml">{p.yaml}</pre>}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </section>
          ));
        }}
      </Show>
    </div>
  );
}

function ExplainForm({ params }: { params: URLSearchParams }) {
  const [from, setFrom] = useState(params.get("from") ?? "");
  const [to, setTo] = useState(params.get("to") ?? "");
  const [port, setPort] = useState(params.get("port") ?? "");
  const [protocol, setProtocol] = useState(params.get("protocol") ?? "TCP");
  const [answer, setAnswer] = useState<Explanation | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setAnswer(null);
    const p = Number(port);
    if (!from || !to) return setError(new Error("Name both ends: namespace/pod, namespace/service (destination) or an address"));
    if (!Number.isInteger(p) || p < 0 || p > 65535) return setError(new Error("The port is a number from 0 to 65535"));
    setBusy(true);
    try {
      setAnswer(await get("Explaining", "/api/v1/explain", { from, to, port: p, protocol }));
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="explain" onSubmit={submit} aria-label="Can A reach B">
      <h2>Can A reach B?</h2>
      <label>
        From
        <input value={from} onChange={(e) => setFrom(e.target.value)} placeholder="ns/pod or IP" data-testid="explain-from" />
      </label>
      <label>
        To
        <input value={to} onChange={(e) => setTo(e.target.value)} placeholder="ns/pod, ns/service or IP" data-testid="explain-to" />
      </label>
      <label>
        Port
        <input value={port} onChange={(e) => setPort(e.target.value)} inputMode="numeric" size={6} data-testid="explain-port" />
      </label>
      <label>
        Protocol
        <select value={protocol} onChange={(e) => setProtocol(e.target.value)}>
          <option>TCP</option>
          <option>UDP</option>
          <option>SCTP</option>
        </select>
      </label>
      <button type="submit" disabled={busy} data-testid="explain-submit">
        {busy ? "Asking…" : "Explain"}
      </button>
      {error && <ErrorBox error={error} />}
      {answer && (
        <div className="answer" data-testid="explain-answer">
          <strong className={answer.allowed ? "ok" : "bad"}>{answer.allowed ? "Allowed" : "Denied"}</strong>: {answer.from_address} → {answer.to_address}:{answer.port}/{answer.protocol}
          <br />
          egress (at the source): {answer.egress ? `${answer.egress.allowed ? "allows" : "denies"}, by ${answer.egress.decided_by}` : "—"}
          <br />
          ingress (at the destination): {answer.ingress ? `${answer.ingress.allowed ? "allows" : "denies"}, by ${answer.ingress.decided_by}` : "—"}
        </div>
      )}
    </form>
  );
}
