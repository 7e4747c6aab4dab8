//! The command line's part of the settings. The environment variables
//! named in the help are read by [`super::Settings::resolve`], not by clap,
//! so that one function decides every precedence and tests can pass an
//! environment of their own.

use std::path::PathBuf;

use clap::Args;

/// Flags of every command that works on a data directory.
#[derive(Args, Clone, Debug, Default)]
pub struct CommonFlags {
    /// Data directory (log, Parquet tables, state) [env: CLICKSTREAM_DATA_DIR]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Optional TOML config file; flags and environment override it [env: CLICKSTREAM_CONFIG]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The stream: `embedded` (the durable log in the data directory) or `fluvio` [env: CLICKSTREAM_STREAM]
    #[arg(long, value_parser = ["embedded", "fluvio"])]
    pub stream: Option<String>,
    /// The Fluvio SC's address, HOST:PORT (implies --stream fluvio) [env: CLICKSTREAM_FLUVIO_SC]
    #[arg(long)]
    pub fluvio_sc: Option<String>,
}

/// Flags of `clickstream serve`.
#[derive(Args, Clone, Debug, Default)]
pub struct ServeFlags {
    /// Port to listen on (default 8080; 0 picks a free one) [env: CLICKSTREAM_PORT]
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on (default 127.0.0.1) [env: CLICKSTREAM_BIND]
    #[arg(long)]
    pub bind: Option<String>,
    /// Do not run the aggregator in this process.
    #[arg(long)]
    pub no_aggregate: bool,
    /// Shared secret for signed `/ingest` requests from the edge Worker [env: CLICKSTREAM_INGEST_SECRET]
    #[arg(long)]
    pub ingest_secret: Option<String>,
    /// Accept unsigned `/ingest` requests (local use only).
    #[arg(long)]
    pub allow_unsigned_ingest: bool,
    /// The header trusted proxies give the client IP in (e.g. x-forwarded-for) [env: CLICKSTREAM_CLIENT_IP_HEADER]
    #[arg(long)]
    pub client_ip_header: Option<String>,
    /// Serve `/metrics` and `/health` on this address too, e.g. 10.0.0.5:9100 [env: CLICKSTREAM_ADMIN_BIND]
    #[arg(long)]
    pub admin_bind: Option<String>,
    /// Largest accepted batch body, bytes (default 1 MiB).
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
}
