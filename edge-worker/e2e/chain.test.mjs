// The chain as users deploy it, each part its own process, in both of the
// Worker's modes:
//
// - through /ingest: the built Worker in workerd → `clickstream serve
//   --no-aggregate` on a Fluvio cluster (answering /ingest only);
// - directly: the built Worker in workerd produces to the Fluvio cluster
//   itself (FLUVIO_SC), and the cluster is stopped and started again while
//   traffic flows (when FLUVIO_STOP_CMD and FLUVIO_START_CMD say how);
//
// then two `clickstream aggregate --partitions` consumers and the Gold
// role. Generator traffic with malformed events, duplicates and retries
// goes in at the Worker; Silver must hold every acknowledged valid event
// once, rejects every acknowledged bad row by its reason
// (scripts/check_acked.py), and Gold must equal `clickstream gold
// --rebuild`, which recomputes it from Silver. Needs a cluster: set
// FLUVIO_SC_ADDR (e.g. 127.0.0.1:9003); without one the tests are reported
// as skipped, by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, execSync, spawn } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Backend, root, startWorkerd } from "./harness.mjs";

const bin = process.env.CLICKSTREAM_BIN ?? join(root, "target/debug/clickstream");
const sc = process.env.FLUVIO_SC_ADDR;
const SECRET = "chain-ingest-secret";
const ORIGINS = JSON.stringify({ "shop-1": ["https://shop.example"] });

const skip = sc ? false : "FLUVIO_SC_ADDR is unset: no Fluvio cluster to run the Worker → Fluvio → consumers → Gold chain on";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The consumers and the Gold role on `lake`'s data directory and config. */
function startRoles(lake) {
  const roles = ["0,1", "2,3"].map((p) => ["aggregate", "--partitions", p]).concat([["gold"]]);
  return roles.map((args) =>
    spawn(bin, [...args, "--data-dir", lake.dataDir, "--config", lake.config], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, RUST_LOG: "warn" },
    }));
}

/** `clickstream generate` at `url`; resolves to its counts once it is done. */
function generate(url, sent, seed) {
  const child = spawn(bin, ["generate", "--target", url, "--events", "3000", "--seed", String(seed), "--concurrency", "4",
    "--out", sent, "--retry-for", "180", "--malformed-share", "0.03", "--duplicate-share", "0.05"],
  { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  return new Promise((resolve, reject) => child.on("exit", (code) => {
    const m = out.match(/sent (\d+) events \((\d+) distinct valid, (\d+) malformed\).*?(\d+) retries, (\d+) failed/);
    if (code !== 0 || !m) return reject(new Error(`generate exited ${code}: ${out}`));
    const [events, valid, malformed, retries, failed] = m.slice(1).map(Number);
    resolve({ events, valid, malformed, retries, failed, out });
  }));
}

/**
 * Waits until both consumers committed `valid` events and `malformed` bad
 * rows and Gold folded in their last commits; stops the roles; checks
 * Silver and rejects against what was acknowledged, and Gold against its
 * rebuild. Returns the manifest totals.
 */
async function settleAndCheck(lake, roles, sentFiles, { valid, malformed }) {
  const manifest = (tag) => {
    const path = join(lake.dataDir, "_state", `manifest-${tag}.json`);
    return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : { seq: 0, totals: {} };
  };
  const deadline = Date.now() + 120_000;
  let state;
  for (;;) {
    const consumers = ["p0_1", "p2_3"].map((tag) => [tag, manifest(tag)]);
    const gold = manifest("gold");
    const silver = consumers.reduce((n, [, c]) => n + (c.totals.silver_rows ?? 0), 0);
    const rejects = consumers.reduce((n, [, c]) => n + (c.totals.reject_rows ?? 0), 0);
    const folded = consumers.every(([tag, c]) => (gold.gold_inputs?.[tag] ?? 0) >= c.seq);
    state = { silver, rejects, folded };
    if (silver >= valid && rejects >= malformed && folded) break;
    assert.ok(Date.now() < deadline, `timed out: ${JSON.stringify(state)}, expected ${valid} valid and ${malformed} bad rows`);
    await sleep(300);
  }
  for (const child of roles) child.kill("SIGTERM");
  await Promise.all(roles.map((child) => new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)))));
  assert.deepEqual(roles.map((c) => c.exitCode), [0, 0, 0], "every role stops cleanly");

  const checks = execFileSync("python3", [join(root, "scripts/check_acked.py"), bin, lake.dataDir, ...sentFiles], { encoding: "utf8" });
  const failures = checks.split("\n").filter((l) => l.startsWith("not ok"));
  assert.deepEqual(failures, [], checks);
  assert.ok(checks.split("\n").some((l) => l.startsWith("ok")), checks);

  const rebuilt = execFileSync(bin, ["gold", "--rebuild", "--data-dir", lake.dataDir, "--config", lake.config],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  assert.ok(rebuilt.includes("same"), rebuilt);
  return state;
}

const fluvioConfig = (prefix) => `stream = "fluvio"\n[fluvio]\nsc = "${sc}"\npartitions = 4\ntopic_prefix = "${prefix}"\n`;

