//! The TOML config file's keys. Flags and environment variables win over
//! it, and defaults fill what none gives: see [`crate::settings`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The TOML file. Every field is optional; unknown fields are an error so a
/// typo does not silently fall back to a default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the log, Parquet tables and state live. Default `./data`.
    pub data_dir: Option<PathBuf>,
    /// Address to listen on. Default `127.0.0.1`.
    pub bind: Option<String>,
    /// Port to listen on. Default 8080.
    pub port: Option<u16>,
    /// Partitions of each topic of the embedded log. Default 4. Fixed when
    /// the log is created.
    pub partitions: Option<u32>,
    /// Largest accepted `/v1/batch` body in bytes. Default 1 MiB.
    pub max_body_bytes: Option<usize>,
    /// Most events in one batch. Default 500.
    pub max_events_per_batch: Option<usize>,
    /// Derive the daily IP-hash salts from this secret. Default: none, and
    /// each day gets a random salt that is deleted the day after (see the
    /// README's Security section for the trade-off).
    pub ip_salt_secret: Option<String>,
    /// Shared secret of the Worker's `/ingest` signatures.
    pub ingest_secret: Option<String>,
    /// More valid `/ingest` secrets, while one is rotated out.
    #[serde(default)]
    pub ingest_secrets: Vec<String>,
    /// Tokens for the dashboard, `/api/*` and `/metrics`: `sha256:<hex>`
    /// (from `clickstream token new`), several so they can be rotated.
    /// Default: none, and `serve` makes one for its run and prints the
    /// dashboard link with it.
    #[serde(default)]
    pub api_tokens: Vec<String>,
    /// Tokens for `/metrics` only (a Prometheus scraper's).
    #[serde(default)]
    pub metrics_tokens: Vec<String>,
    /// A second listener for `/metrics` and `/health`, e.g. `10.0.0.5:9100`.
    pub admin_bind: Option<String>,
    /// Which page origins may post for which site, the shape of the
    /// Worker's `ALLOWED_ORIGINS`: `{ "shop-1" = ["https://shop.example"],
    /// "*" = ["*"] }`. Default: any origin.
    pub allowed_origins: Option<edge_worker::edge::AllowedOrigins>,
    /// Per site: the tokens (`sha256:<hex>`) a sender without `Origin` (a
    /// server) must show as `Authorization: Bearer`. Default: none asked.
    #[serde(default)]
    pub site_tokens: std::collections::HashMap<String, Vec<String>>,
    /// Peers whose forwarding headers give the client address: addresses
    /// or networks. Default: loopback (a proxy on the same machine).
    pub trusted_proxies: Option<Vec<String>>,
    /// Collect requests a minute from one client address. Default 600; 0: no limit.
    pub rate_limit_per_minute: Option<u32>,
    /// Events a minute for one site. Default 1200000; 0: no limit.
    pub site_events_per_minute: Option<u32>,
    /// Longest wait for the stream's acknowledgement before a 503, ms. Default 2000.
    pub ack_timeout_ms: Option<u64>,
    /// Longest time for a request's headers, ms. Default 10000.
    pub header_timeout_ms: Option<u64>,
    /// Longest time for a request's body, ms. Default 10000.
    pub body_timeout_ms: Option<u64>,
    /// Most connections open at once. Default 10000.
    pub max_connections: Option<usize>,
    /// Accept unsigned `/ingest` requests (local use only). Default false.
    pub allow_unsigned_ingest: Option<bool>,
    /// The header a trusted proxy gives the client IP in (for example
    /// `x-forwarded-for`). Default: `cf-connecting-ip`, then
    /// `x-forwarded-for`; read only from `trusted_proxies`.
    pub client_ip_header: Option<String>,
    /// Header with the visitor's country code. Default `cf-ipcountry`.
    pub country_header: Option<String>,
    /// Static site served at `/`. Default: none (`clickstream demo` serves
    /// the demo shop).
    pub site_dir: Option<PathBuf>,
    /// The built tracker (`scripts/build-tracker.sh`). Default: the
    /// repository's `collector-wasm/dist/`, when it was built.
    pub tracker_dir: Option<PathBuf>,
    /// URL path the tracker is served at. Default `/t`. Pick something
    /// neutral of your own: ad-blockers list well-known tracker paths.
    pub tracker_path: Option<String>,
    /// A second path for `POST /v1/batch`, for the same reason (for
    /// example `/api/e`). Default: none.
    pub collect_path: Option<String>,
    /// Lateness horizon in hours: older events are rejected `too_late`.
    /// Default 168 (7 days).
    pub horizon_hours: Option<i64>,
    /// ISO 4217 code the dashboard shows revenue in (Gold sums amounts as
    /// sent, without converting). Default `EUR`.
    pub currency: Option<String>,
    /// The time zone the dashboard's days start in (an IANA name such as
    /// `Europe/Berlin`), for sites without their own. Default `UTC`.
    pub time_zone: Option<String>,
    /// Per site, its own time zone: `{ "shop-1" = "America/New_York" }`.
    #[serde(default)]
    pub site_time_zones: std::collections::HashMap<String, String>,
    pub aggregate: Option<AggregateFileConfig>,
    /// How long each layer keeps its days (`[retention]`).
    pub retention: Option<RetentionFileConfig>,
    /// The Fluvio cluster (`stream = "fluvio"`, or `--stream fluvio`).
    pub fluvio: Option<FluvioFileConfig>,
    /// `embedded` (default: the durable log in `DATA_DIR/log`) or `fluvio`.
    pub stream: Option<String>,
    /// Alert rules (`[[alerts]]`), posted to webhooks; see
    /// `clickstream_backend::alerts::config` for the conditions.
    #[serde(default)]
    pub alerts: Vec<crate::alerts::AlertRule>,
    /// How often alerts are checked and how deliveries are retried.
    pub alerting: Option<crate::alerts::AlertingConfig>,
    /// The props of custom events `custom_events_1h` counts by value
    /// (`["plan", "placement"]`). Default: none, only names.
    #[serde(default)]
    pub custom_event_props: Vec<String>,
    /// Goals (`[[goals]]`), per site or for every site: a page path
    /// pattern, a custom event (with prop values), or a minimum order
    /// revenue; see `clickstream_backend::gold::goals::Goal`.
    #[serde(default)]
    pub goals: Vec<crate::gold::goals::Goal>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateFileConfig {
    /// Pause between polls when nothing is new, ms. Default 1000.
    pub poll_interval_ms: Option<u64>,
    /// A micro-batch starts at most this often unless records are backed
    /// up, ms: fewer, larger micro-batches under a steady load. Default
    /// 1000; 0 starts the next one at once.
    pub batch_interval_ms: Option<u64>,
    /// Most records per partition in one micro-batch. Default 50000.
    pub max_records_per_partition: Option<usize>,
    /// How long event ids are remembered for deduplication. Default 48.
    pub dedup_retention_hours: Option<i64>,
    /// Inactivity that ends a session, minutes. Default 30.
    pub session_gap_minutes: Option<i64>,
    /// How far the watermark trails the latest event time, minutes: a
    /// Gold window is `is_final` once the watermark passed it. Default 10.
    pub allowed_lateness_minutes: Option<i64>,
    /// More events than this from one visitor in one minute flags a bot.
    /// Default 50.
    pub bot_events_per_minute: Option<u32>,
    /// How often the maintenance round runs (compaction of final
    /// partitions, expired days, the log's trim), minutes; 0 turns it off
    /// (`clickstream compact` and `expire` still work). Default 10.
    pub maintenance_every_minutes: Option<u64>,
    /// The same in seconds, for tests that need compaction to run while
    /// they watch (the chaos suite); wins over the minutes when both are set.
    pub maintenance_every_seconds: Option<u64>,
}

