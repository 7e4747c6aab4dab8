//! Options of `clickstream generate` (its flags among them) and the
//! report it returns.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to generate and where to send. `Default` gives the tracker's own
/// batching (20 events) and a small, realistic share of bad input.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Base URL like `http://127.0.0.1:8080` (POST `{target}/v1/batch`); a URL
    /// that already has a non-root path is used as is.
    pub target: String,
    /// Events per second, paced against the wall clock (real-time mode).
    /// `None` = fast mode: replay a simulated history ending "now" as fast as
    /// the server accepts it.
    pub rate: Option<f64>,
    /// Stop after this many generated events (valid + malformed, each counted
    /// once, resends not counted). `None` = until stopped.
    pub events: Option<u64>,
    pub seed: u64,
    /// NDJSON file with one line per event per delivered send.
    pub out: Option<PathBuf>,
    pub site_id: String,
    /// Max events per batch (the tracker's default is 20).
    pub batch_size: usize,
    /// Concurrent HTTP senders.
    pub concurrency: usize,
    /// Share of events corrupted on purpose (each with its expected reason).
    pub malformed_share: f64,
    /// Share of batches sent twice with the same body (a tracker retrying
    /// after a lost response).
    pub duplicate_share: f64,
    /// Share of events held back and sent minutes to hours later.
    pub late_share: f64,
    /// Share of new visitors that are bots (crawlers and burst clients).
    pub bot_share: f64,
    /// Start of the simulated clock (ms since the epoch). Default: now in
    /// real-time mode; in fast mode far enough back for the run to end now.
    pub start_ms: Option<i64>,
    /// The server's lateness horizon (its `horizon_hours`, a week unless
    /// configured): no event is generated older than a day less, so a
    /// history reaching further back needs a server that accepts it.
    pub horizon_ms: i64,
    /// Retry a send for this long instead of giving up after a few
    /// attempts: a sender that must not lose anything while the server is
    /// restarted or its disk is full (the chaos suite).
    pub retry_for: Option<Duration>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8080".to_string(),
            rate: None,
            events: None,
            seed: 1,
            out: None,
            site_id: "shop-1".to_string(),
            batch_size: 20,
            concurrency: 4,
            malformed_share: 0.01,
            duplicate_share: 0.02,
            late_share: 0.01,
            bot_share: 0.03,
            start_ms: None,
            horizon_ms: 7 * 24 * 3_600_000,
            retry_for: None,
        }
    }
}

/// The flags of `clickstream generate`. Defaults are `GenerateOptions`'s,
/// except the seed (42, as `demo`'s).
#[derive(clap::Args, Clone, Debug)]
pub struct GenerateArgs {
    /// Collector base URL (…/v1/batch is appended) or full endpoint URL.
    #[arg(long, default_value_t = GenerateOptions::default().target)]
    pub target: String,
    /// Events per second; as fast as possible when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this many events (default: until Ctrl-C).
    #[arg(long)]
    pub events: Option<u64>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write every event sent as NDJSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = GenerateOptions::default().site_id)]
    pub site_id: String,
    /// Events per batch (the tracker sends at most 20).
    #[arg(long, default_value_t = GenerateOptions::default().batch_size)]
    pub batch_size: usize,
    /// Concurrent HTTP senders.
    #[arg(long, default_value_t = GenerateOptions::default().concurrency)]
    pub concurrency: usize,
    /// Share of events deliberately malformed.
    #[arg(long, default_value_t = GenerateOptions::default().malformed_share)]
    pub malformed_share: f64,
    /// Share of batches sent twice (a retry after a lost response).
    #[arg(long, default_value_t = GenerateOptions::default().duplicate_share)]
    pub duplicate_share: f64,
    /// Keep retrying each send for up to this many seconds (default: give
    /// up after 8 attempts, about 20 seconds).
    #[arg(long)]
    pub retry_for: Option<u64>,
    /// Spread the events over this many days ending now (retention needs
    /// weeks); more than 6 needs the server's horizon_hours, given here
    /// too with --horizon-hours.
    #[arg(long)]
    pub history_days: Option<f64>,
    /// The server's horizon_hours (default 168): events are never older.
    #[arg(long, default_value_t = 168)]
    pub horizon_hours: i64,
}

impl From<GenerateArgs> for GenerateOptions {
    fn from(args: GenerateArgs) -> Self {
        GenerateOptions {
            target: args.target,
            rate: args.rate,
            events: args.events,
            seed: args.seed,
            out: args.out,
            site_id: args.site_id,
            batch_size: args.batch_size,
            concurrency: args.concurrency,
            malformed_share: args.malformed_share,
            duplicate_share: args.duplicate_share,
            retry_for: args.retry_for.map(Duration::from_secs),
            start_ms: args.history_days.map(|days| now_ms() - (days * 86_400_000.0) as i64),
            horizon_ms: args.horizon_hours * 3_600_000,
            ..GenerateOptions::default()
        }
    }
}

