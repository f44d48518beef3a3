// "Block this source": an address dropped both ways on every node, before
// any policy, for a chosen time; confirmed with a reason for the audit log.
import { useEffect, useRef, useState } from "react";
import { post, type Block } from "../api/client";
import { time } from "./format";
import { ErrorBox } from "./states";
import { useCanBlock } from "./session";

/** The spans offered; the API takes any ("90s", "30m", "2h", "7d"). */
const SPANS: [string, string][] = [
  ["1h", "1 hour"],
  ["24h", "24 hours"],
  ["7d", "7 days"],
  ["", "until lifted"],
];

/** The button and its dialog; absent for callers who may not block (a tenant, or below responder). */
export function BlockButton({ address, onDone }: { address: string; onDone?: (b: Block) => void }) {
  const allowed = useCanBlock();
  const [open, setOpen] = useState(false);
  if (!allowed) return null;
  return (
    <>
      <button type="button" className="danger" onClick={() => setOpen(true)} data-testid="block-button">
        Block this source
      </button>
      {open && <BlockDialog initial={address} onClose={() => setOpen(false)} onDone={onDone} />}
    </>
  );
}

export function BlockDialog({ initial, onClose, onDone }: { initial: string; onClose: () => void; onDone?: (b: Block) => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [cidr, setCidr] = useState(initial);
  const [reason, setReason] = useState("");
  const [span, setSpan] = useState("24h");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [done, setDone] = useState<Block | null>(null);
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
      setDone(await post(`Blocking ${cidr}`, "/api/v1/blocks", { cidr, reason, expires_in: span || undefined }));
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
        if (done) onDone?.(done);
        onClose();
      }}
      aria-labelledby="b-title"
      data-testid="block-dialog"
    >
      <h2 id="b-title">Block {cidr}</h2>
      {!done ? (
        <>
          <p>
            Every packet from or to this address is dropped on every node, before any policy, established connections
            included. Blocks apply to the whole cluster.
          </p>
          <label htmlFor="b-cidr">Address or CIDR</label>
          <input id="b-cidr" value={cidr} onChange={(e) => setCidr(e.target.value.trim())} data-testid="block-cidr" />
          <label htmlFor="b-span">For</label>
          <select id="b-span" value={span} onChange={(e) => setSpan(e.target.value)} data-testid="block-span">
            {SPANS.map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
          <label htmlFor="b-reason">Reason (recorded in the audit log)</label>
          <textarea id="b-reason" value={reason} onChange={(e) => setReason(e.target.value)} rows={3} autoFocus data-testid="block-reason" />
          {error && <ErrorBox error={error} />}
          <div className="actions">
            <button type="button" className="danger" onClick={confirm} disabled={busy} data-testid="block-confirm">
              {busy ? "Blocking…" : "Block it"}
            </button>
            <button type="button" onClick={() => ref.current?.close()}>
              Cancel
            </button>
          </div>
        </>
      ) : (
        <>
          <p data-testid="block-result">
            Block #{done.id}: {done.cidr} is dropped on every node {done.expires_ns ? `until ${time(done.expires_ns)}` : "until lifted"}.
          </p>
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
