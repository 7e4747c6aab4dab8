// The built Worker (build/, scripts/build-worker.sh) in the real Workers
// runtime, workerd, in front of a real `clickstream serve`: what it
// accepts lands in Silver enriched with the edge's metadata, bad input gets
// the right answer and loses nothing, a backend outage is a 503 the retry
// gets through exactly once, `/ingest` takes only fresh signatures, and
// with a KV namespace the IP hash is keyed by the day's random salt in it.
// Run by scripts/test.sh:
//   CLICKSTREAM_BIN=target/debug/clickstream node --test edge-worker/e2e/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { Backend, root, startWorkerd } from "./harness.mjs";

const bin = process.env.CLICKSTREAM_BIN ?? join(root, "target/debug/clickstream");
const SECRET = "test-ingest-secret";
const SHOP = "https://shop.example";
const EDGE = JSON.stringify({ country: "NL", colo: "AMS", asn: 1136, tlsVersion: "TLSv1.3" });
const backend = new Backend(bin, SECRET);
const dataDir = backend.dataDir;
let runtime;
let worker; // base URL of the Worker
let limited; // the same Worker, with a rate limit of 2 requests a minute
let salted, saltedToo; // two isolates of the Worker sharing an IP_SALTS KV namespace
let salts; // that namespace's KV routes

before(async () => {
  await backend.start();
  const vars = { ALLOWED_ORIGINS: JSON.stringify({ "shop-1": [SHOP] }), MAX_BODY_BYTES: 65536 };
  runtime = await startWorkerd(backend, [
    { name: "edge", vars: { ...vars, RATE_LIMIT_PER_MINUTE: 0 } },
    { name: "limited", vars: { ...vars, RATE_LIMIT_PER_MINUTE: 2 } },
    // IP_SALT_SECRET is set for the first (and must go unused), not the second.
    { name: "salted", vars: { ...vars, RATE_LIMIT_PER_MINUTE: 0 }, kv: "salts" },
    { name: "salted-too", vars: { ...vars, RATE_LIMIT_PER_MINUTE: 0, IP_SALT_SECRET: null }, kv: "salts" },
  ]);
  ({ edge: worker, limited, salted, "salted-too": saltedToo } = runtime.urls);
  salts = runtime.kv.salts;
});

after(async () => {
  runtime?.stop();
  await backend.remove();
});

function query(sql) {
  // stderr piped: before the first commit, a "no data yet" error is expected.
  const out = execFileSync(bin, ["query", "--data-dir", dataDir, "--format", "json", sql], { encoding: "utf8", stdio: "pipe" });
  return JSON.parse(out);
}

async function rows(sql, expected, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let got = [];
    try {
      got = query(sql);
    } catch {
      // no table yet
    }
    if (got.length >= expected || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function event(id, extra = {}) {
  return { event_id: id, event_type: "page_view", ts: Date.now() - 500, anonymous_id: "a-edge", session_id: "s-edge",
    page: { url: `${SHOP}/p/1?utm_source=news`, path: "/p/1" }, ...extra };
}

const batch = (events, v = 1) => JSON.stringify({ v, site_id: "shop-1", sent_at: Date.now(), events });

async function post(body, headers = {}, base = worker) {
  const r = await fetch(`${base}/v1/batch`, { method: "POST", body,
    headers: { "content-type": "text/plain", origin: SHOP, "cf-blob": EDGE, "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", ...headers } });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, headers: r.headers, json, text };
}

test("a valid batch is accepted once the backend has it, and lands in Silver with the edge's enrichment", async () => {
  const r = await post(batch([event("edge-1"), event("edge-2")]));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { accepted: 2, rejected: 0, errors: [] });
  assert.equal(r.headers.get("access-control-allow-origin"), SHOP);
  const got = await rows("SELECT event_id, country, colo, asn, browser, utm_source FROM silver_events WHERE event_id LIKE 'edge-%' ORDER BY event_id", 2);
  assert.deepEqual(got, [
    { event_id: "edge-1", country: "NL", colo: "AMS", asn: 1136, browser: "Firefox", utm_source: "news" },
    { event_id: "edge-2", country: "NL", colo: "AMS", asn: 1136, browser: "Firefox", utm_source: "news" },
  ]);
});

