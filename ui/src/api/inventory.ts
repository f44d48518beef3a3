// Lists the map needs whole: every page of pods, the anomalies.
import { get, type Anomaly, type Pod } from "./client";

/** The most pages read for one list (1 000 items each). */
const MAX_PAGES = 50;

export async function allPods(signal?: AbortSignal): Promise<Pod[]> {
  const out: Pod[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await get("Loading pods", "/api/v1/pods", { limit: 1000, cursor }, undefined, signal);
    out.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

export async function allAnomalies(signal?: AbortSignal): Promise<Anomaly[]> {
  const out: Anomaly[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await get("Loading anomalies", "/api/v1/anomalies", { limit: 1000, cursor }, undefined, signal);
    out.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

/** The graph node id of a pod's workload. */
export function podWorkloadId(p: Pod): string {
  return `workload:${p.workload.namespace}/${p.workload.kind}/${p.workload.name}`;
}
