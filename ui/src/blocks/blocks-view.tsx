// The block list: what is dropped on every node, until when, who made it
// and why; a new block from an address, and lifting is one click.
import { useState } from "react";
import { ApiError, del, get, type Block } from "../api/client";
import { replace } from "../route";
import { BlockDialog } from "../ui/block-dialog";
import { time } from "../ui/format";
import { useCanBlock } from "../ui/session";
import { ErrorBox, Show, useApi } from "../ui/states";

export function BlocksView({ params }: { params: URLSearchParams }) {
  const state = params.get("state") ?? "";
  const list = useApi(
    (signal) => get("Loading the block list", "/api/v1/blocks", { state: (state || undefined) as Block["state"] | undefined, limit: 1000 }, undefined, signal),
    [state],
  );
  const may = useCanBlock();
  const [adding, setAdding] = useState(false);
  return (
    <div className="blocks-view">
      <div className="filters">
        <label>
          State
          <select value={state} onChange={(e) => replace("blocks", { state: e.target.value })} data-testid="blocks-state">
            <option value="">all</option>
            <option value="active">active</option>
            <option value="lifted">lifted</option>
            <option value="expired">expired</option>
          </select>
        </label>
        {may && (
          <button type="button" className="danger" onClick={() => setAdding(true)} data-testid="block-new">
            Block an address…
          </button>
        )}
      </div>
      {adding && <BlockDialog initial="" onClose={() => setAdding(false)} onDone={list.reload} />}
      <Show loaded={list} what="blocks" isEmpty={(p) => p.items.length === 0} empty="Nothing is blocked. Block a source from a flow, or above.">
        {(p) => (
          <table className="compact" data-testid="block-list">
            <thead>
              <tr>
                <th>#</th>
                <th>address</th>
                <th>state</th>
                <th>reason</th>
                <th>by</th>
                <th>since</th>
                <th>until</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {p.items.map((b) => (
                <tr key={b.id} data-testid={`block-${b.id}`}>
                  <td>{b.id}</td>
                  <td>
                    <code>{b.cidr}</code>
                  </td>
                  <td>
                    <span className={`badge ${b.state === "active" ? "quarantined" : ""}`}>{b.state}</span>
                  </td>
                  <td>
                    {b.reason}
                    {b.end_reason ? ` · lifted: ${b.end_reason}` : ""}
                  </td>
                  <td>
                    {b.created_by}
                    {b.lifted_by ? ` · lifted by ${b.lifted_by}` : ""}
                  </td>
                  <td>{time(b.created_ns)}</td>
                  <td>{b.ended_ns ? time(b.ended_ns) : b.expires_ns ? time(b.expires_ns) : "lifted by hand"}</td>
                  <td>{b.state === "active" && may && <LiftButton id={b.id} onDone={list.reload} />}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Show>
    </div>
  );
}

function LiftButton({ id, onDone }: { id: number; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const lift = async () => {
    setBusy(true);
    setError(null);
    try {
      await del(`Lifting block #${id}`, "/api/v1/blocks/{id}", { reason: "lifted from the console" }, { id });
      onDone();
    } catch (e) {
      setError(e instanceof ApiError ? e : new Error(String(e)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" onClick={lift} disabled={busy} data-testid={`lift-${id}`}>
        {busy ? "Lifting…" : "Lift"}
      </button>
      {error && <ErrorBox error={error} />}
    </>
  );
}