test("Worker → ingest → Fluvio → two consumers → Gold: every event once, rejects by reason, Gold = its rebuild", { skip }, async () => {
  const backend = new Backend(bin, SECRET, fluvioConfig(`chain-${Date.now()}-`));
  backend.args.push("--no-aggregate");
  let roles = [];
  let runtime;
  try {
    await backend.start();
    runtime = await startWorkerd(backend, [{ name: "edge", vars: { ALLOWED_ORIGINS: ORIGINS, RATE_LIMIT_PER_MINUTE: 0 } }]);
    roles = startRoles(backend);
    const sent = join(backend.dir, "sent.ndjson");
    const counts = await generate(runtime.urls.edge, sent, 41);
    assert.equal(counts.failed, 0, counts.out);
    const state = await settleAndCheck(backend, roles, [sent], counts);
    console.log(`chain via /ingest: ${counts.events} events sent through workerd (${counts.valid} distinct valid, ` +
      `${counts.malformed} malformed); Silver ${state.silver}, rejects ${state.rejects}, Gold = its rebuild`);
  } finally {
    for (const child of roles) if (child.exitCode === null) child.kill("SIGKILL");
    runtime?.stop();
    await backend.remove();
  }
});

/** A batch of one page view, as the tracker would send it. */
function onePageView(id) {
  const now = Date.now();
  return JSON.stringify({ v: 1, site_id: "shop-1", sent_at: now, events: [{ event_id: id, event_type: "page_view", ts: now,
    anonymous_id: "outage-probe", session_id: "outage-probe-s", page: { url: "https://shop.example/", path: "/" } }] });
}

test("Worker → Fluvio directly → two consumers → Gold, across a cluster outage: every acknowledged event once", { skip }, async () => {
  const stop = process.env.FLUVIO_STOP_CMD;
  const start = process.env.FLUVIO_START_CMD;
  // No serve: the Backend only gives the data directory and the config.
  const prefix = `direct-${Date.now()}-`;
  const lake = new Backend(bin, SECRET, fluvioConfig(prefix));
  let roles = [];
  let runtime;
  let down = false;
  try {
    runtime = await startWorkerd(null, [{ name: "edge", vars: {
      FLUVIO_SC: sc, FLUVIO_TOPIC_PREFIX: prefix, ALLOWED_ORIGINS: ORIGINS, RATE_LIMIT_PER_MINUTE: 0 } }]);
    const post = (body) => fetch(`${runtime.urls.edge}/v1/batch`, { method: "POST", body, headers: { "content-type": "text/plain" } });
    // Before the consumers create the topics the Worker says which is missing, and to retry.
    const early = await post(onePageView("early-probe"));
    assert.equal(early.status, 503);
    assert.ok(early.headers.get("retry-after"));
    const why = await early.json();
    assert.equal(why.error, "stream_unavailable");
    assert.match(why.message, /does not exist/);

    roles = startRoles(lake);
    const sent = join(lake.dir, "sent.ndjson");
    const generated = generate(runtime.urls.edge, sent, 43);
    let outage = "not run: FLUVIO_STOP_CMD and FLUVIO_START_CMD are unset";
    const probes = join(lake.dir, "probes.ndjson");
    if (stop && start) {
      await sleep(2500);
      execSync(stop, { stdio: ["ignore", "ignore", "inherit"] });
      down = true;
      // While the cluster is down the Worker answers 503 + Retry-After, not 200.
      const probe = onePageView(`outage-probe-${Date.now()}`);
      const during = await post(probe);
      assert.equal(during.status, 503, await during.text());
      assert.ok(Number(during.headers.get("retry-after")) > 0);
      await sleep(3000);
      execSync(start, { stdio: ["ignore", "ignore", "inherit"] });
      down = false;
      // The probe, retried as a tracker would, until acknowledged: it
      // counts as acknowledged from then on.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const after = await post(probe);
        if (after.status === 200) break;
        assert.ok(Date.now() < deadline, `the Worker still answers ${after.status} a minute after the cluster came back`);
        await sleep(500);
      }
      const event = JSON.parse(probe).events[0];
      appendFileSync(probes, JSON.stringify({ expect: "accepted", site_id: "shop-1", event }) + "\n");
      outage = `cluster stopped for 3 s: the Worker answered 503 meanwhile`;
    } else {
      console.log(`chain direct: the outage part is not run: set FLUVIO_STOP_CMD and FLUVIO_START_CMD to commands that stop and start the cluster at ${sc}`);
    }
    const counts = await generated;
    assert.equal(counts.failed, 0, counts.out);
    if (stop && start) assert.ok(counts.retries > 0, `the outage made the generator retry: ${counts.out}`);
    const valid = counts.valid + (existsSync(probes) ? 1 : 0);
    const state = await settleAndCheck(lake, roles, existsSync(probes) ? [sent, probes] : [sent], { ...counts, valid });
    console.log(`chain direct: ${counts.events} events sent through workerd to Fluvio (${counts.valid} distinct valid, ` +
      `${counts.malformed} malformed, ${counts.retries} retries); ${outage}; Silver ${state.silver}, rejects ${state.rejects}, Gold = its rebuild`);
  } finally {
    if (down) execSync(start, { stdio: ["ignore", "ignore", "inherit"] });
    for (const child of roles) if (child.exitCode === null) child.kill("SIGKILL");
    runtime?.stop();
    await lake.remove();
  }
});
