# The backend as one small image: `clickstream` (collect, ingest, aggregate,
# Gold, dashboard and its API) on Debian slim, run as a non-root user.
# Not built on the development machines (no Docker there); see the README.
#
#   docker build -t clickstream .
#   docker run -p 8080:8080 -v clickstream-data:/data clickstream serve --bind 0.0.0.0

# --- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The workspace: only what the backend crate and its path dependencies need.
COPY Cargo.toml Cargo.lock ./
COPY schema schema
COPY edge-worker edge-worker
COPY collector-wasm collector-wasm
COPY backend backend
COPY demo-site demo-site
# No debug info and stripped: the release profile keeps debug info for
# profiling, which would make the binary some hundreds of MB.
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p clickstream-backend --bin clickstream \
 && cp target/release/clickstream /clickstream

# --- run --------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin clickstream \
 && mkdir -p /data /app \
 && chown clickstream /data
COPY --from=build /clickstream /usr/local/bin/clickstream
COPY --from=build /src/demo-site /app/demo-site
USER clickstream
WORKDIR /app
ENV CLICKSTREAM_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/clickstream"]
CMD ["serve", "--bind", "0.0.0.0"]
