// Runs the built Worker (build/) in workerd in front of a real
// `clickstream serve`, for the end-to-end test and the request bench.
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { root, freePort, until, Serve } from "../../backend/e2e/serve.mjs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export { root, freePort, until };
// The Linux x64 build of workerd, from npm (the wrapper package "workerd" has
// optional dependencies for other platforms that break `npm ci` here).
const workerd = join(root, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");

/** `clickstream serve` taking signed `/ingest` with `secret`, restartable on the same port. */
export class Backend extends Serve {
  constructor(bin, secret, config = "") {
    super({ bin, config, args: ["--ingest-secret", secret], label: "edge" });
    this.secret = secret;
  }
}

/**
 * workerd serving the build once per entry of `services` ({ name, vars, kv }),
 * each on its own port, forwarding to `backend` (null: none, for a Worker
 * that produces to Fluvio itself). A var set to null is left
 * out. `kv`: the name of an in-memory KV namespace (memory-kv.js) bound as
 * IP_SALTS; services naming the same one share it, as the isolates of a
 * deployed Worker share its namespace. request.cf comes from the cf-blob
 * header, as the edge would set it. Returns { urls: {name: url}, kv: {name:
 * url}, pid, stop }, where a namespace's URL answers KV's HTTP routes.
 */
export async function startWorkerd(backend, services) {
  const dir = mkdtempSync(join(tmpdir(), "clickstream-workerd-"));
  for (const file of ["index.js", "index_bg.wasm"]) copyFileSync(join(root, "build", file), join(dir, file));
  copyFileSync(join(dirname(fileURLToPath(import.meta.url)), "memory-kv.js"), join(dir, "memory-kv.js"));
  const urls = {};
  const kv = {};
  const sockets = [];
  const workers = [];
  // Every port is free when asked for, but none is held until workerd
  // binds them all: the kernel can hand the same one out twice meanwhile.
  const taken = new Set();
  const distinctPort = async () => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) return taken.add(port), port;
    }
  };
  for (const { name, vars, kv: namespace } of services) {
    const port = await distinctPort();
    urls[name] = `http://127.0.0.1:${port}`;
    // Without a backend the Worker produces to Fluvio itself (FLUVIO_SC in vars).
    const ingest = backend ? { BACKEND_INGEST_URL: `${backend.url}/ingest`, INGEST_SECRET: backend.secret } : {};
    const all = { ...ingest, IP_SALT_SECRET: "salt", ...vars };
    const bindings = Object.entries(all).filter(([, v]) => v !== null)
      .map(([k, v]) => `(name = "${k}", text = ${JSON.stringify(String(v))})`);
    if (namespace) {
      if (!(namespace in kv)) {
        const kvPort = await distinctPort();
        kv[namespace] = `http://127.0.0.1:${kvPort}`;
        workers.push(`(name = "kv-${namespace}", worker = (
          modules = [(name = "memory-kv.js", esModule = embed "memory-kv.js")], compatibilityDate = "2025-01-01"))`);
        sockets.push(`(name = "kv-${namespace}", address = "127.0.0.1:${kvPort}", http = (), service = "kv-${namespace}")`);
      }
      bindings.push(`(name = "IP_SALTS", kvNamespace = "kv-${namespace}")`);
    }
    workers.push(`(name = "${name}", worker = (
      modules = [(name = "index.js", esModule = embed "index.js"), (name = "index_bg.wasm", wasm = embed "index_bg.wasm")],
      compatibilityDate = "2025-01-01", bindings = [${bindings.join(", ")}], globalOutbound = "internet"))`);
    sockets.push(`(name = "${name}", address = "127.0.0.1:${port}", http = (cfBlobHeader = "cf-blob"), service = "${name}")`);
  }
  writeFileSync(join(dir, "workerd.capnp"), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [${workers.join(", ")}, (name = "internet", network = (allow = ["public", "private", "local"]))],
  sockets = [${sockets.join(", ")}],
);
`);
  const runtime = spawn(workerd, ["serve", join(dir, "workerd.capnp")], { cwd: dir, stdio: ["ignore", "inherit", "inherit"] });
  for (const url of Object.values(urls)) await until(`${url}/health`, "workerd");
  return {
    urls,
    kv,
    pid: runtime.pid,
    stop() {
      runtime.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
