// The console's benchmark in headless Chromium (WebGL on SwiftShader: no
// GPU here, so render times are pessimistic). For each size it starts the
// `console_bench` example (a controller on a synthetic store, the real API,
// the built console) and measures, in one run:
//   - the map's first complete render (navigation → every node drawn);
//   - applying a namespace filter (URL change → redrawn);
// both at 500 workloads / 5 000 edges and 5 000 / 50 000 side by side, each
// as "submitted" (the page's work done, the frame handed to the GPU) and
// "drawn" (the GPU finished it: here the software rasteriser), and
//   - the flow view (no filter) receiving 1 000 flows/s for 60 s: flows
//     received vs sent, lost events, and the longest frame.
// JSON on stdout. `node bench/console.mjs EXAMPLE_BINARY [ROUNDS] [STREAM_SECONDS]`
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { launch, login, page } from "../e2e/browser.mjs";

const [bin, roundsArg = "3", streamArg = "60"] = process.argv.slice(2);
if (!bin) {
  console.error("usage: node bench/console.mjs target/release/examples/console_bench [ROUNDS] [STREAM_SECONDS]");
  process.exit(2);
}
const ROUNDS = Number(roundsArg);
const STREAM_SECONDS = Number(streamArg);
const SIZES = [
  [500, 5000],
  [5000, 50000],
];

function start(workloads, edges) {
  const child = spawn(bin, [String(workloads), String(edges)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  const queue = [];
  const waiting = [];
  lines.on("line", (l) => (waiting.length ? waiting.shift()(l) : queue.push(l)));
  const next = () => new Promise((res) => (queue.length ? res(queue.shift()) : waiting.push(res)));
  return { child, next, send: (l) => child.stdin.write(`${l}\n`) };
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

// The time the map's pixels are really there: reading a pixel back from
// every WebGL canvas waits for the GPU (here SwiftShader) to finish what was
// queued, which a frame callback alone does not.
const drawn = () => {
  for (const c of document.querySelectorAll('[data-testid="map-canvas"] canvas')) {
    const gl = c.getContext("webgl2") ?? c.getContext("webgl");
    gl?.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
  }
  return Date.now();
};

// When the frame was handed to the GPU (the canvas's frame callback), and
// when it was drawn.
async function rendered(p, predicate, arg) {
  await p.waitForFunction(predicate, arg, { timeout: 120_000, polling: 20 });
  const done = await p.evaluate(drawn);
  const submitted = await p.evaluate(() => Number(document.querySelector('[data-testid="map-canvas"]').dataset.rendered));
  return { submitted, done };
}

const summary = (v) => ({ median: median(v), all: v });

async function measureMap(p, url, workloads) {
  const first = { submitted: [], drawn: [] };
  const filter = { submitted: [], drawn: [] };
  for (let i = 0; i < ROUNDS; i++) {
    await p.goto(`${url}/#/status`);
    await p.getByTestId("generation").waitFor();
    const t0 = Date.now();
    await p.evaluate(() => (window.location.hash = "#/map"));
    const at = await rendered(
      p,
      (n) => {
        const c = document.querySelector('[data-testid="map-canvas"]');
        return c && Number(c.dataset.nodes) >= n && c.dataset.rendered;
      },
      workloads,
    );
    first.submitted.push(at.submitted - t0);
    first.drawn.push(at.done - t0);
    const t1 = Date.now();
    await p.evaluate(() => {
      history.replaceState(null, "", "#/map?namespace=ns1");
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    });
    const after = await rendered(
      p,
      (prev) => {
        const c = document.querySelector('[data-testid="map-canvas"]');
        return c && Number(c.dataset.rendered) > prev;
      },
      at.submitted,
    );
    filter.submitted.push(after.submitted - t1);
    filter.drawn.push(after.done - t1);
  }
  return {
    first_render_ms: { drawn: summary(first.drawn), submitted: summary(first.submitted) },
    namespace_filter_ms: { drawn: summary(filter.drawn), submitted: summary(filter.submitted) },
  };
}

async function measureStream(p, url, ctl, rate, seconds) {
  await p.goto(`${url}/#/flows`);
  await p.getByTestId("stream-state").getByText("live").waitFor();
  await p.evaluate(() => {
    window.__frames = { longest: 0, over100: 0, count: 0 };
    let last = performance.now();
    const loop = (t) => {
      const d = t - last;
      last = t;
      const f = window.__frames;
      f.count++;
      if (d > f.longest) f.longest = d;
      if (d > 100) f.over100++;
      if (!f.stop) requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  });
  const base = await p.getByTestId("flow-count").getAttribute("data-received");
  ctl.send(`stream ${rate} ${seconds}`);
  const done = JSON.parse(await ctl.next());
  await p.waitForTimeout(3000);
  const frames = await p.evaluate(() => {
    window.__frames.stop = true;
    return window.__frames;
  });
  const received = Number(await p.getByTestId("flow-count").getAttribute("data-received")) - Number(base);
  const lost = Number(await p.getByTestId("flow-count").getAttribute("data-lost"));
  return { rate, seconds, sent: done.streamed, received, lost, frames };
}

const browser = await launch();
const results = { browser: "Debian chromium, headless, SwiftShader WebGL", rounds: ROUNDS, sizes: [] };
for (const [workloads, edges] of SIZES) {
  const ctl = start(workloads, edges);
  const hello = JSON.parse(await ctl.next());
  const { page: p, context, errors } = await page(browser);
  try {
    await login(p, hello.url, hello.token);
    const map = await measureMap(p, hello.url, workloads);
    const entry = { workloads, edges, namespaces: hello.namespaces, ...map };
    if (workloads === 5000 && STREAM_SECONDS > 0) entry.stream = await measureStream(p, hello.url, ctl, 1000, STREAM_SECONDS);
    entry.console_errors = errors;
    results.sizes.push(entry);
  } catch (e) {
    await p.screenshot({ path: "bench-failure.png" }).catch(() => {});
    console.error(`console bench: ${workloads} workloads: ${e.message} (screenshot bench-failure.png; console errors: ${errors.join("; ")})`);
    throw e;
  } finally {
    await context.close();
    ctl.child.stdin.end();
    ctl.child.kill("SIGTERM");
  }
}
await browser.close();
const [small, big] = results.sizes;
results.ratio_first_render_5000_to_500 = big.first_render_ms.drawn.median / small.first_render_ms.drawn.median;
results.ratio_filter_5000_to_500 = big.namespace_filter_ms.drawn.median / small.namespace_filter_ms.drawn.median;
console.log(JSON.stringify(results, null, 2));
