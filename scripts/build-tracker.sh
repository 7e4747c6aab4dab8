#!/usr/bin/env bash
# Builds the browser tracker into a folder ready to serve:
#   NAME.js        the entry point pages import: collector-wasm/js/loader.js
#                  and wasm-bindgen's glue, bundled and minified by esbuild
#   NAME_bg.wasm   the tracker, optimised for size by wasm-opt
# and prints their gzipped sizes. `clickstream serve` serves the folder at
# /t/ (see --tracker-dir, --tracker-path). A neutral NAME and path let a
# site serve it first-party under names ad-blockers do not list.
#
#   bash scripts/build-tracker.sh [--out DIR] [--name NAME]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

out="$ROOT/collector-wasm/dist"
name="clickstream"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    *) echo "usage: $0 [--out DIR] [--name NAME]" >&2; exit 2 ;;
  esac
done
case "$name" in
  *[!A-Za-z0-9_-]*|"") echo "error: --name takes letters, digits, - and _ only" >&2; exit 2 ;;
esac

ensure_rust
ensure_debian_wasm
ensure_wasm_bindgen
ensure_node_tools

log "building the tracker (wasm32, size-optimised)"
env "${DEBIAN_WASM_ENV[@]}" \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none" \
  /usr/bin/cargo build --locked -q --target wasm32-unknown-unknown --profile tracker \
  -Zbuild-std=std,panic_abort --target-dir "$ROOT/target/tracker" -p collector-wasm

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The glue is named NAME, and the loader fetches NAME_bg.wasm beside itself.
wasm-bindgen "$ROOT/target/tracker/wasm32-unknown-unknown/tracker/collector_wasm.wasm" \
  --out-dir "$work" --out-name "$name" --target web --no-typescript
sed "s|__CORE__|${name}|g" "$ROOT/collector-wasm/js/loader.js" > "$work/entry.js"
mkdir -p "$out"
rm -f "$out/${name}.js" "$out/${name}_bg.wasm"
# Beyond -Oz (measured on the tracker's wasm, gzipped): flattening and
# re-looping the control flow, twice, then -Oz until nothing shrinks
# (-258 bytes); and offsets folded into addresses, since Rust never uses
# the lowest 1 KB of memory, where the stack would already have
# overflowed (-119).
npx --no-install wasm-opt --flatten --rereloop -Oz --flatten --rereloop -Oz --converge \
  --low-memory-unused --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types \
  "$work/${name}_bg.wasm" -o "$out/${name}_bg.wasm"
npx --no-install esbuild "$work/entry.js" --bundle --format=esm --minify --log-level=warning \
  --target=es2020 --outfile="$out/${name}.js"

# zlib level 9, as collector-wasm/e2e/size.test.mjs measures the budget.
gz() { node -e 'console.log(require("zlib").gzipSync(require("fs").readFileSync(process.argv[1]), { level: 9 }).length)' "$1"; }
wasm=$(gz "$out/${name}_bg.wasm"); js=$(gz "$out/${name}.js")
echo "tracker built in $out"
printf '  %-16s %6d bytes gzipped\n' "${name}_bg.wasm" "$wasm" "${name}.js" "$js"
total=$((wasm + js))
if [ "$total" -le 20000 ]; then verdict="within the 20000-byte budget"; else verdict="OVER the 20000-byte budget by $((total - 20000))"; fi
printf '  %-16s %6d bytes gzipped, %s\n' "total" "$total" "$verdict"
