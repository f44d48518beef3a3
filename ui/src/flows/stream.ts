// The live flow stream: server-sent events read with fetch (EventSource
// cannot send the bearer header), resumed from the last event id after a
// broken connection, with `lost` events passed on, never swallowed.
import { authHeader, buildUrl, type Flow, type Schemas } from "../api/client";

export type Lost = Schemas["Lost"];

export interface StreamHandlers {
  onFlows: (flows: Flow[]) => void;
  onLost: (lost: Lost) => void;
  onState: (state: "connecting" | "live" | "retrying", detail?: string) => void;
}

/** Splits SSE text into complete events; returns them and the unparsed rest. */
export function parseEvents(buffer: string): { events: { event: string; id?: string; data: string }[]; rest: string } {
  const events: { event: string; id?: string; data: string }[] = [];
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let event = "message";
    let id: string | undefined;
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "id") id = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ event, id, data: data.join("\n") });
  }
  return { events, rest };
}

/** Follows the stream until `signal` aborts; flows are handed over in batches, once per frame at most. */
export async function follow(query: Record<string, string | number | undefined>, h: StreamHandlers, signal: AbortSignal): Promise<void> {
  let last: string | undefined;
  let delay = 500;
  while (!signal.aborted) {
    h.onState("connecting");
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream", ...authHeader() };
      if (last) headers["Last-Event-ID"] = last;
      const r = await fetch(buildUrl("/api/v1/flows/stream", undefined, query), { headers, signal });
      if (!r.ok || !r.body) {
        let detail = `HTTP ${r.status}`;
        try {
          detail = ((await r.json()) as { detail?: string }).detail ?? detail;
        } catch {
          // Not a problem document.
        }
        if (r.status === 400 || r.status === 401 || r.status === 403) {
          h.onState("retrying", `${detail} (not retried: fix the filter or sign in again)`);
          return;
        }
        throw new Error(detail);
      }
      h.onState("live");
      delay = 500;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let pending: Flow[] = [];
      let scheduled = false;
      const flush = () => {
        scheduled = false;
        if (pending.length) h.onFlows(pending);
        pending = [];
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const { events, rest } = parseEvents(buffer);
        buffer = rest;
        for (const e of events) {
          if (e.event === "flow") {
            pending.push(JSON.parse(e.data) as Flow);
            if (e.id) last = e.id;
          } else if (e.event === "lost") {
            h.onLost(JSON.parse(e.data) as Lost);
          }
        }
        if (pending.length && !scheduled) {
          scheduled = true;
          requestAnimationFrame(flush);
        }
      }
      flush();
      throw new Error("the stream ended");
    } catch (e) {
      if (signal.aborted) return;
      h.onState("retrying", e instanceof Error ? e.message : String(e));
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }
}
