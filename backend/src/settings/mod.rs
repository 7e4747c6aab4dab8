//! Settings: what a command runs with, resolved once from its flags, the
//! environment, the TOML file and the defaults, the first that gives a
//! value winning (flag > environment > file > default).
//!
//! - `flags.rs`: the command line's part (clap).
//! - [`crate::config`]: the file's keys.
//! - `defaults.rs`: each default, written once.
//! - `stream.rs`, `server.rs`: the stream's and the server's settings.
//!
//! The environment is passed in as a lookup, so tests need not touch the
//! process's. Keys a command does not use are not resolved for it, so a
//! bad one does not stop it (as before: `aggregate` ignores the server's).

pub mod defaults;
mod flags;
mod server;
mod stream;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use flags::{CommonFlags, ServeFlags};

use crate::aggregate::AggregateConfig;
use crate::config::FileConfig;
use crate::serve::ServeSettings;
use crate::storage::lake;
use crate::stream::FluvioSettings;

/// Reads one environment variable: [`process_env`], or a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment. A value that is not UTF-8 counts as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The command line: the common flags and the command's own.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub common: CommonFlags,
    pub command: CommandFlags,
}

/// Which command the settings are for, with its flags.
#[derive(Clone, Debug)]
pub enum CommandFlags {
    Serve(ServeFlags),
    /// `demo` takes only `--port` (and `CLICKSTREAM_PORT`) of the server's
    /// flags: it is open to everyone, so a `CLICKSTREAM_BIND` meant for a
    /// real server must not expose it.
    Demo {
        port: Option<u16>,
    },
    /// `aggregate`, owning only `partitions` when given.
    Aggregate {
        partitions: Option<Vec<u32>>,
    },
    Gold,
    Replay,
    Compact,
}

impl Default for CommandFlags {
    fn default() -> Self {
        CommandFlags::Serve(ServeFlags::default())
    }
}

/// Everything `serve`, `demo`, `aggregate`, `gold` and `replay` run with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Partitions of the embedded log.
    pub partitions: u32,
    /// The Fluvio cluster when the stream is Fluvio. Resolved for the
    /// commands that open the stream (`serve`, `demo`, `aggregate`) only.
    pub fluvio: Option<FluvioSettings>,
    /// The aggregator's settings, Gold's among them.
    pub aggregate: AggregateConfig,
    /// The server's settings, for `serve` and `demo` only.
    pub server: Option<ServeSettings>,
}

impl Settings {
    /// Reads the config file (`--config` or `CLICKSTREAM_CONFIG`), then
    /// resolves.
    pub fn load(flags: &Flags, env: Env) -> anyhow::Result<Settings> {
        let path = flags.common.config.clone().or_else(|| env("CLICKSTREAM_CONFIG").map(PathBuf::from));
        let file = FileConfig::load(path.as_deref())?;
        Settings::resolve(flags, env, &file)
    }

