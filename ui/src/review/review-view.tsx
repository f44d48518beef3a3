// Review: pending suggestions with their evidence, each one's YAML against
// the policy in force, the what-if (exactly the recorded flows it would
// drop, and those edges on the map), approve or reject, apply in audit with
// the live would-drop count, then enforce; and its history.
import { useEffect, useState } from "react";
import { get, post, type ReviewDetail, type ReviewRecord } from "../api/client";
import { format, update } from "../route";
import { peer, time } from "../ui/format";
import { useCan } from "../ui/session";
import { ErrorBox, Show, useApi } from "../ui/states";
import { sides } from "./diff";
import { YamlDiff } from "./yaml-diff";

const STATUSES = ["pending", "approved", "audit", "enforced", "rejected", "superseded"] as const;

export function ReviewView({ params }: { params: URLSearchParams }) {
  const status = params.get("status") ?? "";
  const namespace = params.get("namespace") ?? "";
  const id = params.get("id");
  const set = (changes: Record<string, string | null>) => update("review", params, changes);
  const list = useApi(
    (signal) =>
      get("Loading suggestions", "/api/v1/suggestions", { status: (status || undefined) as ReviewRecord["status"] | undefined, namespace: namespace || undefined, limit: 1000 }, undefined, signal),
    [status, namespace],
  );
  return (
    <div className="review-view">
      <div className="filters">
        <label>
          Status
          <select value={status} onChange={(e) => set({ status: e.target.value || null })} data-testid="review-status">
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Namespace
          <input value={namespace} onChange={(e) => set({ namespace: e.target.value || null })} placeholder="all" />
        </label>
        <Generate namespace={namespace} onDone={list.reload} />
      </div>
      <div className="split">
        <section className="list" aria-label="Suggestions">
          <Show loaded={list} what="suggestions" isEmpty={(p) => p.items.length === 0} empty="No suggestion here. Suggestions come from learned baselines: generate them once workloads are stable.">
            {(p) => (
              <ul className="records">
                {p.items.map((r) => (
                  <li key={r.id}>
                    <button type="button" className="link" aria-current={String(r.id) === id ? "true" : undefined} onClick={() => set({ id: String(r.id) })} data-testid={`suggestion-${r.workload.namespace}-${r.workload.name}`}>
                      #{r.id} {r.workload.namespace}/{r.workload.name} <span className={`badge ${r.status}`}>{r.status}</span>
                      {!r.stable && <span className="badge warn">learning</span>}
                    </button>
                  </li>
                ))}
              </ul>
            )}
          </Show>
        </section>
        <section className="detail" aria-label="Suggestion">
          {id ? <Detail id={Number(id)} onChanged={list.reload} /> : <div className="state empty">Pick a suggestion to see its evidence, diff and what-if.</div>}
        </section>
      </div>
    </div>
  );
}

function Generate({ namespace, onDone }: { namespace: string; onDone: () => void }) {
  const allowed = useCan("reviewer");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  if (!allowed) return null;
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      await post("Generating suggestions", "/api/v1/suggestions", { namespace: namespace || undefined });
      onDone();
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" onClick={run} disabled={busy} data-testid="generate">
        {busy ? "Generating…" : "Generate suggestions"}
      </button>
      {error && <ErrorBox error={error} />}
    </>
  );
}

function Detail({ id, onChanged }: { id: number; onChanged: () => void }) {
  const detail = useApi((signal) => get(`Loading suggestion #${id}`, "/api/v1/suggestions/{id}", undefined, { id }, signal), [id]);
  // In audit, the would-drop count is live.
  const inAudit = detail.data?.record.status === "audit";
  useEffect(() => {
    if (!inAudit) return;
    const t = setInterval(detail.reload, 3000);
    return () => clearInterval(t);
  }, [inAudit, detail.reload]);
  return (
    <Show loaded={detail} what={`suggestion #${id}`}>
      {(d) => <DetailBody d={d} onChanged={() => { detail.reload(); onChanged(); }} />}
    </Show>
  );
}

