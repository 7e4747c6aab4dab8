// The dashboard in real headless Chromium, against a running `clickstream
// serve` with an API token and the traffic generator feeding it: the page
// asks for the token and signs in, every chart draws, the headline numbers
// are the API's, the range selector works, sign-out ends the session, and
// the page throws nothing. Saves target/e2e-dashboard.png.
// Run by scripts/test.sh:
//   CLICKSTREAM_BIN=target/debug/clickstream node --test backend/e2e/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { clickstreamBin, launchChromium, root, Serve } from "./serve.mjs";

const bin = clickstreamBin();
const CHARTS = ["traffic", "revenue", "top_pages", "funnel", "sessions_by_source", "sessions_by_country",
  "sessions_by_device", "pages", "sources", "retention", "next_pages", "goals", "custom_events", "links", "engagement",
  "bots", "rejects"];
const METRICS = ["active_visitors", "events_per_minute", "revenue_today", "conversion_rate", "bounce_rate"];
const TOKEN = "dashboard-e2e-token-0123456789";
const auth = { headers: { Authorization: `Bearer ${TOKEN}` } };
// The demo shop's goals, so the goal and custom-event panels have rows.
const shopGoals = readFileSync(join(root, "examples/shop.toml"), "utf8");
const server = new Serve({ bin, config: shopGoals, env: { CLICKSTREAM_API_TOKENS: TOKEN }, label: "dashboard" });
let generator;
let browser;
let base;

async function summary() {
  const r = await fetch(`${base}/api/summary`, auth);
  return r.ok ? r.json() : null;
}