test("with a KV namespace, the IP hash is keyed by the day's random salt, stored once until the end of the next day", async () => {
  const ip = "198.51.100.23";
  const day = Math.floor(Date.now() / 86_400_000);
  const sent = [["kv-salt-1", salted], ["kv-salt-2", salted], ["kv-salt-3", saltedToo], ["kv-salt-derived", worker]];
  for (const [id, base] of sent) {
    const r = await post(batch([event(id)]), { "cf-connecting-ip": ip }, base);
    assert.equal(r.status, 200, `${id}: ${r.text}`);
  }
  const got = await rows("SELECT event_id, ip_hash FROM silver_events WHERE event_id LIKE 'kv-salt-%' ORDER BY event_id", 4);
  const hash = Object.fromEntries(got.map((r) => [r.event_id, r.ip_hash]));

  const listed = await (await fetch(`${salts}/?prefix=salt:`)).json();
  const today = new Date(day * 86_400_000).toISOString().slice(0, 10);
  assert.deepEqual(listed.keys.map((k) => k.name), [`salt:${today}`], "one salt, today's, for both isolates");
  const endOfNextDay = (day + 2) * 86_400;
  assert.ok(Math.abs(listed.keys[0].expiration - endOfNextDay) <= 2,
    `expires at the end of the next day (${endOfNextDay}), not ${listed.keys[0].expiration}`);
  const stored = await (await fetch(`${salts}/salt:${today}`)).text();
  assert.match(stored, /^[0-9a-f]{64}$/);

  // The hash as DailySalt::hash_ip makes it, from the stored salt and from
  // the one IP_SALT_SECRET ("salt") derives for the day.
  const hashIp = (salt) => createHmac("sha256", salt).update(`shop-1/${ip}`).digest("hex").slice(0, 32);
  const dayBytes = Buffer.alloc(8);
  dayBytes.writeBigInt64BE(BigInt(day));
  const derived = createHmac("sha256", "salt").update(Buffer.concat([Buffer.from("ip-salt/"), dayBytes])).digest();
  assert.equal(hash["kv-salt-derived"], hashIp(derived), "without the binding: the secret's salt");
  assert.equal(hash["kv-salt-1"], hashIp(Buffer.from(stored, "hex")), "with it: the stored salt");
  assert.notEqual(hash["kv-salt-1"], hash["kv-salt-derived"]);
  assert.equal(hash["kv-salt-2"], hash["kv-salt-1"], "the same visitor, the same day: the same hash");
  assert.equal(hash["kv-salt-3"], hash["kv-salt-1"], "in another isolate too");
});