/// `[retention]`: days each layer keeps; a layer left out is kept forever.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFileConfig {
    pub bronze_days: Option<u32>,
    pub silver_days: Option<u32>,
    pub rejects_days: Option<u32>,
    pub gold_days: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FluvioFileConfig {
    /// The SC's public address, `host:port`. Default `127.0.0.1:9003`.
    pub sc: Option<String>,
    /// Partitions of each topic when it is created. Default: `partitions`, or 4.
    pub partitions: Option<u32>,
    /// Replicas of each partition when a topic is created. Default 1.
    pub replication: Option<u32>,
    /// Put before the topic names. Default none.
    pub topic_prefix: Option<String>,
    /// Producer batch size per partition, bytes. Default 262144.
    pub batch_bytes: Option<usize>,
    /// How long the producer waits to fill a batch, ms. Default 5.
    pub linger_ms: Option<u64>,
    /// `none`, `gzip`, `snappy`, `lz4` (default) or `zstd`.
    pub compression: Option<String>,
    /// Longest wait for a connect, an acknowledgement or a fetch, ms. Default 10000.
    pub timeout_ms: Option<u64>,
    /// Mutual TLS: the server's name, and PEM files of the CA, the client
    /// certificate and its key. All four, or none.
    pub tls_domain: Option<String>,
    pub tls_ca_cert: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// TLS without checking the server's certificate (testing only).
    pub tls_no_verify: Option<bool>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let err = toml::from_str::<FileConfig>("prot = 8080").unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
        let ok: FileConfig = toml::from_str("port = 9000\n[aggregate]\npoll_interval_ms = 5").unwrap();
        assert_eq!(ok.port, Some(9000));
        assert_eq!(ok.aggregate.unwrap().poll_interval_ms, Some(5));
    }
}