before(async () => {
  await server.start();
  base = server.url;
  generator = spawn(bin, ["generate", "--target", base, "--rate", "150"], {
    stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "warn" } });
  // Until the traffic has reached Gold, with a purchase in it. A first
  // purchase takes a checkout and a form filled in (20 s to 4 min of the
  // generator's time): with the default seed it comes about two minutes in.
  const deadline = Date.now() + 240000;
  for (;;) {
    let s = null;
    try {
      s = await summary();
    } catch {}
    if (s && s.sessions > 0 && s.revenue_today > 0) break;
    assert.ok(Date.now() < deadline, `the traffic did not reach Gold in time: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  browser = await launchChromium(["--headless=new", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]);
});

after(async () => {
  await browser?.close();
  if (generator && generator.exitCode === null) {
    generator.kill("SIGINT");
    await new Promise((r) => generator.once("exit", r));
  }
  await server.remove();
});

// The page's headline numbers, as its data-value attributes hold them.
const shown = (page) =>
  page.evaluate((names) => Object.fromEntries(names.map((n) => {
    const v = document.querySelector(`[data-metric="${n}"]`)?.dataset.value;
    return [n, v === undefined ? undefined : JSON.parse(v)];
  })), METRICS);

// Until the numbers on screen equal the last /api/summary the page received
// (the generator's traffic keeps moving them, so each refresh is compared with
// its own response).
async function headlineMatchesApi(page, answers, range) {
  const deadline = Date.now() + 20000;
  let last;
  for (;;) {
    const answer = answers.filter((a) => a.range === range).at(-1);
    const screen = await shown(page);
    if (answer) {
      last = { screen, answer: Object.fromEntries(METRICS.map((m) => [m, answer[m]])) };
      if (METRICS.every((m) => screen[m] === answer[m] || Math.abs(screen[m] - answer[m]) < 1e-9)) return last;
    }
    assert.ok(Date.now() < deadline, `headline numbers differ from the API: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("the dashboard draws every chart from the API, live, and its numbers are the API's", async () => {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const errors = [];
  const answers = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  page.on("response", async (r) => {
    if (new URL(r.url()).pathname === "/api/summary" && r.ok()) answers.push(await r.json());
  });
  // Signed out, the dashboard asks for a token; a wrong one is refused.
  const asked = await page.goto(`${base}/dashboard`);
  assert.equal(asked.status(), 401);
  await page.fill("#token", "not-the-token-0000");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.match(await page.textContent(".problem"), /not valid/);
  await page.fill("#token", TOKEN);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  const [cookie] = await page.context().cookies();
  assert.equal(cookie?.httpOnly, true);
  assert.equal(cookie?.sameSite, "Strict");
  // The script with the charting library comes from serve itself, gzipped,
  // revalidated by its ETag; without a sign-in it is refused like the API.
  const script = await page.request.get(`${base}/dashboard/app.js`, { headers: { "Accept-Encoding": "gzip" } });
  assert.equal(script.status(), 200);
  assert.equal(script.headers()["content-encoding"], "gzip");
  assert.match(await script.text(), /echarts/i);
  const again = await fetch(`${base}/dashboard/app.js`, { headers: { ...auth.headers, "If-None-Match": script.headers().etag } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${base}/dashboard/app.js`)).status, 401);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30000 });
  for (const chart of CHARTS) {
    await page.waitForSelector(`[data-chart="${chart}"][data-drawn="1"]`, { timeout: 15000 });
  }
  const first = await headlineMatchesApi(page, answers, "1h");
  assert.ok(first.screen.active_visitors > 0 && first.screen.revenue_today > 0, JSON.stringify(first));
  // The charts are ECharts' SVG: the traffic chart has drawn its series,
  // the funnel names its five steps, and hovering the traffic chart opens
  // its tooltip with both series.
  assert.ok(await page.locator('[data-chart="traffic"] svg path').count() > 0);
  const funnelText = (await page.locator('[data-chart="funnel"] svg text').allTextContents()).join("|");
  for (const step of ["Sessions", "Product view", "Add to cart", "Checkout", "Purchase"]) {
    assert.ok(funnelText.includes(step), `${step} in ${funnelText}`);
  }
  const traffic = await page.locator('[data-chart="traffic"] .plot').boundingBox();
  await page.mouse.move(traffic.x + traffic.width * 0.8, traffic.y + traffic.height * 0.4);
  await page.waitForFunction(() => /Events[\s\S]*Active users/.test(document.querySelector('[data-chart="traffic"]').innerText),
    null, { timeout: 10000 });
  await page.mouse.move(0, 0);

  // Entry and exit pages: the first entry page is the API's.
  await page.waitForSelector('[data-chart="pages"] tbody tr', { timeout: 20000 });
  const paths = await (await fetch(`${base}/api/pages?limit=10`, auth)).json();
  const firstEntry = await page.textContent('[data-chart="pages"] table:first-child tbody tr td');
  assert.ok(paths.entry.some((r) => r.page_path === firstEntry), `${firstEntry} vs ${JSON.stringify(paths.entry)}`);

  // Sources and channels: every channel row is one the API lists, with its sessions.
  await page.waitForSelector('[data-chart="sources"] tbody tr', { timeout: 20000 });
  const sources = await (await fetch(`${base}/api/sources?limit=10`, auth)).json();
  const channelRows = await page.locator('[data-chart="sources"] table:first-child tbody tr').evaluateAll((rows) =>
    rows.map((r) => Array.from(r.cells).map((c) => c.textContent)));
  assert.ok(channelRows.length > 0 && sources.channels.length > 0);
  for (const [channel] of channelRows) {
    assert.ok(sources.channels.some((c) => c.channel === channel), `${channel} vs ${JSON.stringify(sources.channels)}`);
  }
  assert.ok(sources.sources.length > 0, JSON.stringify(sources));

  // Retention: the heatmap's cohorts are the API's, each with its size and
  // a shaded cell per period; choosing days asks for daily cohorts.
  await page.waitForSelector('[data-chart="retention"] svg text', { timeout: 20000 });
  const weekly = await (await fetch(`${base}/api/retention?period=week`, auth)).json();
  assert.equal(weekly.period, "week");
  assert.ok(weekly.cohorts.length > 0 && weekly.cohorts[0].size > 0, JSON.stringify(weekly));
  // Row labels are "cohort  ·  people"; week 0 is everyone, 100%.
  const heatText = await page.locator('[data-chart="retention"] svg text').allTextContents();
  const rowLabels = heatText.filter((t) => /^\d{4}-\d{2}-\d{2}\s/.test(t));
  assert.ok(rowLabels.length > 0 && heatText.includes("Week 0"), JSON.stringify(heatText));
  for (const label of rowLabels) {
    const [cohort, people] = label.split("·").map((x) => x.trim());
    assert.ok(weekly.cohorts.some((x) => x.cohort === cohort), `${cohort} vs ${JSON.stringify(weekly.cohorts)}`);
    assert.ok(Number(people.replace(/[^0-9]/g, "")) > 0, label);
  }
  assert.equal(heatText.filter((t) => /^100(\.0)?\s?%$/.test(t)).length >= rowLabels.length, true, JSON.stringify(heatText));
  const [daily] = await Promise.all([
    page.waitForResponse((r) => r.url().includes("/api/retention?") && new URL(r.url()).searchParams.get("period") === "day",
      { timeout: 15000 }),
    page.selectOption("#retention-period", "day"),
  ]);
  assert.equal((await daily.json()).period, "day");
  await page.waitForFunction(() => [...document.querySelectorAll('[data-chart="retention"] svg text')].some((t) => t.textContent === "Day 0"),
    null, { timeout: 15000 });

  // Outbound links and downloads: each row is a link the API lists.
  await page.waitForSelector('[data-chart="links"] tbody tr', { timeout: 60000 });
  const links = await (await fetch(`${base}/api/links?limit=10`, auth)).json();
  const linkRows = await page.locator('[data-chart="links"] tbody tr td:first-child').allTextContents();
  const listed = links.outbound.concat(links.downloads).map((r) => r.url);
  assert.ok(linkRows.length > 0 && linkRows.every((u) => listed.includes(u)), `${linkRows} vs ${listed}`);

  // Engagement: the pages read are the API's, each with its engaged time.
  await page.waitForSelector('[data-chart="engagement"] svg text', { timeout: 60000 });
  const engagement = await (await fetch(`${base}/api/engagement?limit=10`, auth)).json();
  assert.ok(engagement.pages.length > 0 && engagement.engaged_ms_per_session > 0, JSON.stringify(engagement));
  const readText = (await page.locator('[data-chart="engagement"] svg text').allTextContents()).join("|");
  assert.ok(engagement.pages.some((r) => readText.includes(r.page_path)) && /\d+ (s|min)/.test(readText), readText);

  // Next pages: choosing another page shows the API's next pages of it.
  await page.waitForSelector('#next-from option', { state: "attached", timeout: 20000 });
  const options = await page.locator("#next-from option").evaluateAll((os) => os.map((o) => o.value));
  const chosen = options.at(-1);
  // The round the choice starts: its answer is what the card must show.
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().includes("/api/next_pages?") && new URL(r.url()).searchParams.get("page") === chosen,
      { timeout: 15000 }),
    page.selectOption("#next-from", chosen),
  ]);
  const wanted = await answer.json();
  assert.equal(wanted.page, chosen);
  if (wanted.next.length) {
    await page.waitForFunction((v) => document.querySelector('[data-chart="next_pages"]').textContent.includes(v),
      wanted.next[0].next_page, { timeout: 15000 });
  }
  assert.equal(await page.inputValue("#next-from"), chosen);

  // The goals and custom events panels list what the API says.
  await page.waitForSelector('[data-chart="goals"] tbody tr', { timeout: 20000 });
  await page.waitForSelector('[data-chart="custom_events"] tbody tr', { timeout: 20000 });
  const goals = await (await fetch(`${base}/api/goals`, auth)).json();
  const goalNames = await page.locator('[data-chart="goals"] tbody tr td:first-child').allTextContents();
  assert.ok(goalNames.length > 0 && goalNames.every((n) => goals.goals.some((g) => g.goal === n)),
    `${JSON.stringify(goalNames)} vs ${JSON.stringify(goals.goals)}`);
  assert.ok(goalNames.includes("Purchase (thank-you page)"), JSON.stringify(goalNames));
  const customText = await page.textContent('[data-chart="custom_events"]');
  assert.match(customText, /newsletter_signup/);

  // It refreshes by itself within about 5 seconds.
  const before = answers.length;
  await page.waitForFunction((n) => window.performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/summary")).length > n,
    before, { timeout: 12000 });

  // A card's data as CSV: the top pages, as the API lists them.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-csv="top_pages"]')]);
  const csv = readFileSync(await download.path(), "utf8").trim().split(/\r\n/);
  const pages = await (await fetch(`${base}/api/top_pages?limit=10`, auth)).json();
  assert.equal(csv[0], "page_path,views,unique_visitors");
  assert.ok(csv.length > 1 && Math.abs(csv.length - 1 - pages.pages.length) <= 1, `${csv.length - 1} CSV rows, ${pages.pages.length} pages`);
  assert.match(download.suggestedFilename(), /^top_pages-1h\.csv$/);

  // The range selector: presets, then a custom range of today's date.
  for (const [label, range] of [["Last day", "24h"], ["Last 30 days", "30d"], ["Today", "today"], ["Last 7 days", "7d"]]) {
    await page.getByRole("button", { name: label }).click();
    await page.waitForSelector(`body[data-range="${range}"]`, { timeout: 15000 });
    await headlineMatchesApi(page, answers, range);
  }
  assert.match(page.url(), /#range=7d/);
  // The comparison with the period before: the rate's change in points, when both exist.
  const delta = await page.getAttribute('[data-delta="bounce_rate"]', "data-value");
  const last7 = answers.filter((a) => a.range === "7d").at(-1);
  if (last7.bounce_rate !== null && last7.previous.bounce_rate !== null) {
    assert.ok(Math.abs(Number(delta) - (last7.bounce_rate - last7.previous.bounce_rate)) < 1e-9, `${delta} vs ${JSON.stringify(last7)}`);
  } else {
    assert.equal(delta, null, "no delta without a previous rate");
  }
  const today = new Date().toISOString().slice(0, 10);
  await page.fill("#from", today);
  await page.fill("#to", today);
  await page.click('#custom button[type="submit"]');
  await page.waitForSelector('body[data-range="custom"]', { timeout: 15000 });
  const custom = await headlineMatchesApi(page, answers, "custom");
  assert.match(page.url(), new RegExp(`from=${today}&to=${today}`));
  assert.ok(custom.answer.active_visitors > 0);
  // The retention card keeps its period (days) through range changes.
  const [lastHourRetention] = await Promise.all([
    page.waitForResponse((r) => r.url().includes("/api/retention?") && r.url().includes("range=1h"), { timeout: 15000 }),
    page.getByRole("button", { name: "Last hour" }).click(),
  ]);
  assert.equal(new URL(lastHourRetention.url()).searchParams.get("period"), "day");
  assert.equal(await page.inputValue("#retention-period"), "day");
  await page.waitForSelector('body[data-range="1h"]', { timeout: 15000 });
  await headlineMatchesApi(page, answers, "1h");

  await page.screenshot({ path: join(root, "target/e2e-dashboard.png"), fullPage: true });
  const numbers = await page.evaluate(() => [...document.querySelectorAll("[data-metric]")].map((e) => `${e.dataset.metric}=${e.textContent}`).join(", "));
  console.log(`dashboard e2e: ${answers.length} summaries received; on screen: ${numbers}`);
  assert.deepEqual(errors, [], "no errors in the page");

  // Sign-out ends the session: the page asks for the token again.
  await Promise.all([page.waitForNavigation(), page.click("#signout")]);
  assert.ok(await page.locator("#token").isVisible());
  assert.equal((await page.request.get(`${base}/api/summary`)).status(), 401);
  await page.close();
});

test("the API refuses a bad parameter with a 400 that names it", async () => {
  const r = await fetch(`${base}/api/traffic?range=2h`, auth);
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(body.error, "bad_parameter");
  assert.match(body.message, /range must be one of 1h, 24h, 7d/);
});