test("each bad input gets its status and reason, and loses nothing", async () => {
  let r = await post("this is not json");
  assert.deepEqual([r.status, r.json.error], [400, "malformed_json"]);
  r = await post(batch([event("big", { props: { note: "x".repeat(70000) } })]));
  assert.deepEqual([r.status, r.json.error], [413, "body_too_large"]);
  r = await post(batch([event("v2")], 2));
  assert.deepEqual([r.status, r.json.error], [400, "unsupported_version"]);
  r = await post(batch([event("mix-1"), { event_type: "page_view" }, event("mix-2", { ts: "yesterday" })]));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.json.accepted, r.json.rejected], [1, 2]);
  assert.deepEqual(r.json.errors.map((e) => [e.index, e.reason]), [[1, "missing_event_id"], [2, "invalid_timestamp"]]);
  r = await post(batch([event("evil-1")]), { origin: "https://evil.example" });
  assert.deepEqual([r.status, r.json.error], [403, "origin_not_allowed"]);

  const preflight = await fetch(`${worker}/v1/batch`, { method: "OPTIONS",
    headers: { origin: SHOP, "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), SHOP);
  assert.match(preflight.headers.get("access-control-allow-methods"), /POST/);
  assert.match(preflight.headers.get("access-control-allow-headers"), /content-type/);
  const refused = await fetch(`${worker}/v1/batch`, { method: "OPTIONS", headers: { origin: "https://evil.example" } });
  assert.equal(refused.status, 403);
  const elsewhere = await fetch(`${worker}/v2/batch`, { method: "POST", body: batch([event("nowhere")]) });
  assert.equal(elsewhere.status, 404);
  // Edge metadata with fields missing (no TLS on plain HTTP) is still taken.
  const partial = await post(batch([event("partial-cf-1")]), { "cf-blob": JSON.stringify({ country: "DE" }) });
  assert.equal(partial.status, 200, partial.text);
  // Mounted under a prefix of the site's own domain (a route like shop.example/c/*).
  const prefixed = await fetch(`${worker}/c/v1/batch`, { method: "POST", body: batch([event("prefixed-1")]) });
  assert.equal(prefixed.status, 200, await prefixed.text());

  const bad = await rows("SELECT reason, source FROM rejects WHERE site_id = 'shop-1' ORDER BY reason", 2);
  assert.deepEqual(bad.sort((a, b) => a.reason.localeCompare(b.reason)),
    [{ reason: "invalid_timestamp", source: "edge" }, { reason: "missing_event_id", source: "edge" }]);
  await rows("SELECT event_id FROM silver_events WHERE event_id = 'mix-1'", 1);
  const stored = query("SELECT event_id FROM silver_events WHERE event_id IN ('big', 'v2', 'evil-1', 'mix-1', 'mix-2')");
  assert.deepEqual(stored, [{ event_id: "mix-1" }], "only the valid event of the mixed batch");
});

test("a visitor over the rate limit gets 429 with Retry-After; others are not limited", async () => {
  const visitor = { "cf-connecting-ip": "198.51.100.7" };
  for (const id of ["rate-1", "rate-2"]) assert.equal((await post(batch([event(id)]), visitor, limited)).status, 200);
  const r = await post(batch([event("rate-3")]), visitor, limited);
  assert.deepEqual([r.status, r.json.error, r.headers.get("retry-after")], [429, "rate_limited", "30"]);
  assert.equal((await post(batch([event("rate-4")]), { "cf-connecting-ip": "203.0.113.9" }, limited)).status, 200);
});

test("backend down: 503 with Retry-After, and the retry lands exactly once when it is back", async () => {
  await backend.stop();
  const body = batch([event("outage-1"), event("outage-2")]);
  const down = await post(body);
  assert.deepEqual([down.status, down.json.error, down.headers.get("retry-after")], [503, "backend_unavailable", "5"]);
  await backend.start();
  const retried = await post(body);
  assert.equal(retried.status, 200, retried.text);
  assert.equal((await post(body)).status, 200, "a second retry is harmless");
  const got = await rows("SELECT event_id FROM silver_events WHERE event_id LIKE 'outage-%' ORDER BY event_id", 2);
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(query("SELECT event_id FROM silver_events WHERE event_id LIKE 'outage-%' ORDER BY event_id"), got);
  assert.deepEqual(got.map((r) => r.event_id), ["outage-1", "outage-2"]);
});

test("/ingest refuses missing, forged and replayed signatures with 401 and writes nothing", async () => {
  const ingest = (body, headers) => fetch(`${backend.url}/ingest`, { method: "POST", body, headers });
  const now = Date.now();
  const enriched = (id) => ({ event_id: id, event_type: "page_view", site_id: "shop-1", anonymous_id: "a-edge",
    session_id: "s-edge", client_ts: now, sent_at: now, received_at: now, event_ts: now, page_url: `${SHOP}/`,
    page_path: "/", referrer: "", page_title: "", screen: "", lang: "", tz: "", browser: "Other", os: "Other",
    device_type: "desktop", is_bot: false, raw: "{}" });
  const body = JSON.stringify({ events: [enriched("signed-1")], bad_rows: [] });
  const ts = String(Date.now());
  const signature = `v1=${createHmac("sha256", SECRET).update(`${ts}.${body}`).digest("hex")}`;
  assert.equal((await ingest(body, { "content-type": "application/json" })).status, 401, "missing");
  const forged = `v1=${createHmac("sha256", "not-the-secret").update(`${ts}.${body}`).digest("hex")}`;
  assert.equal((await ingest(body, { "x-clickstream-timestamp": ts, "x-clickstream-signature": forged })).status, 401, "forged");
  const stale = String(Date.now() - 6 * 60 * 1000);
  const staleSig = `v1=${createHmac("sha256", SECRET).update(`${stale}.${body}`).digest("hex")}`;
  assert.equal((await ingest(body, { "x-clickstream-timestamp": stale, "x-clickstream-signature": staleSig })).status, 401, "stale");
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(query("SELECT event_id FROM silver_events WHERE event_id = 'signed-1'"), [], "nothing written");
  const first = await ingest(body, { "x-clickstream-timestamp": ts, "x-clickstream-signature": signature });
  assert.equal(first.status, 200, await first.text());
  const replay = await ingest(body, { "x-clickstream-timestamp": ts, "x-clickstream-signature": signature });
  assert.equal(replay.status, 401, "replayed");
  assert.deepEqual(await rows("SELECT event_id FROM silver_events WHERE event_id = 'signed-1'", 1), [{ event_id: "signed-1" }]);
});

test("end to end: the generator through the Worker, Silver holds every valid event it sent", async () => {
  const out = execFileSync(bin, ["generate", "--target", worker, "--events", "600", "--seed", "11", "--concurrency", "2",
    "--site-id", "shop-generated"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const m = out.match(/sent (\d+) events \((\d+) distinct valid, (\d+) malformed\).*?(\d+) failed/);
  assert.ok(m, out);
  const [sent, valid, malformed, failed] = m.slice(1).map(Number);
  assert.equal(failed, 0, out);
  const sql = "SELECT count(*) AS n FROM silver_events WHERE site_id = 'shop-generated'";
  const deadline = Date.now() + 20000;
  let n = 0;
  while (Date.now() < deadline && (n = query(sql)[0].n) < valid) await new Promise((r) => setTimeout(r, 300));
  assert.equal(n, valid, out);
  console.log(`worker e2e: generator sent ${sent} events (${valid} distinct valid, ${malformed} malformed) through workerd; Silver holds ${n}`);
});
