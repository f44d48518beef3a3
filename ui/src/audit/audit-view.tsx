// The audit log: every change and every refusal, filterable.
import { useState, type FormEvent } from "react";
import { get, type AuditEntry } from "../api/client";
import { replace } from "../route";
import { Show, useApi } from "../ui/states";

const KEYS = ["user", "action", "outcome", "namespace", "since"] as const;

export function AuditView({ params }: { params: URLSearchParams }) {
  const f = Object.fromEntries(KEYS.map((k) => [k, params.get(k) ?? ""])) as Record<(typeof KEYS)[number], string>;
  const [draft, setDraft] = useState(f);
  const list = useApi(
    (signal) =>
      get(
        "Reading the audit log",
        "/api/v1/audit",
        {
          user: f.user || undefined,
          action: f.action || undefined,
          outcome: (f.outcome || undefined) as AuditEntry["outcome"] | undefined,
          namespace: f.namespace || undefined,
          since: f.since || undefined,
          limit: 500,
        },
        undefined,
        signal,
      ),
    [JSON.stringify(f)],
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    replace("audit", draft);
  };
  return (
    <div className="audit-view">
      <form className="filters" onSubmit={submit} aria-label="Audit filters">
        {KEYS.map((k) => (
          <label key={k}>
            {k}
            {k === "outcome" ? (
              <select value={draft.outcome} onChange={(e) => setDraft({ ...draft, outcome: e.target.value })} data-testid="audit-outcome">
                <option value="">any</option>
                <option value="ok">ok</option>
                <option value="refused">refused</option>
                <option value="failed">failed</option>
              </select>
            ) : (
              <input value={draft[k]} onChange={(e) => setDraft({ ...draft, [k]: e.target.value })} placeholder={k === "since" ? "1h" : "any"} data-testid={`audit-${k}`} />
            )}
          </label>
        ))}
        <button type="submit" data-testid="audit-apply">
          Apply
        </button>
      </form>
      <Show loaded={list} what="audit records" isEmpty={(p) => p.items.length === 0} empty="No audit record matches.">
        {(p) => (
          <table className="compact" data-testid="audit-list">
            <thead>
              <tr>
                <th>time</th>
                <th>user</th>
                <th>role</th>
                <th>source</th>
                <th>action</th>
                <th>target</th>
                <th>outcome</th>
                <th>detail</th>
              </tr>
            </thead>
            <tbody>
              {p.items.map((a) => (
                <tr key={a.id} className={a.outcome !== "ok" ? "bad" : ""}>
                  <td>{new Date(a.time_unix_ms).toISOString().replace("T", " ").slice(0, 19)}Z</td>
                  <td>{a.user}</td>
                  <td>{a.role ?? "—"}</td>
                  <td>{a.source}</td>
                  <td>{a.action}</td>
                  <td>{a.target}</td>
                  <td>{a.outcome}</td>
                  <td>{a.detail}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Show>
    </div>
  );
}
