// Hubble-style flow filters: the same keys in the URL, in the API query, and
// when matching a streamed flow on the client (the stream is filtered by the
// server too; the client check keeps a resumed stream honest).
import type { Flow, Peer } from "../api/client";

export const FILTER_KEYS = ["namespace", "pod", "workload", "side", "verdict", "port", "protocol", "rule", "since"] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];
export type FlowFilter = Partial<Record<FilterKey, string>>;

/** The filters a URL carries (unknown keys ignored, empty values dropped). */
export function fromParams(p: URLSearchParams): FlowFilter {
  const f: FlowFilter = {};
  for (const k of FILTER_KEYS) {
    const v = p.get(k)?.trim();
    if (v) f[k] = v;
  }
  return f;
}

/** What is wrong with a filter, per key, before it is sent. */
export function problems(f: FlowFilter): Partial<Record<FilterKey, string>> {
  const out: Partial<Record<FilterKey, string>> = {};
  if (f.port !== undefined && !/^\d+$/.test(f.port)) out.port = "a port is a number from 1 to 65535";
  else if (f.port !== undefined && (Number(f.port) < 1 || Number(f.port) > 65535)) out.port = "a port is a number from 1 to 65535";
  if (f.verdict && !["forwarded", "dropped", "audit"].includes(f.verdict)) out.verdict = "forwarded, dropped or audit";
  if (f.side && !["either", "source", "destination"].includes(f.side)) out.side = "either, source or destination";
  if (f.since && !/^(\d+[smhd]|\d{4}-\d\d-\d\dT.+)$/.test(f.since)) out.since = "a duration ago (30s, 15m, 2h) or an RFC 3339 time";
  for (const k of ["pod", "workload"] as const) if (f[k] && !f[k].includes("/") && !f.namespace) out[k] = "namespace/name, or set the namespace";
  return out;
}

/** The API query for a filter: `pod` and `workload` qualified by the namespace when bare. */
export function toQuery(f: FlowFilter): Record<string, string | number | undefined> {
  const q: Record<string, string | number | undefined> = { ...f };
  for (const k of ["pod", "workload"] as const) if (f[k] && !f[k].includes("/") && f.namespace) q[k] = `${f.namespace}/${f[k]}`;
  if (f.port) q.port = Number(f.port);
  if (f.protocol) q.protocol = f.protocol.toUpperCase();
  return q;
}

function endMatches(p: Peer, f: FlowFilter): boolean {
  if (f.namespace && p.namespace !== f.namespace) return false;
  if (f.pod) {
    const want = f.pod.includes("/") ? f.pod : `${f.namespace}/${f.pod}`;
    if (`${p.namespace}/${p.pod}` !== want) return false;
  }
  if (f.workload) {
    const want = f.workload.includes("/") ? f.workload : `${f.namespace}/${f.workload}`;
    if (`${p.namespace}/${p.name}` !== want) return false;
  }
  return true;
}

/** Whether a flow passes a filter, as the server decides it. */
export function matches(flow: Flow, f: FlowFilter): boolean {
  const side = f.side ?? "either";
  const ends = side === "source" ? [flow.source] : side === "destination" ? [flow.destination] : [flow.source, flow.destination];
  if ((f.namespace || f.pod || f.workload) && !ends.some((e) => endMatches(e, f))) return false;
  if (f.verdict && flow.verdict !== f.verdict) return false;
  if (f.port && flow.dst_port !== Number(f.port)) return false;
  if (f.protocol && flow.protocol.toUpperCase() !== f.protocol.toUpperCase()) return false;
  if (f.rule && !(flow.rule ?? "").includes(f.rule)) return false;
  return true;
}
