//! The defaults of the settings that have no component of their own to
//! default them, each written here once. The others (batch limits, rate
//! limits, timeouts, the aggregator's intervals, Fluvio's producer) are
//! defaulted by the component's own `new` or `Default`.

use std::path::{Path, PathBuf};

/// Where the log, the Parquet tables and the state live.
pub const DATA_DIR: &str = "data";
pub const BIND: &str = "127.0.0.1";
pub const PORT: u16 = 8080;
/// Partitions of each topic of the embedded log (fixed when it is created).
pub const PARTITIONS: u32 = 4;
/// The Fluvio SC's public address.
pub const FLUVIO_SC: &str = "127.0.0.1:9003";
/// The header Cloudflare gives the visitor's country in.
pub const COUNTRY_HEADER: &str = "cf-ipcountry";
/// The URL path the tracker is served at.
pub const TRACKER_PATH: &str = "/t";
pub const CURRENCY: &str = "EUR";
/// Peers trusted to give the client address: a proxy on the same machine.
pub const TRUSTED_PROXIES: [&str; 2] = ["127.0.0.0/8", "::1"];

/// The demo site shipped with the repository, when run from a checkout.
pub fn site_dir() -> Option<PathBuf> {
    let local = PathBuf::from("demo-site");
    if local.is_dir() {
        return Some(local);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-site");
    repo.is_dir().then_some(repo)
}

/// The tracker built in the repository (`scripts/build-tracker.sh`), when run from a checkout.
pub fn tracker_dir() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector-wasm/dist");
    [PathBuf::from("collector-wasm/dist"), repo].into_iter().find(|d| d.is_dir())
}

/// The demo's lateness horizon: it backfills [`DEMO_HISTORY_DAYS`] of
/// history, so that retention has weeks to show.
pub const DEMO_HORIZON_MS: i64 = (DEMO_HISTORY_DAYS + 2) * 24 * 3_600_000;

/// Days of thin history the demo sends before its live traffic.
pub const DEMO_HISTORY_DAYS: i64 = 27;
