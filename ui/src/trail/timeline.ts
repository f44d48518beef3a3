// A trail as one time-ordered list for the timeline: its connection groups,
// its quarantines (made and ended) and its audit records, each placed on the
// window's strip. Pure, so it is tested without a browser.
import type { Schemas } from "../api/client";

export type Trail = Schemas["Trail"];
export type TrailConnection = Schemas["TrailConnection"];

export type TimelineEvent =
  | { kind: "connection"; at: number; connection: TrailConnection }
  | { kind: "quarantined" | "released"; at: number; quarantine: Schemas["Quarantine"] }
  | { kind: "audit"; at: number; entry: Schemas["AuditEntry"] };

/** Every event of a trail, earliest first (connections before other events at the same instant). */
export function timeline(t: Trail): TimelineEvent[] {
  const out: TimelineEvent[] = t.connections.map((c) => ({ kind: "connection", at: c.first_seen_ns, connection: c }));
  for (const q of t.quarantines) {
    out.push({ kind: "quarantined", at: q.created_ns, quarantine: q });
    if (q.ended_ns) out.push({ kind: "released", at: q.ended_ns, quarantine: q });
  }
  for (const e of t.audit) out.push({ kind: "audit", at: e.time_unix_ms * 1e6, entry: e });
  const rank = (e: TimelineEvent) => (e.kind === "connection" ? 0 : 1);
  return out.sort((a, b) => a.at - b.at || rank(a) - rank(b));
}

/** Where an instant sits on the window's strip, in percent (clamped to it). */
export function position(at: number, since: number, until: number): number {
  if (until <= since) return 0;
  return Math.min(100, Math.max(0, ((at - since) / (until - since)) * 100));
}

/** The `since` that opens a quarantine's trail: 30 minutes before it was made. */
export function sinceBefore(createdNs: number, minutes = 30): string {
  return new Date(createdNs / 1e6 - minutes * 60_000).toISOString();
}

/** A connection group's peer as one line. */
export function peerName(n: TrailConnection["peer"]): string {
  if (n.redacted) return `${n.namespace ?? "?"}/*`;
  return n.namespace && n.kind !== "namespace" ? `${n.namespace}/${n.name}` : n.name;
}
