import { describe, expect, it } from "vitest";
import type { Flow } from "../src/api/client";
import { fromParams, matches, problems, toQuery } from "../src/flows/filter";
import { parseEvents } from "../src/flows/stream";
import { sides } from "../src/review/diff";
import { format, parse } from "../src/route";

const flow = (over: Partial<Flow> = {}): Flow => ({
  id: 1,
  time_ns: 1,
  node: "n1",
  observation: "egress",
  source: { kind: "workload", namespace: "shop", name: "web", workload_kind: "Deployment", pod: "web-0", ip: "10.0.0.1" },
  destination: { kind: "workload", namespace: "bank", name: "ledger", workload_kind: "Deployment", pod: "ledger-0", ip: "10.0.0.2" },
  src_port: 40000,
  dst_port: 9000,
  protocol: "TCP",
  verdict: "forwarded",
  bytes: 10,
  packets: 1,
  ...over,
});

describe("flow filters", () => {
  it("read from the URL, dropping empty and unknown keys", () => {
    expect(fromParams(new URLSearchParams("namespace=shop&port=&bogus=1&verdict=dropped"))).toEqual({ namespace: "shop", verdict: "dropped" });
  });

  it("name what is wrong before anything is sent", () => {
    expect(problems({ port: "99999" }).port).toMatch(/1 to 65535/);
    expect(problems({ port: "http" }).port).toBeDefined();
    expect(problems({ since: "yesterday" }).since).toBeDefined();
    expect(problems({ since: "15m" })).toEqual({});
    expect(problems({ pod: "web-0" }).pod).toMatch(/namespace/);
    expect(problems({ pod: "web-0", namespace: "shop" })).toEqual({});
  });

  it("qualify bare pod and workload names with the namespace for the API", () => {
    expect(toQuery({ namespace: "shop", pod: "web-0", port: "80", protocol: "tcp" })).toEqual({ namespace: "shop", pod: "shop/web-0", port: 80, protocol: "TCP" });
  });

  it("match either end, or the side asked for", () => {
    expect(matches(flow(), { namespace: "bank" })).toBe(true);
    expect(matches(flow(), { namespace: "bank", side: "source" })).toBe(false);
    expect(matches(flow(), { workload: "shop/web", side: "source" })).toBe(true);
    expect(matches(flow(), { pod: "ledger-0", namespace: "bank" })).toBe(true);
    expect(matches(flow(), { verdict: "dropped" })).toBe(false);
    expect(matches(flow(), { port: "9000", protocol: "tcp" })).toBe(true);
    expect(matches(flow({ rule: "shop/allow-web egress[0]" }), { rule: "allow-web" })).toBe(true);
  });
});

describe("the stream", () => {
  it("splits server-sent events, keeping an incomplete one for later", () => {
    const { events, rest } = parseEvents('event: flow\nid: 3-7\ndata: {"id":7}\n\n: keep-alive\n\nevent: lost\ndata: {"lost":2}\n\nevent: flow\ndata: {"id"');
    expect(events).toEqual([
      { event: "flow", id: "3-7", data: '{"id":7}' },
      { event: "lost", id: undefined, data: '{"lost":2}' },
    ]);
    expect(rest).toBe('event: flow\ndata: {"id"');
  });
});

describe("the review diff", () => {
  it("rebuilds both sides from the API's marked lines", () => {
    const s = sides([" kind: NetworkPolicy", "-  mode: audit", "+  mode: enforce", " spec: {}"], "ignored");
    expect(s.before).toBe("kind: NetworkPolicy\n  mode: audit\nspec: {}");
    expect(s.after).toBe("kind: NetworkPolicy\n  mode: enforce\nspec: {}");
    expect([s.added, s.removed]).toEqual([1, 1]);
  });

  it("shows everything as new when no policy is in force", () => {
    expect(sides([], "a: 1\nb: 2\n")).toEqual({ before: "", after: "a: 1\nb: 2\n", added: 2, removed: 0 });
  });
});

describe("routes", () => {
  it("round-trip a view and its filters, defaulting to the map", () => {
    const hash = format("flows", { namespace: "shop", verdict: "dropped", port: "" });
    expect(hash).toBe("#/flows?namespace=shop&verdict=dropped");
    const r = parse(hash);
    expect(r.view).toBe("flows");
    expect(r.params.get("verdict")).toBe("dropped");
    expect(parse("#/nonsense").view).toBe("map");
    expect(parse("").view).toBe("map");
  });
});
