// What the exposure report adds to the map: badges for workloads serving an
// internet-facing port or a port with findings, and "what can reach X",
// the workloads the policies in force let connect to any of X's ports.
import type { Schemas } from "../api/client";

type Exposure = Schemas["Exposure"];

export type Marks = { internet: Set<string>; findings: Map<string, number> };

export function marks(report: Exposure | null | undefined): Marks {
  const internet = new Set<string>();
  const findings = new Map<string, number>();
  for (const p of report?.ports ?? []) {
    for (const w of p.workloads) {
      if (p.class === "internet_facing") internet.add(w.id);
      if (p.findings.length) findings.set(w.id, (findings.get(w.id) ?? 0) + p.findings.length);
    }
  }
  return { internet, findings };
}

export type Reachers = { ids: Set<string>; listed: number; total: number; ports: number; world: string | null };

// Over X's ports: the listed workloads (the report names at most 50 per
// port), the largest count any port has, and how the world gets in, if it does.
export function reachers(report: Exposure | null | undefined, node: string): Reachers {
  const ids = new Set<string>();
  let total = 0;
  let ports = 0;
  let world: string | null = null;
  for (const p of report?.ports ?? []) {
    if (!p.workloads.some((w) => w.id === node)) continue;
    ports += 1;
    // the workload itself is among those its policies let in: not counted
    const self = p.can_reach.workloads.some((w) => w.id === node) ? 1 : 0;
    for (const w of p.can_reach.workloads) if (w.id !== node) ids.add(w.id);
    total = Math.max(total, p.can_reach.workloads_total - self);
    world = world ?? p.can_reach.world ?? null;
  }
  return { ids, listed: ids.size, total: Math.max(total, ids.size), ports, world };
}
