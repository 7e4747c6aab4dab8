#!/usr/bin/env bash
# Builds the edge collector, the Cloudflare Worker in edge-worker/, into
# build/ (what wrangler.toml's `main` points at):
#   build/index.js       the Worker's entry point: a module whose fetch hands
#                        each request to the wasm, with wasm-bindgen's glue
#   build/index_bg.wasm  the Worker, optimised by wasm-opt
# and prints the wasm's gzipped size. worker-build would do this, but it
# refuses Debian's toolchain and downloads its tools; these are the same
# steps with the pinned tools of this repository.
#
# The compiler: rustup's wasm32-unknown-unknown target when it is installed
# (a developer's laptop: `rustup target add wasm32-unknown-unknown`), else
# Debian's rustc-web, which builds std from source (machines where rustup
# cannot download the target). CLICKSTREAM_WASM_TOOLCHAIN=debian forces the
# latter.
#
#   bash scripts/build-worker.sh [--out DIR]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

out="$ROOT/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done

ensure_rust
ensure_wasm_bindgen
ensure_node_tools

if [ "${CLICKSTREAM_WASM_TOOLCHAIN:-}" != "debian" ] \
   && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "building the Worker (wasm32, release, rustup's wasm32-unknown-unknown target)"
  WASM_BINDGEN_USE_JS_SYS=1 cargo build --locked -q --lib --profile worker --target wasm32-unknown-unknown \
    --target-dir "$ROOT/target/worker" -p edge-worker
else
  ensure_debian_wasm
  log "building the Worker (wasm32, release, Debian's rustc-web with build-std)"
  env "${DEBIAN_WASM_ENV[@]}" WASM_BINDGEN_USE_JS_SYS=1 \
    /usr/bin/cargo build --locked -q --lib --profile worker --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort --target-dir "$ROOT/target/worker" -p edge-worker
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wasm-bindgen "$ROOT/target/worker/wasm32-unknown-unknown/worker/edge_worker.wasm" \
  --out-dir "$work" --out-name index --target module --no-typescript \
  --experimental-reset-state-function --force-enable-abort-handler
mkdir -p "$out"
npx --no-install wasm-opt -O --strip-debug \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling \
  "$work/index_bg.wasm" -o "$out/index_bg.wasm"
cp "$ROOT/edge-worker/js/entry.js" "$work/entry.js"
npx --no-install esbuild "$work/entry.js" --bundle --format=esm --log-level=warning \
  --external:./index_bg.wasm --external:'cloudflare:*' --outfile="$out/index.js"
# wasm-bindgen's module target imports the wasm as a source-phase import;
# workerd takes the plain form, which gives the same WebAssembly.Module.
sed -i 's/import source /import /' "$out/index.js"

gz() { node -e 'console.log(require("zlib").gzipSync(require("fs").readFileSync(process.argv[1]), { level: 9 }).length)' "$1"; }
echo "Worker built in $out"
printf '  %-14s %8d bytes, %7d gzipped\n' index_bg.wasm "$(wc -c < "$out/index_bg.wasm")" "$(gz "$out/index_bg.wasm")"
printf '  %-14s %8d bytes\n' index.js "$(wc -c < "$out/index.js")"
