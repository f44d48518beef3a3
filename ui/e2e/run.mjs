// The console's end-to-end scenarios, in Debian's Chromium, against a real
// lab running a real app (started by `tests/e2e/console.rs`, which passes
// what it made through the environment). Each scenario fails on a console
// error too; a failing one leaves a screenshot named after it.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { launch, login, mapNodeNames, page, shotsDir } from "./browser.mjs";

const need = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`e2e: ${k} is not set (run through \`cargo test --test e2e console\`)`);
    process.exit(2);
  }
  return v;
};
const URL = need("BULKHEAD_URL");
const ADMIN = need("ADMIN_TOKEN");
const VIEWER = need("VIEWER_TOKEN");
const TENANT = need("TENANT_TOKEN");
const BIN = need("BULKHEAD_BIN");
const LAB = need("LAB");
const SHOTS = shotsDir();

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

/** A lab probe (a real TCP connection between two pods): true when it connects. */
function probe(from, to) {
  const r = spawnSync(BIN, ["lab", "probe", "--name", LAB, "-o", "json", from, to], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`lab probe ${from} ${to} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n")[0]).connected === true;
}

async function eventually(what, f, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await f()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

const scenarios = {
  async "log in"(p, { expect }) {
    expect(401);
    await p.goto(URL);
    await p.getByLabel("Token").fill("not-a-token");
    await p.getByRole("button", { name: "Sign in" }).click();
    await p.getByText("This token was refused").waitFor();
    await p.getByLabel("Token").fill(ADMIN);
    await p.getByRole("button", { name: "Sign in" }).click();
    await p.getByTestId("who").waitFor();
    assert((await p.getByTestId("who").innerText()).includes("admin"), "the header shows the admin role");
  },

  async "the map shows the app's workloads and edges"(p) {
    await login(p, URL, ADMIN);
    await p.goto(`${URL}/#/map`);
    const canvas = p.getByTestId("map-canvas");
    await canvas.waitFor();
    await eventually("the app on the map", async () => Number(await canvas.getAttribute("data-edges")) >= 3);
    const names = await mapNodeNames(p);
    for (const w of ["web", "api", "ledger", "vault"]) assert(names.includes(w), `${w} is on the map (${names})`);
    await p.screenshot({ path: join(SHOTS, "console-map.png") });
    // The automatic theme follows the system's: readable in dark too.
    const lightDrawn = await canvas.getAttribute("data-rendered");
    await p.emulateMedia({ colorScheme: "dark" });
    await eventually("the map redrawn in the dark theme", async () => (await canvas.getAttribute("data-rendered")) !== lightDrawn);
    const background = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [r, g, b] = background.match(/\d+/g).map(Number);
    assert(r + g + b < 150, `the dark theme has a dark background (${background})`);
    await p.screenshot({ path: join(SHOTS, "console-map-dark.png") });
    await p.emulateMedia({ colorScheme: "light" });
    // Deep link with a namespace filter: bank and its peers only.
    await p.goto(`${URL}/#/map?namespace=bank`);
    const listed = (ns, name) => p.locator(`.map-list ul.nodes [data-node^="workload:${ns}/"][data-node$="/${name}"]`).count();
    await eventually("the bank filter", async () => (await listed("bank", "vault")) === 1 && (await listed("shop", "web")) === 1);
    assert((await listed("shop", "spare")) === 0, "shop's unconnected pod is filtered out");
    // Allowed vs observed: with no policy, allowed-but-unused paths exist.
    await p.getByTestId("map-allowed").check();
    await eventually("the allowed overlay", async () => Number(await p.getByTestId("map-unused").innerText()) > 0);
    assert(p.url().includes("allowed=1"), "the overlay is in the URL");
    // A node's panel, from the keyboard-reachable list.
    await p.locator(".map-list ul.nodes").getByRole("button", { name: "ledger", exact: true }).click();
    await p.getByTestId("node-panel").getByTestId("pod-ledger-0").waitFor();
  },

  async "filter the flows"(p) {
    await login(p, URL, ADMIN);
    await p.goto(`${URL}/#/flows?namespace=shop&verdict=forwarded`);
    await p.getByTestId("stream-state").getByText("live").waitFor();
    await eventually("shop's flows", async () => (await p.getByTestId("flow-row").count()) > 0);
    const rows = await p.getByTestId("flow-row").allInnerTexts();
    assert(rows.every((r) => r.includes("shop/") && r.includes("forwarded")), `every row is shop's and forwarded: ${rows.slice(0, 3)}`);
    await p.getByTestId("lost-banner").waitFor();
    // The form writes the URL; a bad port is refused before anything is sent.
    await p.getByTestId("filter-port").fill("99999");
    await p.getByTestId("filter-apply").click();
    await p.getByText("a port is a number from 1 to 65535").waitFor();
    await p.getByTestId("filter-port").fill("8080");
    await p.getByTestId("filter-apply").click();
    await eventually("the port filter in the URL", async () => p.url().includes("port=8080"));
    await eventually("flows to 8080", async () => {
      const r = await p.getByTestId("flow-row").allInnerTexts();
      return r.length > 0 && r.every((x) => x.includes("8080/TCP"));
    });
    await p.getByTestId("pause").click();
    await p.getByTestId("resume").click();
    await p.screenshot({ path: join(SHOTS, "console-flows.png") });
  },

  async "review a suggestion: diff, what-if, approve, audit, enforce"(p) {
    await login(p, URL, ADMIN);
    await p.goto(`${URL}/#/review`);
    await p.getByTestId("generate").click();
    await p.getByTestId("suggestion-shop-web").click();
    const detail = p.getByTestId("suggestion-detail");
    await detail.waitFor();
    await p.locator(".cm-mergeView").waitFor();
    assert((await p.getByTestId("what-if").innerText()).includes("Replayed"), "the what-if is shown");
    await p.getByTestId("review-reason").fill("e2e: matches the design");
    await p.getByTestId("approve").click();
    await eventually("approved", async () => (await p.getByTestId("suggestion-status").innerText()) === "approved");
    await p.getByTestId("apply-audit").click();
    await eventually("in audit", async () => (await p.getByTestId("suggestion-status").innerText()) === "audit");
    await p.getByTestId("would-drop-live").waitFor();
    await p.screenshot({ path: join(SHOTS, "console-review.png") });
    await p.getByTestId("enforce").click();
    await eventually("enforced", async () => (await p.getByTestId("suggestion-status").innerText()) === "enforced");
    // The history says who did what.
    const history = await p.locator(".history").innerText();
    assert(history.includes("approve") && history.includes("enforce"), `history: ${history}`);
    // The edges it would cut, on the map, before anything else is applied.
    await p.getByTestId("show-cut").click();
    await p.getByTestId("map-cut").waitFor();
  },

  async "quarantine a pod from the map, a probe is blocked, its trail, release it"(p) {
    await login(p, URL, ADMIN);
    assert(probe("bank/ledger-0", "shop/api:8080"), "ledger reaches api before the quarantine");
    await p.goto(`${URL}/#/map?namespace=shop`);
    await p.locator(".map-list ul.nodes").getByRole("button", { name: "api", exact: true }).click();
    const panel = p.getByTestId("node-panel");
    await panel.getByTestId("pod-api-0").getByTestId("quarantine-button").click();
    const dialog = p.getByTestId("quarantine-dialog");
    await dialog.getByLabel("Reason").fill("e2e: beaconing");
    await dialog.getByTestId("quarantine-confirm").click();
    const result = await dialog.getByTestId("quarantine-result").innerText();
    assert(/enforced in .*(µs|ms)/.test(result), `the time to enforce is shown: ${result}`);
    await dialog.getByRole("button", { name: "Close" }).click();
    assert(!probe("bank/ledger-0", "shop/api:8080"), "the quarantined pod is cut off");
    await eventually("the mark on the map", async () => (await mapNodeNames(p)).some((n) => n.startsWith("api") && n.includes("quarantined")));
    await p.goto(`${URL}/#/quarantine?state=active`);
    const row = p.getByTestId("quarantine-list").locator("tr", { hasText: "shop/api-0" });
    // The pod's access trail, opened from its quarantine: from 30 minutes before it.
    await row.getByTestId("trail-link-shop/api-0").click();
    await p.getByTestId("trail-title").waitFor();
    assert((await p.getByTestId("trail-title").innerText()).startsWith("shop/api-0"), "the quarantined pod's trail");
    const since = new globalThis.URL(p.url().replace("#/", "")).searchParams.get("since");
    assert(/^\d{4}-\d\d-\d\dT/.test(since ?? ""), `the window starts before the quarantine (${since})`);
    const timeline = p.getByTestId("trail-timeline");
    await eventually("the dropped attempt after the quarantine", async () => {
      await p.getByTestId("trail-show").click();
      return (await timeline.innerText()).includes("dropped");
    });
    const events = await timeline.innerText();
    assert(events.includes("quarantine") && events.includes("e2e: beaconing"), `the quarantine is on the timeline: ${events}`);
    assert(events.includes("bank/ledger-0"), `ledger's calls are on it: ${events}`);
    assert((await p.getByTestId("trail-connection").count()) > 0, "its connections are listed");
    const [download] = await Promise.all([p.waitForEvent("download"), p.getByTestId("trail-csv").click()]);
    const csv = await (await download.createReadStream()).toArray();
    const text = Buffer.concat(csv).toString("utf8");
    assert(text.startsWith("hop,via,direction,peer,") && text.includes("pod:bank/ledger-0"), `the CSV export: ${text.slice(0, 200)}`);
    await p.screenshot({ path: join(SHOTS, "console-trail.png"), fullPage: true });
    await p.goto(`${URL}/#/quarantine?state=active`);
    await row.getByRole("button", { name: "Release" }).click();
    await eventually("the release", async () => (await p.getByTestId("quarantine-list").count()) === 0 || !(await row.isVisible()));
    await eventually("traffic restored", async () => probe("bank/ledger-0", "shop/api:8080"), 10_000);
  },

  async "block a flow's source, a probe is dropped, lift it from the block list"(p) {
    await login(p, URL, ADMIN);
    assert(probe("bank/ledger-0", "shop/api:8080"), "ledger reaches api before the block");
    await p.goto(`${URL}/#/flows?pod=bank/ledger-0&side=source`);
    await eventually("a flow from ledger", async () => (await p.getByTestId("flow-row").count()) > 0);
    await p.getByTestId("flow-row").first().click();
    const panel = p.getByTestId("flow-panel");
    await panel.getByTestId("block-button").click();
    const dialog = p.getByTestId("block-dialog");
    const address = await dialog.getByTestId("block-cidr").inputValue();
    assert(/^\d+\.\d+\.\d+\.\d+$/.test(address), `the flow's source address is filled in (${address})`);
    // No reason: refused in the dialog, nothing sent.
    await dialog.getByTestId("block-confirm").click();
    await dialog.getByText("Give a reason").waitFor();
    await dialog.getByTestId("block-span").selectOption("1h");
    await dialog.getByTestId("block-reason").fill("e2e: lateral movement");
    await dialog.getByTestId("block-confirm").click();
    const result = await dialog.getByTestId("block-result").innerText();
    assert(result.includes(`${address}/32`) && result.includes("until"), `the block and its end are shown: ${result}`);
    await dialog.getByRole("button", { name: "Close" }).click();
    await eventually("the probe dropped", async () => !probe("bank/ledger-0", "shop/api:8080"), 15_000);
    await p.goto(`${URL}/#/blocks?state=active`);
    const row = p.getByTestId("block-list").locator("tr", { hasText: `${address}/32` });
    await row.waitFor();
    assert((await row.innerText()).includes("e2e: lateral movement"), "the reason is listed");
    await p.screenshot({ path: join(SHOTS, "console-blocks.png"), fullPage: true });
    await row.getByRole("button", { name: "Lift" }).click();
    await eventually("the lift", async () => (await p.getByTestId("block-list").count()) === 0 || !(await row.isVisible()));
    await eventually("traffic restored", async () => probe("bank/ledger-0", "shop/api:8080"), 15_000);
  },

  async "a tenant token sees only its namespaces"(p) {
    await login(p, URL, TENANT);
    assert((await p.getByTestId("who").innerText()).includes("namespaces shop"), "the header shows the tenant scope");
    await p.goto(`${URL}/#/map`);
    const canvas = p.getByTestId("map-canvas");
    await canvas.waitFor();
    await eventually("shop on the map", async () => (await mapNodeNames(p)).includes("web"));
    const names = await mapNodeNames(p);
    assert(!names.includes("ledger") && !names.includes("vault"), `no bank workload is named: ${names}`);
    await p.goto(`${URL}/#/flows`);
    await eventually("flows", async () => (await p.getByTestId("flow-row").count()) > 0);
    const rows = await p.getByTestId("flow-row").allInnerTexts();
    assert(rows.every((r) => r.includes("shop/")), "every flow has an end in shop");
    assert(rows.every((r) => !r.includes("ledger-0") && !r.includes("vault-0")), "no bank pod is named");
  },

  async "a viewer has no quarantine control and the API refuses it anyway"(p, { expect }) {
    expect(403);
    await login(p, URL, VIEWER);
    await p.goto(`${URL}/#/map?namespace=shop`);
    await p.locator(".map-list ul.nodes").getByRole("button", { name: "api", exact: true }).click();
    await p.getByTestId("node-panel").getByTestId("pod-api-0").waitFor();
    assert((await p.getByTestId("quarantine-button").count()) === 0, "no quarantine button for a viewer");
    await p.goto(`${URL}/#/blocks`);
    await p.getByTestId("blocks-state").waitFor();
    assert((await p.getByTestId("block-new").count()) === 0, "no block button for a viewer");
    await p.goto(`${URL}/#/review`);
    assert((await p.getByTestId("generate").count()) === 0, "no generate button for a viewer");
    const status = await p.evaluate(async (token) => {
      const r = await fetch("/api/v1/quarantines", {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ pod: "shop/api-0", reason: "a viewer tries" }),
      });
      return r.status;
    }, VIEWER);
    assert(status === 403, `the API refuses a viewer's quarantine (got ${status})`);
  },

  async "exposure: classes, reach and a database finding; a tenant sees its own ports"(p) {
    await login(p, URL, ADMIN);
    await p.goto(`${URL}/#/exposure`);
    await p.getByTestId("exposure-table").waitFor();
    const vault = p.getByTestId("exposure-row").filter({ hasText: "bank/svc/vault:5432/TCP" });
    // Its agent reads the pod's sockets within seconds of attaching; the view shows what it found.
    await eventually("vault's sockets read", async () => {
      await p.reload();
      await vault.waitFor();
      return (await vault.getByTestId("exposure-listening").innerText()) === "open (1 pod)";
    });
    const row = await vault.innerText();
    assert(row.includes("cluster-internal") && row.includes("every namespace"), `vault's row: ${row}`);
    assert(row.includes("database exposed"), `vault's postgres port is reachable from every namespace: ${row}`);
    await vault.getByRole("button", { name: "bank/svc/vault:5432/TCP" }).click();
    const detail = await p.getByTestId("exposure-detail").innerText();
    assert(detail.includes("Served by vault") && detail.includes("every namespace"), `the detail: ${detail}`);
    assert(/Sockets read .*: 1 of 1 pod\(s\) listen/.test(detail), `the detail says who listens: ${detail}`);
    await p.screenshot({ path: join(SHOTS, "console-exposure.png"), fullPage: true });
    await p.goto(`${URL}/#/exposure?finding=database_exposed`);
    await p.getByTestId("exposure-summary").waitFor();
    await eventually("only ports with the finding", async () => {
      const rows = await p.getByTestId("exposure-row").allInnerTexts();
      return rows.length > 0 && rows.every((r) => r.includes("database exposed"));
    });
    await p.getByRole("button", { name: "Sign out" }).click();
    await login(p, URL, TENANT);
    await p.goto(`${URL}/#/exposure`);
    await p.getByTestId("exposure-table").waitFor();
    const mine = await p.getByTestId("exposure-row").allInnerTexts();
    assert(mine.length > 0 && mine.every((r) => r.startsWith("shop/")), `the tenant of shop sees only shop's ports: ${mine.join(" | ")}`);
  },

  async "map: exposure badges, and what can reach a workload"(p) {
    await login(p, URL, ADMIN);
    await p.goto(`${URL}/#/map?namespace=bank`);
    const vault = p.locator('.map-list ul.nodes li').filter({ has: p.locator('[data-node$="/vault"]') });
    await vault.waitFor();
    await eventually("vault's finding badge", async () => (await vault.getByTestId("badge-findings").count()) === 1);
    await vault.locator("[data-node]").click();
    await p.getByTestId("reach-button").click();
    const notice = p.getByTestId("map-reach");
    await notice.waitFor();
    const text = await notice.innerText();
    // no policy yet: every workload of the app can connect to vault's port
    assert(/What can reach bank\/vault: [1-9]\d* workload\(s\) under the policies in force/.test(text), `the reach notice: ${text}`);
    assert(/[?&]reach=[^&]*vault/.test(decodeURIComponent(p.url())), `the reach is in the URL: ${p.url()}`);
    await p.screenshot({ path: join(SHOTS, "console-map-reach.png") });
    await notice.getByRole("button", { name: "Clear" }).click();
    await notice.waitFor({ state: "detached" });
  },

  async "every other view loads: policies and explain, status, audit"(p) {
    await login(p, URL, ADMIN);
    await p.goto(`${URL}/#/policies`);
    await p.getByTestId("explain-from").fill("shop/web-0");
    await p.getByTestId("explain-to").fill("shop/api-0");
    await p.getByTestId("explain-port").fill("8080");
    await p.getByTestId("explain-submit").click();
    assert((await p.getByTestId("explain-answer").innerText()).includes("Allowed"), "web may reach api");
    await p.goto(`${URL}/#/status`);
    await p.getByTestId("generation").waitFor();
    await p.goto(`${URL}/#/audit?outcome=refused`);
    await p.getByTestId("audit-list").waitFor();
    const refused = await p.getByTestId("audit-list").innerText();
    assert(refused.includes("lab-viewer") && refused.includes("quarantine"), "the viewer's refused quarantine is audited");
  },
};

const only = process.env.ONLY;
const browser = await launch();
const results = [];
for (const [name, run] of Object.entries(scenarios)) {
  if (only && !name.includes(only)) continue;
  const { page: p, context, errors, expect } = await page(browser);
  const started = Date.now();
  try {
    await run(p, { expect });
    if (errors.length) throw new Error(`console errors:\n  ${errors.join("\n  ")}`);
    results.push({ name, ok: true, ms: Date.now() - started });
  } catch (e) {
    const file = join(SHOTS, `failed-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
    await p.screenshot({ path: file, fullPage: true }).catch(() => {});
    results.push({ name, ok: false, ms: Date.now() - started, error: String(e?.message ?? e), screenshot: file, errors });
  } finally {
    await context.close();
  }
}
await browser.close();
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name} (${r.ms} ms)${r.ok ? "" : `\n     ${r.error}\n     screenshot: ${r.screenshot}`}`);
process.exit(results.every((r) => r.ok) && results.length > 0 ? 0 : 1);
