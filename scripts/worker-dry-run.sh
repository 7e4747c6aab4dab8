#!/usr/bin/env bash
# Checks that `wrangler deploy` would ship the Worker, without deploying:
# `wrangler deploy --dry-run --outdir DIR` with the repository's
# wrangler.toml runs its [build] command (scripts/build-worker.sh) and
# bundles what Cloudflare would receive. Wrangler and the Node 22 it needs
# come pinned from edge-worker/wrangler/ (npm). Prints TAP lines and
# "# pass/# fail" totals.
#
#   bash scripts/worker-dry-run.sh [--outdir DIR]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

out="$ROOT/target/wrangler-dry-run"
[ "${1:-}" = "--outdir" ] && out="$2"

tools="$ROOT/edge-worker/wrangler"
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
if [ ! -f "$tools/node_modules/.package-lock.json" ] || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
  log "npm ci in edge-worker/wrangler (wrangler and Node 22, about 400 MB, once)"
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
fi

PASSED=0 FAILED=0 N=0
ok() { N=$((N + 1)); echo "ok $N - $1"; PASSED=$((PASSED + 1)); }
not_ok() { N=$((N + 1)); echo "not ok $N - $1"; FAILED=$((FAILED + 1)); }

rm -rf "$out"
log "wrangler deploy --dry-run --outdir $out"
run_log="$(mktemp)"
trap 'rm -f "$run_log"' EXIT
# No account, no network: a dry run needs neither. No telemetry either.
if env PATH="$tools/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false CI=true \
    wrangler deploy --dry-run --outdir "$out" >"$run_log" 2>&1; then
  ok "wrangler $(env PATH="$tools/node_modules/.bin:$PATH" wrangler --version 2>/dev/null | tail -1) on Node $("$tools/node_modules/.bin/node" --version) finished the dry run"
else
  cat "$run_log"
  not_ok "wrangler deploy --dry-run failed (output above)"
fi
grep -E 'Worker built|index_bg.wasm|Total Upload' "$run_log" || true

wasm=$(find "$out" -maxdepth 1 -name '*.wasm' 2>/dev/null | head -1)
if [ -s "$out/index.js" ] && [ -n "$wasm" ] && [ -s "$wasm" ]; then
  ok "the bundle holds the entry module ($(wc -c <"$out/index.js") bytes) and the wasm ($(wc -c <"$wasm") bytes)"
else
  not_ok "the bundle in $out lacks index.js or the wasm: $(ls "$out" 2>/dev/null | tr '\n' ' ')"
fi
# The entry must import the wasm file the bundle ships, by its bundled name.
if [ -n "$wasm" ] && grep -q "$(basename "$wasm")" "$out/index.js" 2>/dev/null; then
  ok "the entry module imports the bundled wasm ($(basename "$wasm"))"
else
  not_ok "the entry module does not import the bundled wasm"
fi

echo "# pass $PASSED"
echo "# fail $FAILED"
[ "$FAILED" -eq 0 ]
