// Screenshots of the console on the demo app (Online Boutique), taken by
// `make demo` once the app is enforced: the map, a suggestion under review
// and the flows. Fails loudly when a view does not show the app, or logs a
// console error. Env: BULKHEAD_URL, ADMIN_TOKEN, SCREENSHOTS.
import { join } from "node:path";
import { launch, login, mapNodeNames, page, shotsDir } from "./browser.mjs";

const URL = process.env.BULKHEAD_URL;
const TOKEN = process.env.ADMIN_TOKEN;
if (!URL || !TOKEN) {
  console.error("demo-shots: set BULKHEAD_URL and ADMIN_TOKEN");
  process.exit(2);
}
const SHOTS = shotsDir();
const browser = await launch();
const { page: p, errors } = await page(browser);
try {
  await login(p, URL, TOKEN);
  await p.goto(`${URL}/#/map`);
  const canvas = p.getByTestId("map-canvas");
  await p.waitForFunction(() => Number(document.querySelector('[data-testid="map-canvas"]')?.dataset.edges) >= 10, null, { timeout: 30_000 });
  const names = await mapNodeNames(p);
  for (const w of ["frontend", "cartservice", "redis-cart"]) if (!names.includes(w)) throw new Error(`${w} is not on the map: ${names}`);
  await canvas.waitFor();
  await p.screenshot({ path: join(SHOTS, "demo-map.png") });

  await p.goto(`${URL}/#/review?namespace=boutique`);
  await p.getByTestId("suggestion-boutique-frontend").first().click();
  await p.getByTestId("suggestion-detail").waitFor();
  await p.getByTestId("what-if").waitFor();
  await p.screenshot({ path: join(SHOTS, "demo-review.png") });

  await p.goto(`${URL}/#/flows?namespace=boutique`);
  await p.getByTestId("flow-row").first().waitFor({ timeout: 30_000 });
  await p.screenshot({ path: join(SHOTS, "demo-flows.png") });
  if (errors.length) throw new Error(`console errors:\n  ${errors.join("\n  ")}`);
  console.log(`demo-shots: demo-map.png, demo-review.png, demo-flows.png in ${SHOTS}`);
} catch (e) {
  await p.screenshot({ path: join(SHOTS, "demo-failed.png"), fullPage: true }).catch(() => {});
  console.error(`demo-shots: ${e.message} (screenshot ${join(SHOTS, "demo-failed.png")})`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