function DetailBody({ d, onChanged }: { d: ReviewDetail; onChanged: () => void }) {
  const r = d.record;
  const s = sides(d.diff, d.yaml);
  const w = d.what_if;
  return (
    <div data-testid="suggestion-detail">
      <h2>
        #{r.id} {r.workload.namespace}/{r.workload.name} <span className={`badge ${r.status}`} data-testid="suggestion-status">{r.status}</span>
      </h2>
      <p className="muted">
        created {time(r.created_ns)} · updated {time(r.updated_ns)} · baseline {r.stable ? "stable" : "still learning"}
        {r.audit_since_ns ? ` · in audit since ${time(r.audit_since_ns)}` : ""}
        {r.enforced_since_ns ? ` · enforced since ${time(r.enforced_since_ns)}` : ""}
      </p>
      {r.warnings.map((x) => (
        <p key={x} className="notice">
          ⚠ {x}
        </p>
      ))}
      <Actions r={r} onChanged={onChanged} />
      {r.status === "audit" && (
        <p className={`banner ${d.would_drop_total > 0 ? "warn" : "ok"}`} data-testid="would-drop-live">
          In audit: <strong>{d.would_drop_total}</strong> flow(s) would have been dropped since it was staged (refreshed every 3 s).
        </p>
      )}
      <h3>Evidence</h3>
      <table className="compact">
        <thead>
          <tr>
            <th>rule</th>
            <th>peers</th>
            <th>ports</th>
            <th>connections</th>
            <th>seen</th>
          </tr>
        </thead>
        <tbody>
          {r.rules.map((e) => (
            <tr key={`${e.side}-${e.index}`}>
              <td>
                {e.side} [{e.index}]
              </td>
              <td>{e.peers.join(", ")}</td>
              <td>{e.ports.join(", ")}</td>
              <td>{e.connections}</td>
              <td>
                {time(e.first_seen_ns)} – {time(e.last_seen_ns)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>
        YAML {d.diff.length ? `against the policy in force (+${s.added} −${s.removed})` : "(no policy of this name is in force: all new)"}
      </h3>
      {d.also_in_force.length > 0 && <p className="muted">Also selecting these pods: {d.also_in_force.join(", ")}</p>}
      <YamlDiff before={s.before} after={s.after} />
      <h3>What-if on the recorded flows</h3>
      <p data-testid="what-if">
        Replayed {w.replayed} flow(s): it would drop <strong>{w.would_drop.length}</strong>
        {w.already_dropped ? `, ${w.already_dropped} were dropped already` : ""}
        {w.not_replayable ? `, ${w.not_replayable} could not be replayed (their pods are gone)` : ""}.{" "}
        <a href={format("map", { cut: String(r.id), namespace: r.workload.namespace })} data-testid="show-cut">
          Show the edges it would cut on the map
        </a>
      </p>
      {w.would_drop.length > 0 && (
        <table className="compact">
          <thead>
            <tr>
              <th>time</th>
              <th>from</th>
              <th>to</th>
              <th>decided by</th>
            </tr>
          </thead>
          <tbody>
            {w.would_drop.map((x) => (
              <tr key={x.flow.id}>
                <td>{time(x.flow.time_ns)}</td>
                <td>{peer(x.flow.source)}</td>
                <td>
                  {peer(x.flow.destination)}:{x.flow.dst_port}/{x.flow.protocol}
                </td>
                <td>{[x.egress && `egress: ${x.egress}`, x.ingress && `ingress: ${x.ingress}`].filter(Boolean).join("; ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>History</h3>
      <ol className="history">
        {d.history.map((h, i) => (
          <li key={i}>
            {time(h.time_ns)} · {h.actor} · {h.action}
            {h.reason ? `: ${h.reason}` : ""}
          </li>
        ))}
      </ol>
    </div>
  );
}

function Actions({ r, onChanged }: { r: ReviewRecord; onChanged: () => void }) {
  const reviewer = useCan("reviewer");
  const admin = useCan("admin");
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<Error | null>(null);
  if (!reviewer) return <p className="muted">Your role may read suggestions; approving and applying need the reviewer role.</p>;
  const act = async (what: string, run: () => Promise<unknown>) => {
    setBusy(what);
    setError(null);
    try {
      await run();
      onChanged();
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(null);
    }
  };
  const id = { id: r.id };
  const body = { reason: reason || undefined };
  const open = r.status !== "rejected" && r.status !== "superseded";
  return (
    <div className="actions-box">
      <label>
        Reason (for the audit log)
        <input value={reason} onChange={(e) => setReason(e.target.value)} data-testid="review-reason" />
      </label>
      <div className="actions">
        {r.status === "pending" && (
          <>
            <button type="button" onClick={() => act("approve", () => post(`Approving #${r.id}`, "/api/v1/suggestions/{id}/approve", body, id))} disabled={!!busy} data-testid="approve">
              Approve
            </button>
            <button type="button" onClick={() => act("reject", () => post(`Rejecting #${r.id}`, "/api/v1/suggestions/{id}/reject", body, id))} disabled={!!busy} data-testid="reject">
              Reject
            </button>
          </>
        )}
        {open && (r.status === "approved" || r.status === "enforced") && (
          <button type="button" onClick={() => act("audit", () => post(`Applying #${r.id} in audit`, "/api/v1/suggestions/{id}/apply", { mode: "audit", ...body }, id))} disabled={!!busy} data-testid="apply-audit">
            Apply in audit
          </button>
        )}
        {open && admin && (r.status === "approved" || r.status === "audit") && (
          <button type="button" className="danger" onClick={() => act("enforce", () => post(`Enforcing #${r.id}`, "/api/v1/suggestions/{id}/apply", { mode: "enforce", ...body }, id))} disabled={!!busy} data-testid="enforce">
            Enforce
          </button>
        )}
        {busy && <span className="muted">{busy === "enforce" ? "Enforcing on every node…" : busy === "audit" ? "Staging on every node…" : "Saving…"}</span>}
      </div>
      {error && <ErrorBox error={error} />}
    </div>
  );
}
