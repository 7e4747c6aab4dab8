// The chain as users deploy it, each part its own process: the built Worker
// in workerd → `clickstream serve --no-aggregate` on a Fluvio cluster
// (answering /ingest only) → two `clickstream aggregate --partitions`
// consumers → the Gold role. Generator traffic with malformed events,
// duplicates and retries goes in at the Worker; Silver must hold every
// acknowledged valid event once, rejects every acknowledged bad row by its
// reason (scripts/check_acked.py), and Gold must equal `clickstream gold
// --rebuild`, which recomputes it from Silver. Needs a cluster: set
// FLUVIO_SC_ADDR (e.g. 127.0.0.1:9003); without one the test is reported
// as skipped, by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Backend, root, startWorkerd } from "./harness.mjs";

const bin = process.env.CLICKSTREAM_BIN ?? join(root, "target/debug/clickstream");
const sc = process.env.FLUVIO_SC_ADDR;
const SECRET = "chain-ingest-secret";

const skip = sc ? false : "FLUVIO_SC_ADDR is unset: no Fluvio cluster to run the Worker → ingest → Fluvio → consumers → Gold chain on";

test("Worker → ingest → Fluvio → two consumers → Gold: every event once, rejects by reason, Gold = its rebuild", { skip }, async () => {
  const prefix = `chain-${Date.now()}-`;
  const backend = new Backend(bin, SECRET, `stream = "fluvio"\n[fluvio]\nsc = "${sc}"\npartitions = 4\ntopic_prefix = "${prefix}"\n`);
  backend.args.push("--no-aggregate");
  const roles = [];
  let runtime;
  try {
    await backend.start();
    runtime = await startWorkerd(backend, [
      { name: "edge", vars: { ALLOWED_ORIGINS: JSON.stringify({ "shop-1": ["https://shop.example"] }), RATE_LIMIT_PER_MINUTE: 0 } },
    ]);
    const role = (...args) => {
      const child = spawn(bin, [...args, "--data-dir", backend.dataDir, "--config", backend.config], {
        stdio: ["ignore", "ignore", "inherit"],
        env: { ...process.env, RUST_LOG: "warn" },
      });
      roles.push(child);
      return child;
    };
    role("aggregate", "--partitions", "0,1");
    role("aggregate", "--partitions", "2,3");
    role("gold");

    const sent = join(backend.dir, "sent.ndjson");
    const out = execFileSync(bin, ["generate", "--target", runtime.urls.edge, "--events", "3000", "--seed", "41",
      "--concurrency", "4", "--out", sent, "--retry-for", "120", "--malformed-share", "0.03", "--duplicate-share", "0.05"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    const m = out.match(/sent (\d+) events \((\d+) distinct valid, (\d+) malformed\).*?(\d+) failed/);
    assert.ok(m, out);
    const [events, valid, malformed, failed] = m.slice(1).map(Number);
    assert.equal(failed, 0, out);

    // Both consumers have committed everything, and Gold folded in their last commits.
    const manifest = (tag) => {
      const path = join(backend.dataDir, "_state", `manifest-${tag}.json`);
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
      await new Promise((r) => setTimeout(r, 300));
    }
    for (const child of roles) child.kill("SIGTERM");
    await Promise.all(roles.map((child) => new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)))));

    const checks = execFileSync("python3", [join(root, "scripts/check_acked.py"), bin, backend.dataDir, sent], { encoding: "utf8" });
    const failures = checks.split("\n").filter((l) => l.startsWith("not ok"));
    assert.deepEqual(failures, [], checks);
    assert.ok(checks.split("\n").some((l) => l.startsWith("ok")), checks);

    const rebuilt = execFileSync(bin, ["gold", "--rebuild", "--data-dir", backend.dataDir, "--config", backend.config],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    assert.ok(rebuilt.includes("same"), rebuilt);
    console.log(`chain: ${events} events sent through workerd (${valid} distinct valid, ${malformed} malformed); ` +
      `Silver ${state.silver}, rejects ${state.rejects}, Gold = its rebuild`);
  } finally {
    for (const child of roles) if (child.exitCode === null) child.kill("SIGKILL");
    runtime?.stop();
    await backend.remove();
  }
});
