// One click to cut a pod or workload off, with a confirmation and a reason;
// the answer says how long until every agent enforced it, as the API reports.
import { useEffect, useRef, useState } from "react";
import { ApiError, del, post, type Quarantine } from "../api/client";
import { micros } from "./format";
import { ErrorBox } from "./states";
import { useCan } from "./session";

export interface Target {
  kind: "pod" | "workload";
  /** "namespace/name". */
  name: string;
}

/** The button and its confirmation dialog; absent for roles that may not quarantine. */
export function QuarantineButton({ target, onDone }: { target: Target; onDone?: (q: Quarantine) => void }) {
  const allowed = useCan("responder");
  const [open, setOpen] = useState(false);
  if (!allowed) return null;
  return (
    <>
      <button type="button" className="danger" onClick={() => setOpen(true)} data-testid="quarantine-button">
        Quarantine {target.kind}
      </button>
      {open && <QuarantineDialog target={target} onClose={() => setOpen(false)} onDone={onDone} />}
    </>
  );
}

function QuarantineDialog({ target, onClose, onDone }: { target: Target; onClose: () => void; onDone?: (q: Quarantine) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [done, setDone] = useState<Quarantine | null>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  const confirm = async () => {
    if (!reason.trim()) {
      setError(new Error("Give a reason: it goes to the audit log with your name"));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body = target.kind === "pod" ? { pod: target.name, reason } : { workload: target.name, reason };
      const q = await post(`Quarantining ${target.name}`, "/api/v1/quarantines", body);
      setDone(q);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <dialog
      ref={ref}
      className="dialog"
      onClose={() => {
        // Told after the dialog closes: the caller may then redraw what held the button.
        if (done) onDone?.(done);
        onClose();
      }} aria-labelledby="q-title" data-testid="quarantine-dialog">
      <h2 id="q-title">Quarantine {target.name}</h2>
      {!done ? (
        <>
          <p>
            Every connection to and from {target.kind === "workload" ? "every pod of this workload" : "this pod"} is cut at
            once, established ones included, until it is released.
          </p>
          <label htmlFor="q-reason">Reason (recorded in the audit log)</label>
          <textarea id="q-reason" value={reason} onChange={(e) => setReason(e.target.value)} rows={3} autoFocus />
          {error && <ErrorBox error={error} />}
          <div className="actions">
            <button type="button" className="danger" onClick={confirm} disabled={busy} data-testid="quarantine-confirm">
              {busy ? "Cutting…" : "Cut it off"}
            </button>
            <button type="button" onClick={() => ref.current?.close()}>
              Cancel
            </button>
          </div>
        </>
      ) : (
        <>
          <p data-testid="quarantine-result">
            Quarantine #{done.id} enforced in <strong>{micros(done.enforced_micros)}</strong> on{" "}
            {done.pods.filter((p) => p.enforced).length} of {done.pods.length} pod(s).
          </p>
          <ul>
            {done.pods.map((p) => (
              <li key={p.pod}>
                {p.pod} on {p.node}: {p.enforced ? `enforced (agent ${micros(p.agent_micros)})` : `NOT enforced: ${p.error ?? "unknown"}`}
              </li>
            ))}
          </ul>
          <div className="actions">
            <button type="button" onClick={() => ref.current?.close()} autoFocus>
              Close
            </button>
          </div>
        </>
      )}
    </dialog>
  );
}

/** Release is one click (the reason is optional); the audit log records it. */
export function ReleaseButton({ id, onDone }: { id: number; onDone?: () => void }) {
  const allowed = useCan("responder");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  if (!allowed) return null;
  const release = async () => {
    setBusy(true);
    setError(null);
    try {
      await del(`Releasing quarantine #${id}`, "/api/v1/quarantines/{id}", { reason: "released from the console" }, { id });
      onDone?.();
    } catch (e) {
      setError(e instanceof ApiError ? e : new Error(String(e)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" onClick={release} disabled={busy} data-testid={`release-${id}`}>
        {busy ? "Releasing…" : "Release"}
      </button>
      {error && <ErrorBox error={error} />}
    </>
  );
}
