// The WebGL drawing of the map (Sigma.js on a graphology graph). It redraws
// from `shaped` and reports clicks; everything else is the view's.
import { useEffect, useRef, useState } from "react";
import Graph from "graphology";
import Sigma from "sigma";
import type { NodeHoverDrawingFunction } from "sigma/rendering";
import type { MapEdge, MapNode, Shaped } from "./shape";
import { layout } from "./shape";

export interface Highlight {
  /** Nodes to emphasise (a blast radius, search matches); others fade. */
  nodes: ReadonlySet<string> | null;
  selectedNode: string | null;
  selectedEdge: string | null;
}

interface Props {
  shaped: Shaped;
  highlight: Highlight;
  onNode: (id: string) => void;
  onEdge: (id: string) => void;
  onStage: () => void;
  /** Called after each full redraw with how long it took, for the benchmark. */
  onRendered?: (ms: number) => void;
}

/** Nodes that only write a namespace's name above its group. */
const LABEL = "label:";

/** The theme's map colours, read once per drawing (a style lookup per edge costs seconds at 50 000). */
function palette() {
  const style = getComputedStyle(document.documentElement);
  const css = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    cut: css("--cut", "#c026d3"),
    allowed: css("--allowed", "#3b82f6"),
    dropped: css("--dropped", "#dc2626"),
    audit: css("--audit", "#d97706"),
    forwarded: css("--forwarded", "#64748b"),
    quarantined: css("--quarantined", "#111827"),
    group: css("--group", "#0e7490"),
    world: css("--world", "#9333ea"),
    host: css("--host", "#78716c"),
    node: css("--node", "#2563eb"),
    dim: css("--dim", "#cbd5e1"),
    fg: css("--fg", "#0f172a"),
    panel: css("--panel", "#ffffff"),
  };
}
type Palette = ReturnType<typeof palette>;

function edgeColor(c: Palette, e: MapEdge): string {
  if (e.cut) return c.cut;
  if (e.unused) return c.allowed;
  if (e.verdict === "dropped") return c.dropped;
  if (e.verdict === "audit") return c.audit;
  return c.forwarded;
}

function nodeColor(c: Palette, n: MapNode): string {
  if (n.quarantined) return c.quarantined;
  if (n.kind === "group" || n.kind === "namespace") return c.group;
  if (n.kind === "world") return c.world;
  if (n.kind === "host") return c.host;
  return c.node;
}

/** A graphology graph of `shaped`, laid out, with the namespaces' names as label-only nodes. */
function build(shaped: Shaped, big: boolean, colors: Palette): Graph {
  const g = new Graph({ type: "directed", multi: false, allowSelfLoops: false });
  const { positions: pos, labels } = layout(shaped.nodes);
  const ids = new Set(shaped.nodes.map((n) => n.id));
  for (const l of labels) {
    if (!l.group || ids.has(`group:${l.group}`)) continue;
    g.addNode(`${LABEL}${l.group}`, { x: l.x, y: l.y, size: 0.01, label: l.group, color: "rgba(0,0,0,0)", forceLabel: true });
  }
  for (const n of shaped.nodes) {
    const p = pos.get(n.id) ?? { x: 0, y: 0 };
    const size = n.kind === "group" ? 7 + Math.min(14, Math.sqrt(n.members) * 2) : big ? 3 : 6;
    g.addNode(n.id, {
      x: p.x,
      y: p.y,
      size,
      label: n.quarantined ? `${n.label} [quarantined]` : n.label,
      color: nodeColor(colors, n),
      group: n.group,
    });
  }
  for (const e of shaped.edges) {
    if (!g.hasNode(e.source) || !g.hasNode(e.target)) continue;
    const size = e.unused ? 0.8 : Math.min(6, 0.8 + Math.log10(1 + e.connections));
    g.addDirectedEdgeWithKey(e.id, e.source, e.target, {
      size: e.fresh || e.cut ? size + 1.5 : size,
      color: edgeColor(colors, e),
      // Arrow heads cost a second draw per edge; past a few thousand edges
      // they are unreadable anyway.
      type: big ? "line" : "arrow",
    });
  }
  return g;
}

/** Sigma's hover box for a node (selected, matched, under the pointer), in the theme's colours: its own is white in either theme. */
function hoverDrawer(colors: { current: Palette }): NodeHoverDrawingFunction {
  return (ctx, data, settings) => {
    const { fg, panel } = colors.current;
    const size = settings.labelSize;
    ctx.font = `${settings.labelWeight} ${size}px ${settings.labelFont}`;
    ctx.fillStyle = panel;
    ctx.shadowBlur = 8;
    ctx.shadowColor = "rgba(0, 0, 0, 0.5)";
    ctx.beginPath();
    ctx.arc(data.x, data.y, data.size + 2, 0, Math.PI * 2);
    ctx.fill();
    if (data.label) {
      const width = ctx.measureText(data.label).width;
      ctx.fillRect(data.x + data.size + 1, data.y - size / 2 - 4, width + 10, size + 8);
    }
    ctx.shadowBlur = 0;
    if (data.label) {
      ctx.fillStyle = fg;
      ctx.fillText(data.label, data.x + data.size + 6, data.y + size / 3);
    }
  };
}

