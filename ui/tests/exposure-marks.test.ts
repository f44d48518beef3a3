import { describe, expect, it } from "vitest";
import { marks, reachers } from "../src/map/exposure";

const node = (id: string) => ({ id, kind: "workload", namespace: id.split("/")[0], name: id, redacted: false }) as never;
const port = (workload: string, cls: string, findings: number, can: string[], total: number, world: string | null = null) =>
  ({
    namespace: "shop",
    workloads: [node(workload)],
    class: cls,
    findings: Array.from({ length: findings }, () => ({ kind: "unused_path", message: "", evidence: [], workloads: [] })),
    can_reach: { workloads: can.map(node), workloads_total: total, world, namespaces: [], every_namespace: false },
  }) as never;

describe("the map's exposure marks", () => {
  const report = {
    since_ns: 0,
    until_ns: 1,
    findings: [],
    ports: [port("shop/web", "internet_facing", 0, ["shop/api"], 1, "from 203.0.113.9"), port("shop/web", "cluster_internal", 2, ["shop/api", "shop/cart", "shop/web"], 70), port("shop/db", "cluster_internal", 1, [], 0)],
  } as never;

  it("badges internet-facing workloads and counts findings", () => {
    const m = marks(report);
    expect([...m.internet]).toEqual(["shop/web"]);
    expect(m.findings.get("shop/web")).toBe(2);
    expect(m.findings.get("shop/db")).toBe(1);
    expect(marks(undefined).internet.size).toBe(0);
  });

  it("what can reach a workload joins its ports and keeps the largest total", () => {
    const r = reachers(report, "shop/web");
    expect([...r.ids].sort()).toEqual(["shop/api", "shop/cart"]);
    expect((({ total, ports, world }) => ({ total, ports, world }))(r)).toEqual({ total: 69, ports: 2, world: "from 203.0.113.9" });
    expect(reachers(report, "shop/none").ports).toBe(0);
  });
});