fn now_ms() -> i64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now_ms()
}

/// Options that cannot produce sensible traffic.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("target must be an http:// URL, got {0:?}")]
    Target(String),
    #[error("rate must be a positive number of events per second, got {0}")]
    Rate(f64),
    #[error("{name} must be between 0 and 1, got {value}")]
    Share { name: &'static str, value: f64 },
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("site_id must not be empty")]
    SiteId,
}

impl GenerateOptions {
    /// Rejects options `run` cannot honour. The planner itself clamps instead,
    /// so tests can feed it anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.endpoint()?;
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(ConfigError::Rate(r));
            }
        }
        for (name, value) in [
            ("malformed_share", self.malformed_share),
            ("duplicate_share", self.duplicate_share),
            ("late_share", self.late_share),
            ("bot_share", self.bot_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Share { name, value });
            }
        }
        if self.batch_size == 0 {
            return Err(ConfigError::Zero("batch_size"));
        }
        if self.concurrency == 0 {
            return Err(ConfigError::Zero("concurrency"));
        }
        if self.site_id.is_empty() {
            return Err(ConfigError::SiteId);
        }
        Ok(())
    }

    /// The URL batches are POSTed to: `{target}/v1/batch`, unless the target
    /// already names a path (a proxy or a Worker route), which is kept as is.
    pub fn endpoint(&self) -> Result<reqwest::Url, ConfigError> {
        let mut url = reqwest::Url::parse(self.target.trim()).map_err(|_| ConfigError::Target(self.target.clone()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ConfigError::Target(self.target.clone()));
        }
        if url.path().is_empty() || url.path() == "/" {
            url.set_path("/v1/batch");
        }
        Ok(url)
    }
}

/// What a run did. Counts are of events generated (each once) and of HTTP
/// sends; `valid_distinct` and `malformed` count only events of batches that
/// reached the server at least once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerateReport {
    /// Events generated (valid + malformed, resends not counted).
    pub events: u64,
    /// Delivered events that should be accepted (distinct event ids).
    pub valid_distinct: u64,
    /// Delivered events corrupted on purpose.
    pub malformed: u64,
    /// Planned batches sent (not counting deliberate resends).
    pub batches: u64,
    /// Deliberate resends of an already sent body.
    pub duplicate_batches: u64,
    /// Extra attempts after 429/503 or a connection error.
    pub retries: u64,
    /// Sends that never got a 2xx.
    pub failed_batches: u64,
    /// Why the latest of them failed (status and body, or the last error).
    pub last_failure: Option<String>,
    pub elapsed: Duration,
}

impl fmt::Display for GenerateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events ({} valid delivered, {} malformed) in {} batches (+{} duplicates), \
             {} retries, {} failed, {:.1}s",
            self.events,
            self.valid_distinct,
            self.malformed,
            self.batches,
            self.duplicate_batches,
            self.retries,
            self.failed_batches,
            self.elapsed.as_secs_f64()
        )?;
        if let Some(why) = &self.last_failure {
            write!(f, "; last failure: {why}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_appends_the_collect_path_only_to_bare_hosts() {
        let mut o = GenerateOptions::default();
        assert_eq!(o.endpoint().unwrap().as_str(), "http://127.0.0.1:8080/v1/batch");
        o.target = "http://localhost:9000/".into();
        assert_eq!(o.endpoint().unwrap().as_str(), "http://localhost:9000/v1/batch");
        o.target = "http://localhost:9000/edge/v1/batch".into();
        assert_eq!(o.endpoint().unwrap().as_str(), "http://localhost:9000/edge/v1/batch");
        o.target = "not a url".into();
        assert!(o.validate().is_err());
    }

    #[test]
    fn validate_rejects_nonsense() {
        assert_eq!(GenerateOptions::default().validate(), Ok(()));
        let o = GenerateOptions { rate: Some(0.0), ..Default::default() };
        assert!(matches!(o.validate(), Err(ConfigError::Rate(_))));
        let o = GenerateOptions { bot_share: 1.5, ..Default::default() };
        assert!(matches!(o.validate(), Err(ConfigError::Share { name: "bot_share", .. })));
        let o = GenerateOptions { batch_size: 0, ..Default::default() };
        assert_eq!(o.validate(), Err(ConfigError::Zero("batch_size")));
    }
}
