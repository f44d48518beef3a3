// Lists the map needs whole: every page of pods, the anomalies.
import { workloadNodeId } from "../map/shape";
import { get, type Anomaly, type Pod } from "./client";

/** The most pages read for one list (1 000 items each). */
const MAX_PAGES = 50;

/** Every page of a list, following its cursors (at most MAX_PAGES). */
async function allPages<T>(page: (cursor: string | undefined) => Promise<{ items: T[]; next_cursor?: string | null }>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const p = await page(cursor);
    out.push(...p.items);
    if (!p.next_cursor) break;
    cursor = p.next_cursor;
  }
  return out;
}

export function allPods(signal?: AbortSignal): Promise<Pod[]> {
  return allPages((cursor) => get("Loading pods", "/api/v1/pods", { limit: 1000, cursor }, undefined, signal));
}

export function allAnomalies(signal?: AbortSignal): Promise<Anomaly[]> {
  return allPages((cursor) => get("Loading anomalies", "/api/v1/anomalies", { limit: 1000, cursor }, undefined, signal));
}

/** The graph node id of a pod's workload. */
export function podWorkloadId(p: Pod): string {
  return workloadNodeId(p.workload);
}
