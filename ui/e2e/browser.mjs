// Debian's Chromium driven by playwright-core (its own browser download is
// not possible here), with every console error and failed request recorded:
// a scenario that logs one fails.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
  });
}

/** A page at 1280×800 that records console errors, page errors and failed requests. */
export async function page(browser, { dark = false } = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    ignoreHTTPSErrors: true,
    colorScheme: dark ? "dark" : "light",
  });
  const p = await context.newPage();
  const errors = [];
  // Statuses a scenario provokes on purpose (a refused token, a refused role):
  // Chromium logs each as a console error, which is then not a defect.
  const expected = new Set();
  p.on("console", (m) => {
    if (m.type() !== "error") return;
    const status = /status of (\d{3})/.exec(m.text());
    if (status && expected.has(Number(status[1]))) return;
    errors.push(`console: ${m.text()}`);
  });
  p.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  p.on("requestfailed", (r) => {
    // A request the page cancels on purpose (leaving a view aborts its
    // loads and its stream) is not a failure.
    if (r.failure()?.errorText !== "net::ERR_ABORTED") errors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`);
  });
  return { page: p, context, errors, expect: (status) => expected.add(status) };
}

export async function login(p, url, token) {
  await p.goto(url);
  await p.getByLabel("Token").fill(token);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.getByTestId("who").waitFor();
}

/** The names in the map's node list (the buttons, not the namespace headings). */
export function mapNodeNames(p) {
  return p.locator(".map-list ul.nodes li [data-node]").allInnerTexts();
}

export function shotsDir() {
  const d = process.env.SCREENSHOTS ?? join(import.meta.dirname, "screenshots");
  mkdirSync(d, { recursive: true });
  return d;
}