    /// The settings of `flags.command`, each value from its flag, else
    /// its environment variable, else the file, else the default.
    pub fn resolve(flags: &Flags, env: Env, file: &FileConfig) -> anyhow::Result<Settings> {
        let data_dir = flags
            .common
            .data_dir
            .clone()
            .or_else(|| env("CLICKSTREAM_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR));
        let partitions = file.partitions.unwrap_or(defaults::PARTITIONS);
        let fluvio = match flags.command {
            CommandFlags::Gold | CommandFlags::Replay | CommandFlags::Compact => None,
            _ => stream::fluvio(&flags.common, env, file, partitions)?,
        };
        let mut aggregate = aggregate_config(&data_dir, file)?;
        if matches!(flags.command, CommandFlags::Demo { .. })
            && file.goals.is_empty()
            && file.custom_event_props.is_empty()
        {
            // The demo shop's goals, so its goal panels have something to show.
            aggregate.gold.get_or_insert_with(Default::default).goals = crate::gold::goals::shop_goals();
        }
        if let CommandFlags::Aggregate { partitions: Some(owned) } = &flags.command {
            aggregate.partitions = Some(owned.clone());
        }
        let server = match &flags.command {
            CommandFlags::Serve(serve) => {
                let serve = server::with_env(serve, env)?;
                let mut s = server::resolve(&serve, env, file, &data_dir)?;
                s.aggregate = (!serve.no_aggregate).then(|| aggregate.clone());
                Some(s)
            }
            CommandFlags::Demo { port } => {
                let serve = ServeFlags { port: or_env(*port, env, "CLICKSTREAM_PORT")?, ..ServeFlags::default() };
                let mut s = server::resolve(&serve, env, file, &data_dir)?;
                s.aggregate = Some(aggregate.clone());
                server::open_for_the_demo(&mut s);
                if file.horizon_hours.is_none() {
                    // Room for the demo's weeks of history (retention).
                    s.limits.horizon_ms = s.limits.horizon_ms.max(defaults::DEMO_HORIZON_MS);
                }
                Some(s)
            }
            _ => None,
        };
        let server = server.map(|mut s| {
            s.partitions = partitions;
            s.fluvio = fluvio.clone();
            s
        });
        Ok(Settings { data_dir, partitions, fluvio, aggregate, server })
    }

    /// Creates the data directory if it does not exist yet. A bucket's
    /// is not created, but listed: wrong credentials, a missing bucket or
    /// an unreachable endpoint fail here, by name, not at the first commit.
    pub fn create_data_dir(&self) -> anyhow::Result<()> {
        if lake::is_remote(&self.data_dir) {
            lake::list(&self.data_dir.join("_state")).with_context(|| {
                format!(
                    "cannot use {} (check the bucket, and the AWS_* settings: AWS_ACCESS_KEY_ID, \
                     AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL)",
                    self.data_dir.display()
                )
            })?;
            return Ok(());
        }
        std::fs::create_dir_all(&self.data_dir).with_context(|| format!("cannot create {}", self.data_dir.display()))
    }

    /// Refuses an S3 data directory for the commands that still need a
    /// local one, by name, before anything is written.
    pub fn require_local(&self, command: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            !lake::is_remote(&self.data_dir),
            "`{command}` needs a local data directory; an s3:// one works with `aggregate` (with stream = \"fluvio\"), \
             `gold` and `query` (see the README's \"Parquet on object storage\")"
        );
        Ok(())
    }

    /// The server's settings (resolved for `serve` and `demo`).
    pub fn into_server(self) -> anyhow::Result<ServeSettings> {
        self.server.context("the server's settings are resolved for `serve` and `demo` only")
    }
}

/// The flag, else the environment variable `name` parsed, else `None`.
fn or_env<T: std::str::FromStr>(flag: Option<T>, env: Env, name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match (flag, env(name)) {
        (Some(value), _) => Ok(Some(value)),
        (None, Some(text)) => {
            text.parse().map(Some).map_err(|e| anyhow::anyhow!("{name}: invalid value {text:?}: {e}"))
        }
        (None, None) => Ok(None),
    }
}

/// The aggregator's settings: its own defaults, with the file's
/// `[aggregate]` keys over them.
fn aggregate_config(data_dir: &Path, file: &FileConfig) -> anyhow::Result<AggregateConfig> {
    let mut c = AggregateConfig::new(data_dir);
    if !file.goals.is_empty() || !file.custom_event_props.is_empty() {
        let goals = crate::gold::goals::Goals::new(file.goals.clone(), file.custom_event_props.clone())
            .map_err(|e| anyhow::anyhow!("config file: {e}"))?;
        c.gold.get_or_insert_with(Default::default).goals = goals;
    }
    if file.time_zone.is_some() || !file.site_time_zones.is_empty() {
        let zones = crate::zones::Zones::new(file.time_zone.as_deref(), &file.site_time_zones)
            .map_err(|e| anyhow::anyhow!("config file: {e}"))?;
        c.gold.get_or_insert_with(Default::default).zones = zones;
    }
    if let Some(r) = &file.retention {
        c.retention = crate::storage::retention::Retention {
            bronze_days: r.bronze_days,
            silver_days: r.silver_days,
            rejects_days: r.rejects_days,
            gold_days: r.gold_days,
        };
        c.retention.check().map_err(anyhow::Error::msg)?;
    }
    if let Some(a) = &file.aggregate {
        if let Some(ms) = a.poll_interval_ms {
            c.poll_interval = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = a.batch_interval_ms {
            c.batch_interval = std::time::Duration::from_millis(ms);
        }
        if let Some(n) = a.max_records_per_partition {
            c.max_records_per_partition = n;
        }
        if let Some(h) = a.dedup_retention_hours {
            c.dedup_retention_ms = h * 3_600_000;
        }
        if let Some(m) = a.session_gap_minutes {
            c.gold.get_or_insert_with(Default::default).session_gap_ms = m * 60_000;
        }
        if let Some(m) = a.allowed_lateness_minutes {
            c.gold.get_or_insert_with(Default::default).allowed_lateness_ms = m * 60_000;
        }
        if let Some(n) = a.bot_events_per_minute {
            c.gold.get_or_insert_with(Default::default).bot_events_per_minute = n;
        }
        if let Some(m) = a.maintenance_every_minutes {
            c.maintenance_every = (m > 0).then(|| std::time::Duration::from_secs(m * 60));
        }
        if let Some(s) = a.maintenance_every_seconds {
            c.maintenance_every = (s > 0).then(|| std::time::Duration::from_secs(s));
        }
    }
    Ok(c)
}
