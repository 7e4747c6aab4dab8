#!/usr/bin/env bash
# Installs what the project needs, idempotently. Sourced by scripts/demo.sh
# and scripts/test.sh; each step is skipped when already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_updated=""
# apt_install PKG...: installs the Debian packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ensure_rust: a Rust toolchain with cargo (rustup's, as on these machines).
ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "error: no Rust toolchain found; install one from https://rustup.rs and rerun" >&2
      exit 1
    fi
  fi
  command -v cc >/dev/null 2>&1 || apt_install build-essential
}

# ensure_wasm_target: builds for wasm32-unknown-unknown. rustup's target
# when it can be downloaded; otherwise Debian's rustc-web, which builds std
# from source. Sets WASM_CARGO (an absolute path: the two toolchains both
# call their binary `cargo`) and WASM_BUILD_STD.
ensure_wasm_target() {
  if [ "${CLICKSTREAM_WASM_TOOLCHAIN:-}" != "debian" ] && { rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$' \
     || rustup target add wasm32-unknown-unknown >/dev/null 2>&1; }; then
    WASM_CARGO="$(command -v cargo)"
    WASM_BUILD_STD=""
    return 0
  fi
  apt_install rustc-web cargo-web rust-web-src lld-19
  WASM_CARGO="/usr/bin/cargo"
  WASM_BUILD_STD="-Zbuild-std=std,panic_abort"
  export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld
}

# ensure_python_polars: a virtual environment in .venv with Polars and
# DuckDB, for the analysts' checks (examples/analyze.py), and moto's S3
# server, for the tests of a data directory in a bucket. Exports
# CLICKSTREAM_PYTHON.
ensure_python_polars() {
  local venv="$ROOT/.venv"
  if ! "$venv/bin/python" -c 'import polars, duckdb' >/dev/null 2>&1 || [ ! -x "$venv/bin/moto_server" ]; then
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
    log "pip install polars duckdb moto[server] (into .venv)"
    "$venv/bin/pip" install -q --disable-pip-version-check polars duckdb 'moto[server]'
  fi
  export CLICKSTREAM_PYTHON="$venv/bin/python"
}

# ensure_debian_wasm: Debian's rustc-web, whose std source lets the tracker
# be built with build-std and the immediate-abort panic strategy (the size
# budget needs both; rustup's prebuilt wasm32 std cannot do it). Sets
# DEBIAN_WASM_ENV: the environment of that cargo, for `env`.
ensure_debian_wasm() {
  apt_install rustc-web cargo-web rust-web-src lld-19
  DEBIAN_WASM_ENV=(PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld)
}

# ensure_wasm_bindgen: the CLI matching the pinned library (0.2.130).
ensure_wasm_bindgen() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen 0.2.130" ]; then
    log "cargo install wasm-bindgen-cli 0.2.130 (about 5 minutes, once)"
    # Not --locked: its lock file pins a crate version the registry no longer has.
    cargo install -q wasm-bindgen-cli --version 0.2.130
  fi
}

# ensure_node_tools: binaryen (wasm-opt), esbuild, playwright-core, workerd, and what the
# backend embeds (the referrer list, ECharts), from package-lock.json.
ensure_node_tools() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  if [ ! -f "$ROOT/node_modules/.package-lock.json" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    log "npm ci (wasm-opt, esbuild, playwright-core, workerd, the referrer list, ECharts)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# ensure_chromium: Debian's headless Chromium and its WebDriver, for the
# browser tests (no tool may download a browser of its own).
ensure_chromium() {
  apt_install chromium chromium-driver
}
