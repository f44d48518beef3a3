// How values read in the console, everywhere the same.
import type { Peer } from "../api/client";

export function time(ns: number | null | undefined): string {
  if (!ns) return "—";
  return new Date(ns / 1e6).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function ago(ns: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ns / 1e6) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function micros(us: number | null | undefined): string {
  if (us === null || us === undefined) return "—";
  return us < 1000 ? `${us} µs` : `${(us / 1000).toFixed(1)} ms`;
}

/** A flow end as one line: namespace/pod (workload), or its address. */
export function peer(p: Peer): string {
  if (p.kind === "workload") {
    const where = p.pod ? `${p.namespace}/${p.pod}` : `${p.namespace}/${p.name ?? "?"}`;
    return p.name && p.pod ? `${where} (${p.name})` : where;
  }
  if (p.kind === "namespace") return `${p.namespace ?? "?"}/*`;
  if (p.kind === "service") return `svc ${p.namespace}/${p.name ?? "?"}`;
  if (p.kind === "host") return `node ${p.name ?? p.ip ?? "?"}`;
  return p.ip ?? p.name ?? "world";
}
