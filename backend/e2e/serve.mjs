// What every end-to-end test of this repository needs: a free port, a real
// `clickstream serve` on its own data directory (started, waited for,
// stopped cleanly), and Debian's headless Chromium. Used by the dashboard's
// test here, the tracker's shop test (collector-wasm/e2e/) and the edge
// Worker's harness (edge-worker/e2e/). Not a test file itself.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

/** The binary under test: CLICKSTREAM_BIN, or the debug build. */
export const clickstreamBin = (profile = "debug") => process.env.CLICKSTREAM_BIN ?? join(root, `target/${profile}/clickstream`);

export const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** Waits until `url` answers 2xx; throws naming `what` after 15 s. */
export async function until(url, what) {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      if (i > 150) throw new Error(`${what} did not start`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `clickstream serve` on its own temporary data directory, restartable on
 * the same port. `config`: the TOML file's text; `args`: more flags; `env`:
 * more environment (tokens, say).
 */
export class Serve {
  constructor({ bin = clickstreamBin(), config = "", args = [], env = {}, label = "e2e" } = {}) {
    Object.assign(this, { bin, args, env });
    this.dir = mkdtempSync(join(tmpdir(), `clickstream-${label}-`));
    this.dataDir = join(this.dir, "data");
    this.config = join(this.dir, "config.toml");
    writeFileSync(this.config, `${config}\n[aggregate]\npoll_interval_ms = 200\n`);
  }

  async start() {
    this.port ??= await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.process = spawn(this.bin, ["serve", "--data-dir", this.dataDir, "--config", this.config, "--port", String(this.port), ...this.args], {
      cwd: root,
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, RUST_LOG: "warn", ...this.env },
    });
    await until(`${this.url}/health`, "clickstream serve");
    return this;
  }

  /** SIGTERM, and wait: serve commits everything acknowledged first. */
  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = new Promise((r) => this.process.once("exit", r));
    this.process.kill("SIGTERM");
    await exited;
  }

  async remove() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Debian's Chromium (no tool may download a browser of its own), headless. */
export async function launchChromium(extraArgs = []) {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync", ...extraArgs],
  });
}
