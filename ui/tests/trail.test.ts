import { describe, expect, it } from "vitest";
import { position, sinceBefore, timeline, type Trail } from "../src/trail/timeline";

const conn = (first: number, port: number, fresh: boolean) => ({
  direction: "egress" as const,
  peer: { id: "pod:shop/db-0", kind: "pod" as const, name: "db-0", namespace: "shop" },
  protocol: "TCP",
  port,
  verdict: "forwarded" as const,
  connections: 1,
  bytes: 10,
  first_seen_ns: first,
  last_seen_ns: first,
  new_edge: fresh,
});

describe("timeline", () => {
  it("merges connections, quarantines and audit records in time order", () => {
    const t = {
      pod: "shop/web-0",
      since_ns: 0,
      until_ns: 100e6,
      connections: [conn(30e6, 5432, true), conn(10e6, 8080, false)],
      second_hop: [],
      quarantines: [{ id: 1, created_ns: 40e6, ended_ns: 90e6 } as unknown as Trail["quarantines"][number]],
      audit: [{ id: 7, time_unix_ms: 40, action: "quarantine" } as unknown as Trail["audit"][number]],
    } as unknown as Trail;
    const kinds = timeline(t).map((e) => [e.kind, e.at]);
    expect(kinds).toEqual([
      ["connection", 10e6],
      ["connection", 30e6],
      ["quarantined", 40e6],
      ["audit", 40e6],
      ["released", 90e6],
    ]);
  });

  it("places instants on the strip and opens a quarantine's window 30 minutes before", () => {
    expect(position(50, 0, 100)).toBe(50);
    expect(position(-5, 0, 100)).toBe(0);
    expect(position(500, 0, 100)).toBe(100);
    expect(position(5, 10, 10)).toBe(0);
    expect(sinceBefore(Date.UTC(2026, 11, 3, 12, 0) * 1e6)).toBe("2026-12-03T11:30:00.000Z");
  });
});
