// The tracker in real headless Chromium against a real `clickstream serve`:
// what a visitor does in the demo shop must arrive in Silver, once.
// Run by scripts/test.sh after the tracker is built:
//   CLICKSTREAM_BIN=target/debug/clickstream node --test collector-wasm/e2e/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.CLICKSTREAM_BIN ?? join(root, "target/debug/clickstream");
const dataDir = mkdtempSync(join(tmpdir(), "clickstream-e2e-"));
let server;
let browser;
let base;

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

function query(sql) {
  const out = execFileSync(bin, ["query", "--data-dir", dataDir, "--format", "json", sql], { encoding: "utf8" });
  return JSON.parse(out);
}

async function silverRows(expected, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let rows = [];
    try {
      rows = query("SELECT event_id, event_type, anonymous_id, session_id, page_path, product_id FROM silver_events");
    } catch {
      // no Silver yet
    }
    if (rows.length >= expected || Date.now() > deadline) return rows;
    await new Promise((r) => setTimeout(r, 300));
  }
}

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  writeFileSync(join(dataDir, "config.toml"), "[aggregate]\npoll_interval_ms = 200\n");
  server = spawn(bin, ["serve", "--data-dir", dataDir, "--config", join(dataDir, "config.toml"), "--port", String(port)], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {
      if (i > 100) throw new Error("clickstream serve did not start");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
});

test("the tracker's files are served, the wasm as application/wasm", async () => {
  const js = await fetch(`${base}/t/clickstream.js`);
  const wasm = await fetch(`${base}/t/clickstream_bg.wasm`);
  assert.equal(js.status, 200);
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get("content-type"), "application/wasm");
});

test("a visit's page view, click and add to cart reach Silver exactly once, with the tracker's ids", async () => {
  const page = await browser.newPage();
  const posts = [];
  page.on("request", (r) => r.url().endsWith("/v1/batch") && posts.push(r.headers()["content-type"]));
  await page.goto(`${base}/`);
  await page.waitForFunction(() => window.clickstream?.stats().recorded >= 1);
  await page.click("button");
  await page.evaluate(() => window.clickstream.flush());
  await page.waitForFunction(() => window.clickstream.stats().delivered >= 3, null, { timeout: 10000 });
  const stats = await page.evaluate(() => window.clickstream.stats());
  await page.screenshot({ path: join(root, "target/e2e-shop.png") });
  await page.close();

  const rows = await silverRows(3);
  assert.deepEqual(rows.map((r) => r.event_type).sort(), ["add_to_cart", "click", "page_view"]);
  assert.equal(new Set(rows.map((r) => r.event_id)).size, 3, "no duplicates");
  assert.ok(rows.every((r) => r.anonymous_id === stats.anonymousId && r.session_id === stats.sessionId));
  assert.equal(rows.find((r) => r.event_type === "add_to_cart").product_id, "p-1");
  // sendBeacon-compatible bodies: text/plain needs no CORS preflight.
  assert.ok(posts.length > 0 && posts.every((t) => t.startsWith("text/plain")), String(posts));
  console.log(`e2e: ${rows.length} events in Silver from ${posts.length} requests; stats ${JSON.stringify(stats)}`);
});