/** Changes whenever the page's colours may have: the theme switch or the system's scheme. */
function useThemeTick(): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const bump = () => setTick((t) => t + 1);
    const media = window.matchMedia("(prefers-color-scheme: dark)");
    media.addEventListener("change", bump);
    const observer = new MutationObserver(bump);
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    return () => {
      media.removeEventListener("change", bump);
      observer.disconnect();
    };
  }, []);
  return tick;
}

export function MapCanvas({ shaped, highlight, onNode, onEdge, onStage, onRendered }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const sigma = useRef<Sigma | null>(null);
  const handlers = useRef({ onNode, onEdge, onStage });
  handlers.current = { onNode, onEdge, onStage };
  const hl = useRef(highlight);
  hl.current = highlight;
  const theme = useThemeTick();
  const colors = useRef<Palette>(palette());
  // The shape last drawn, and whether this commit just drew one (then the
  // highlight effect has nothing left to refresh).
  const drawn = useRef<Shaped | null>(null);
  const fresh = useRef(false);

  // One renderer for the canvas's life. A new shape swaps its graph: losing a
  // WebGL context that holds tens of thousands of edges takes seconds on
  // software GL, and filtering must not.
  useEffect(() => {
    const container = box.current;
    if (!container) return;
    const { fg } = colors.current;
    const renderer: Sigma = new Sigma(new Graph({ type: "directed" }), container, {
      renderEdgeLabels: false,
      enableEdgeEvents: true,
      defaultEdgeType: "arrow",
      labelColor: { color: fg },
      defaultDrawNodeHover: hoverDrawer(colors),
      labelFont: "system-ui, sans-serif",
      zIndex: true,
      stagePadding: 60,
      nodeReducer: (id, data) => {
        const h = hl.current;
        const out = { ...data };
        if (id.startsWith(LABEL)) return out;
        if (h.selectedNode === id) {
          out.highlighted = true;
          out.zIndex = 2;
        } else if (h.nodes && !h.nodes.has(id)) {
          out.color = colors.current.dim;
          out.label = "";
          out.zIndex = 0;
        } else if (h.nodes) {
          out.highlighted = true;
          out.zIndex = 1;
        }
        return out;
      },
      edgeReducer: (id, data) => {
        const h = hl.current;
        const out = { ...data };
        if (h.selectedEdge === id) out.size = (data.size ?? 1) + 2;
        else if (h.nodes) {
          const g = renderer.getGraph();
          if (!h.nodes.has(g.source(id)) || !h.nodes.has(g.target(id))) out.color = colors.current.dim;
        }
        return out;
      },
    });
    renderer.on("clickNode", ({ node }) => {
      if (!node.startsWith(LABEL)) handlers.current.onNode(node);
    });
    renderer.on("clickEdge", ({ edge }) => handlers.current.onEdge(edge));
    renderer.on("clickStage", () => handlers.current.onStage());
    renderer.on("enterNode", () => container.classList.add("pointer"));
    renderer.on("leaveNode", () => container.classList.remove("pointer"));
    renderer.on("enterEdge", () => container.classList.add("pointer"));
    renderer.on("leaveEdge", () => container.classList.remove("pointer"));
    sigma.current = renderer;
    return () => {
      renderer.kill();
      sigma.current = null;
    };
  }, []);

  useEffect(() => {
    const container = box.current;
    const renderer = sigma.current;
    if (!container || !renderer) return;
    const started = performance.now();
    const big = shaped.nodes.length > 400;
    colors.current = palette();
    const g = build(shaped, big, colors.current);
    const settings = { labelRenderedSizeThreshold: big ? 9 : 0, labelColor: { color: colors.current.fg } };
    const changed =
      renderer.getSetting("labelRenderedSizeThreshold") !== settings.labelRenderedSizeThreshold ||
      renderer.getSetting("labelColor").color !== settings.labelColor.color;
    // Each settings change re-indexes the graph in place: do it on an empty
    // one, not on the tens of thousands of edges being replaced.
    if (changed) {
      renderer.setGraph(new Graph({ type: "directed" }));
      renderer.setSettings(settings);
    }
    // A new shape is fitted (a filter changes its extent); a recolouring keeps the view.
    if (drawn.current !== shaped) renderer.getCamera().setState({ x: 0.5, y: 0.5, ratio: 1, angle: 0 });
    drawn.current = shaped;
    renderer.setGraph(g);
    fresh.current = true;
    queueMicrotask(() => (fresh.current = false));
    container.dataset.nodes = String(g.order);
    container.dataset.edges = String(g.size);
    // Sigma draws on the next frame; report once it has.
    let frame = requestAnimationFrame(() => {
      frame = 0;
      container.dataset.rendered = String(Date.now());
      onRendered?.(performance.now() - started);
    });
    return () => {
      if (frame) cancelAnimationFrame(frame);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shaped, theme]);

  useEffect(() => {
    if (!fresh.current) sigma.current?.refresh({ skipIndexation: true });
  }, [highlight]);

  return <div ref={box} className="canvas" data-testid="map-canvas" aria-label="Service map (use the list beside it from the keyboard)" role="img" />;
}
