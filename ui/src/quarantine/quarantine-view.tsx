// Quarantines: active and past, who made and released them, how fast they
// were enforced; release is one click, and a new one starts from a pod name.
import { useState } from "react";
import { get, type Quarantine } from "../api/client";
import { format, replace } from "../route";
import { sinceBefore } from "../trail/timeline";
import { micros, time } from "../ui/format";
import { QuarantineButton, ReleaseButton } from "../ui/quarantine-dialog";
import { useCan } from "../ui/session";
import { Show, useApi } from "../ui/states";

export function QuarantineView({ params }: { params: URLSearchParams }) {
  const state = params.get("state") ?? "";
  const list = useApi(
    (signal) => get("Loading quarantines", "/api/v1/quarantines", { state: (state || undefined) as Quarantine["state"] | undefined, limit: 1000 }, undefined, signal),
    [state],
  );
  const responder = useCan("responder");
  const [pod, setPod] = useState("");
  return (
    <div className="quarantine-view">
      <div className="filters">
        <label>
          State
          <select value={state} onChange={(e) => replace("quarantine", { state: e.target.value })} data-testid="quarantine-state">
            <option value="">all</option>
            <option value="active">active</option>
            <option value="released">released</option>
            <option value="ended">ended</option>
          </select>
        </label>
        {responder && (
          <label>
            Pod or workload to cut off
            <input value={pod} onChange={(e) => setPod(e.target.value.trim())} placeholder="namespace/name" data-testid="quarantine-target" />
          </label>
        )}
        {responder && /^[^/\s]+\/[^/\s]+$/.test(pod) && (
          <>
            <QuarantineButton target={{ kind: "pod", name: pod }} onDone={list.reload} />
            <QuarantineButton target={{ kind: "workload", name: pod }} onDone={list.reload} />
          </>
        )}
      </div>
      <Show loaded={list} what="quarantines" isEmpty={(p) => p.items.length === 0} empty="No quarantine. Cut a pod off from the map, a flow, or above.">
        {(p) => (
          <table className="compact" data-testid="quarantine-list">
            <thead>
              <tr>
                <th>#</th>
                <th>target</th>
                <th>state</th>
                <th>reason</th>
                <th>by</th>
                <th>since</th>
                <th>enforced in</th>
                <th>pods</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {p.items.map((q) => (
                <tr key={q.id} data-testid={`quarantine-${q.id}`}>
                  <td>{q.id}</td>
                  <td>
                    {q.kind} {q.namespace}/{q.name}
                  </td>
                  <td>
                    <span className={`badge ${q.state === "active" ? "quarantined" : ""}`}>{q.state}</span>
                  </td>
                  <td>{q.reason}</td>
                  <td>
                    {q.created_by}
                    {q.released_by ? ` · released by ${q.released_by}` : ""}
                  </td>
                  <td>
                    {time(q.created_ns)}
                    {q.ended_ns ? ` – ${time(q.ended_ns)}` : ""}
                  </td>
                  <td>{micros(q.enforced_micros)}</td>
                  <td>
                    {q.pods.map((x) => (
                      <div key={x.pod}>
                        {x.pod} {x.enforced ? `(${micros(x.agent_micros)})` : `not enforced: ${x.error ?? "?"}`}{" "}
                        <a href={format("trail", { pod: x.pod, since: sinceBefore(q.created_ns) })} data-testid={`trail-link-${x.pod}`}>
                          trail
                        </a>
                      </div>
                    ))}
                    {q.pods.length === 0 && q.kind === "pod" && (
                      <a href={format("trail", { pod: `${q.namespace}/${q.name}`, since: sinceBefore(q.created_ns) })}>trail</a>
                    )}
                  </td>
                  <td>{q.state === "active" && <ReleaseButton id={q.id} onDone={list.reload} />}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Show>
    </div>
  );
}
