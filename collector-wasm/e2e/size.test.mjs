// The size budget: what a page downloads for the tracker, the wasm and the
// JS entry point (with wasm-bindgen's glue), at most 20 KB gzipped.
// Measured on the build scripts/build-tracker.sh made (collector-wasm/dist,
// or TRACKER_DIR), gzipped at level 9 as a server would serve them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const BUDGET_BYTES = 20000;
const dist = process.env.TRACKER_DIR ?? join(dirname(fileURLToPath(import.meta.url)), "../dist");

test(`the tracker is at most ${BUDGET_BYTES} bytes gzipped`, () => {
  const sizes = {};
  for (const file of ["clickstream_bg.wasm", "clickstream.js"]) {
    const bytes = readFileSync(join(dist, file));
    sizes[file] = { raw: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length };
  }
  const total = Object.values(sizes).reduce((sum, s) => sum + s.gzipped, 0);
  for (const [file, s] of Object.entries(sizes)) console.log(`size: ${file} ${s.raw} bytes, ${s.gzipped} gzipped`);
  console.log(`size: total ${total} bytes gzipped (budget ${BUDGET_BYTES}, ${BUDGET_BYTES - total} to spare)`);
  assert.ok(total <= BUDGET_BYTES, `the tracker is ${total} bytes gzipped, over the ${BUDGET_BYTES}-byte budget`);
});
