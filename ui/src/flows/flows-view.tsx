// Flows: the stored ones, then the live stream on top, with Hubble-style
// filters in the URL, pause and resume, a virtualised table, and losses
// always in view.
import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { get, type Flow } from "../api/client";
import { replace } from "../route";
import { bytes, peer, time } from "../ui/format";
import { Panel } from "../ui/panel";
import { BlockButton } from "../ui/block-dialog";
import { QuarantineButton } from "../ui/quarantine-dialog";
import { ErrorBox, Loading, useApi } from "../ui/states";
import { FILTER_KEYS, fromParams, matches, problems, toQuery, type FlowFilter } from "./filter";
import { follow, type Lost } from "./stream";

/** Rows kept in the table; older ones scroll out. */
const KEEP = 20_000;

export function FlowsView({ params }: { params: URLSearchParams }) {
  const filter = useMemo(() => fromParams(params), [params]);
  const key = JSON.stringify(filter);
  const bad = problems(filter);
  const valid = Object.keys(bad).length === 0;
  const [rows, setRows] = useState<Flow[]>([]);
  const [paused, setPaused] = useState(false);
  const held = useRef<Flow[]>([]);
  const [heldCount, setHeldCount] = useState(0);
  const [state, setState] = useState<{ state: string; detail?: string }>({ state: "connecting" });
  const [lost, setLost] = useState<{ total: number; since: number }>({ total: 0, since: Date.now() });
  const [selected, setSelected] = useState<Flow | null>(null);
  // Every streamed flow this view received, for the lost-flow check of the benchmark.
  const [received, setReceived] = useState(0);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  const stored = useApi(
    (signal) => (valid ? get("Loading stored flows", "/api/v1/flows", { ...toQuery(filter), limit: 500 }, undefined, signal) : Promise.resolve({ items: [] as Flow[] })),
    [key],
  );
  const status = useApi((signal) => get("Loading the flow pipeline's counters", "/api/v1/status", undefined, undefined, signal), []);
  useEffect(() => {
    const t = setInterval(status.reload, 5000);
    return () => clearInterval(t);
  }, [status.reload]);

  useEffect(() => {
    if (stored.state === "ready") setRows(stored.data.items);
  }, [stored.state, stored.data]);

  useEffect(() => {
    if (!valid || filter.since) return;
    const ctl = new AbortController();
    setLost({ total: 0, since: Date.now() });
    const q = toQuery(filter);
    void follow(
      q,
      {
        onFlows: (flows) => {
          setReceived((n) => n + flows.length);
          const fresh = flows.filter((f) => matches(f, filter)).reverse();
          if (pausedRef.current) {
            held.current = [...fresh, ...held.current].slice(0, KEEP);
            setHeldCount(held.current.length);
          } else {
            setRows((r) => [...fresh, ...r].slice(0, KEEP));
          }
        },
        onLost: (l: Lost) => setLost((x) => ({ ...x, total: l.total })),
        onState: (s, detail) => setState({ state: s, detail }),
      },
      ctl.signal,
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, valid]);

  const resume = () => {
    setRows((r) => [...held.current, ...r].slice(0, KEEP));
    held.current = [];
    setHeldCount(0);
    setPaused(false);
  };

  const parent = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({ count: rows.length, getScrollElement: () => parent.current, estimateSize: () => 30, overscan: 12 });
  const pipelineLost = status.data ? Object.entries(status.data.flows.lost).filter(([, n]) => Number(n) > 0) : [];
  const pipelineTotal = pipelineLost.reduce((s, [, n]) => s + Number(n), 0);

  return (
    <div className="flows-view">
      <FilterForm filter={filter} problems={bad} />
      <div className={`banner ${pipelineTotal + lost.total > 0 ? "warn" : ""}`} role="status" data-testid="lost-banner">
        {pipelineTotal > 0
          ? `${pipelineTotal} flows lost since the controller started, by stage: ${pipelineLost.map(([k, n]) => `${k} ${n}`).join(", ")}. `
          : status.data
            ? "No flow lost in the pipeline. "
            : ""}
        {lost.total > 0 ? `This view fell behind and missed ${lost.total} flows since ${new Date(lost.since).toLocaleTimeString()}.` : ""}
        {status.state === "error" && <span> Loss counters unavailable: {status.error.message}</span>}
      </div>
      <div className="toolbar">
        {filter.since ? (
          <span className="muted">Stored flows since {filter.since} (the live stream is off while a start time is set).</span>
        ) : (
          <>
            <span className={`live ${state.state}`} data-testid="stream-state">
              {state.state === "live" ? "● live" : state.state === "connecting" ? "connecting…" : `reconnecting: ${state.detail ?? ""}`}
            </span>
            {paused ? (
              <button type="button" onClick={resume} data-testid="resume">
                Resume ({heldCount} new)
              </button>
            ) : (
              <button type="button" onClick={() => setPaused(true)} data-testid="pause">
                Pause
              </button>
            )}
          </>
        )}
        <span className="muted" data-testid="flow-count" data-received={received} data-lost={lost.total}>
          {rows.length} flow(s) shown, {received} streamed
        </span>
      </div>
      {stored.state === "error" && <ErrorBox error={stored.error} retry={stored.reload} />}
      {stored.state === "loading" && rows.length === 0 && <Loading what="flows" />}
      {stored.state === "ready" && rows.length === 0 && <div className="state empty">No flow matches these filters yet. New ones appear here as they happen.</div>}
      <div className="flows-body">
        <div className="table-scroll" ref={parent} tabIndex={0} aria-label="Flows, newest first">
          <div className="row head" role="row">
            <span>time</span>
            <span>source</span>
            <span>destination</span>
            <span>port</span>
            <span>verdict</span>
            <span>reason · rule</span>
            <span>bytes · pkts</span>
          </div>
          <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
            {virtual.getVirtualItems().map((v) => {
              const f = rows[v.index];
              if (!f) return null;
              return (
                <button
                  type="button"
                  key={`${f.id}-${v.index}`}
                  className={`row ${f.verdict}`}
                  style={{ position: "absolute", top: 0, transform: `translateY(${v.start}px)`, width: "100%" }}
                  onClick={() => setSelected(f)}
                  data-testid="flow-row"
                >
                  <span>{time(f.time_ns)}</span>
                  <span>{peer(f.source)}</span>
                  <span>{peer(f.destination)}</span>
                  <span>
                    {f.dst_port}/{f.protocol}
                  </span>
                  <span className={`verdict ${f.verdict}`}>{f.verdict}</span>
                  <span>
                    {f.drop_reason && f.drop_reason !== "none" ? f.drop_reason : ""} {f.rule ?? ""}
                  </span>
                  <span>
                    {bytes(f.bytes)} · {f.packets}
                  </span>
                </button>
              );
            })}
          </div>
        </div>
        {selected && <FlowPanel flow={selected} onClose={() => setSelected(null)} />}
      </div>
    </div>
  );
}

function FilterForm({ filter, problems: bad }: { filter: FlowFilter; problems: Partial<Record<string, string>> }) {
  const [draft, setDraft] = useState<FlowFilter>(filter);
  useEffect(() => setDraft(filter), [filter]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    replace("flows", draft as Record<string, string>);
  };
  const field = (k: (typeof FILTER_KEYS)[number], label: string, hint: string) => (
    <label key={k}>
      {label}
      <input
        name={k}
        value={draft[k] ?? ""}
        placeholder={hint}
        onChange={(e) => setDraft({ ...draft, [k]: e.target.value })}
        aria-invalid={bad[k] ? true : undefined}
        data-testid={`filter-${k}`}
      />
      {bad[k] && <span className="field-error">{bad[k]}</span>}
    </label>
  );
  return (
    <form className="filters" onSubmit={submit} aria-label="Flow filters">
      {field("namespace", "Namespace", "any")}
      {field("pod", "Pod", "ns/pod")}
      {field("workload", "Workload", "ns/name")}
      <label>
        Side
        <select value={draft.side ?? ""} onChange={(e) => setDraft({ ...draft, side: e.target.value || undefined })}>
          <option value="">either</option>
          <option value="source">source</option>
          <option value="destination">destination</option>
        </select>
      </label>
      <label>
        Verdict
        <select value={draft.verdict ?? ""} onChange={(e) => setDraft({ ...draft, verdict: e.target.value || undefined })} data-testid="filter-verdict">
          <option value="">any</option>
          <option value="forwarded">forwarded</option>
          <option value="dropped">dropped</option>
          <option value="audit">audit would-drop</option>
        </select>
      </label>
      {field("port", "Port", "any")}
      {field("protocol", "Protocol", "TCP")}
      {field("rule", "Rule", "any")}
      {field("since", "Since", "live")}
      <button type="submit" data-testid="filter-apply">
        Apply
      </button>
      <button type="button" className="ghost" onClick={() => replace("flows", {})}>
        Clear
      </button>
    </form>
  );
}

function FlowPanel({ flow, onClose }: { flow: Flow; onClose: () => void }) {
  const end = (label: string, p: Flow["source"], port: number) => (
    <div>
      <h3>{label}</h3>
      <p>
        {p.kind}: {peer(p)}
        <br />
        <span className="muted">
          address {p.ip ?? "—"}:{port}
          {p.workload_kind ? ` · ${p.workload_kind} ${p.name}` : ""}
        </span>
      </p>
      {p.kind === "workload" && p.pod && p.namespace && <QuarantineButton target={{ kind: "pod", name: `${p.namespace}/${p.pod}` }} />}
    </div>
  );
  return (
    <Panel title={`Flow #${flow.id}`} onClose={onClose} testid="flow-panel">
      <p>
        {time(flow.time_ns)} on {flow.node} (seen at the {flow.observation} side) ·{" "}
        <strong className={`verdict ${flow.verdict}`}>{flow.verdict}</strong>
        {flow.drop_reason && flow.drop_reason !== "none" ? ` (${flow.drop_reason})` : ""}
        <br />
        rule: {flow.rule ?? "—"} · {flow.protocol} · {bytes(flow.bytes)} in {flow.packets} packets
        {flow.service ? ` · via ${flow.service.namespace}/${flow.service.name}:${flow.service.port}` : ""}
      </p>
      {end("Source", flow.source, flow.src_port)}
      {flow.source.ip && <BlockButton address={flow.source.ip} />}
      {end("Destination", flow.destination, flow.dst_port)}
    </Panel>
  );
}
