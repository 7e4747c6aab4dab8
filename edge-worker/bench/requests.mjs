// Requests per second through the Worker in workerd, with batches of 20
// events, each answered only after the backend's /ingest made it durable;
// and, as the peer in the same run, the same load straight to the backend's
// own POST /v1/batch. With FLUVIO_SC_ADDR set, the same again on that
// Fluvio cluster: the Worker producing to it itself against the Worker
// through `serve --no-aggregate`'s /ingest and against serve's own
// /v1/batch. Load from wrk. Run by scripts/bench-worker.sh.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Backend, root, startWorkerd } from "../e2e/harness.mjs";

const bin = process.env.CLICKSTREAM_BIN ?? join(root, "target/release/clickstream");
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 16);

const now = Date.now();
const events = Array.from({ length: 20 }, (_, i) => ({
  event_id: `bench-${i}`, event_type: i % 2 ? "click" : "page_view", ts: now - 1000 + i,
  anonymous_id: "5b3f2c1e-8d4a-4e7b-9f1a-2c3d4e5f6a7b", session_id: "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
  page: { url: "https://shop.example/p/1?utm_source=news", path: "/p/1", title: "Trail Runner 2 | Shop Example" },
  props: i % 2 ? { tag: "button", text: "Add to cart" } : {},
  context: { screen: "1920x1080", lang: "en-GB", tz: "Europe/London" },
}));
const body = JSON.stringify({ v: 1, site_id: "shop-1", sent_at: now, events });

const dir = mkdtempSync(join(tmpdir(), "clickstream-bench-"));
const script = join(dir, "post.lua");
// Every request repeats the same 20 event ids: the pipeline keeps one copy,
// and the log and Silver stay small however long the run.
writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["content-type"] = "text/plain"\n` +
  `wrk.headers["cf-blob"] = '{"country":"NL","colo":"AMS","asn":1136}'\n`);

// CPU seconds (user + system) a process has used so far, from /proc.
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

// wrk's load on `url`, and the CPU time each of `pids` spent per request meanwhile.
function load(url, pids) {
  const before = pids.map(cpuSeconds);
  const out = execFileSync("wrk", ["-t2", `-c${connections}`, `-d${seconds}s`, "--latency", "-s", script, url], { encoding: "utf8" });
  const requests = Number(out.match(/(\d+) requests in/)[1]);
  const cpuMs = pids.map((pid, i) => (cpuSeconds(pid) - before[i]) * 1000 / requests);
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)[1]);
  const errors = out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? "0";
  const p50 = out.match(/^\s+50%\s+(\S+)/m)?.[1];
  const p99 = out.match(/^\s+99%\s+(\S+)/m)?.[1];
  return { rps, errors: Number(errors), p50, p99, cpuMs };
}

// wrk is one client sending one site's traffic: without lifting the
// backend's per-client and per-site limits the direct peer would be
// measuring 429s (the Worker's own limit is off below too).
const limits = "rate_limit_per_minute = 0\nsite_events_per_minute = 0\n";
const backend = new Backend(bin, "bench-secret", limits);
const started = [backend];
const runtimes = [];
const line = (name, r) => `${name.padEnd(40)} ${r.rps.toFixed(0).padStart(7)} req/s  ${(r.rps * 20).toFixed(0).padStart(8)} events/s  ` +
  `p50 ${r.p50}  p99 ${r.p99}  non-2xx ${r.errors}`;
const ms = (x) => `${x.toFixed(3)} ms`;
try {
  await backend.start();
  const runtime = await startWorkerd(backend, [{ name: "edge", vars: { RATE_LIMIT_PER_MINUTE: 0 } }]);
  runtimes.push(runtime);
  const edge = load(`${runtime.urls.edge}/v1/batch`, [runtime.pid, backend.process.pid]);
  const direct = load(`${backend.url}/v1/batch`, [backend.process.pid]);
  console.log(`${connections} connections, ${seconds} s each, batches of 20 events (${body.length} bytes)`);
  console.log("embedded log:");
  console.log(line("Worker in workerd → serve /ingest", edge));
  console.log(line("serve POST /v1/batch (peer)", direct));
  console.log(`Worker path / direct: ${(edge.rps / direct.rps).toFixed(2)}`);
  // workerd's whole process: the Worker's wasm and JS, and the runtime's
  // HTTP in and out (what Cloudflare bills as CPU time is the first part).
  console.log(`CPU per 20-event batch: workerd ${ms(edge.cpuMs[0])}, serve behind it ${ms(edge.cpuMs[1])}; ` +
    `serve direct ${ms(direct.cpuMs[0])} (wrk itself not counted)`);

  const sc = process.env.FLUVIO_SC_ADDR;
  if (!sc) {
    console.log("Fluvio: skipped (FLUVIO_SC_ADDR is unset): no cluster for the Worker to produce to");
  } else {
    const prefix = `bench-${Date.now()}-`;
    // serve creates the topics; it only takes batches here (no aggregator
    // competing for the two cores).
    const viaIngest = new Backend(bin, "bench-secret",
      `${limits}stream = "fluvio"\n[fluvio]\nsc = "${sc}"\npartitions = 4\ntopic_prefix = "${prefix}"\n`);
    viaIngest.args.push("--no-aggregate");
    started.push(viaIngest);
    await viaIngest.start();
    const forwarding = await startWorkerd(viaIngest, [{ name: "edge", vars: { RATE_LIMIT_PER_MINUTE: 0 } }]);
    runtimes.push(forwarding);
    const producing = await startWorkerd(null, [{ name: "edge",
      vars: { RATE_LIMIT_PER_MINUTE: 0, FLUVIO_SC: sc, FLUVIO_TOPIC_PREFIX: prefix } }]);
    runtimes.push(producing);
    const own = load(`${producing.urls.edge}/v1/batch`, [producing.pid]);
    const hop = load(`${forwarding.urls.edge}/v1/batch`, [forwarding.pid, viaIngest.process.pid]);
    const serveOnFluvio = load(`${viaIngest.url}/v1/batch`, [viaIngest.process.pid]);
    console.log(`Fluvio at ${sc} (the cluster's own CPU not counted):`);
    console.log(line("Worker in workerd → Fluvio", own));
    console.log(line("Worker in workerd → serve /ingest → Fluvio", hop));
    console.log(line("serve POST /v1/batch → Fluvio (peer)", serveOnFluvio));
    console.log(`Worker → Fluvio / Worker → /ingest: ${(own.rps / hop.rps).toFixed(2)}; ` +
      `Worker → Fluvio / direct: ${(own.rps / serveOnFluvio.rps).toFixed(2)}`);
    console.log(`CPU per 20-event batch: workerd producing ${ms(own.cpuMs[0])}; workerd forwarding ${ms(hop.cpuMs[0])} ` +
      `+ serve behind it ${ms(hop.cpuMs[1])}; serve direct ${ms(serveOnFluvio.cpuMs[0])}`);
  }
} finally {
  for (const r of runtimes) r.stop();
  for (const b of started) await b.remove();
  rmSync(dir, { recursive: true, force: true });
}
