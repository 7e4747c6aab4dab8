//! The storage layout analysts depend on (DESIGN.md):
//!
//! ```text
//! DATA_DIR/bronze/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet
//! DATA_DIR/silver/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet
//! DATA_DIR/rejects/dt=YYYY-MM-DD/part-*.parquet
//! DATA_DIR/gold/<table>/dt=YYYY-MM-DD/part-HH.parquet
//! ```
//!
//! Hive-style partition directories, so `pl.scan_parquet(...,
//! hive_partitioning=True)` and DuckDB's `hive_partitioning=1` both read
//! them. The partition columns live in the path, not in the files. A Gold
//! table holds one file per hour of its time column, replaced whole when
//! the hour changes; Bronze, Silver and rejects only ever gain files.

use std::path::{Path, PathBuf};

use clickstream_schema::time::{utc_date_string, utc_hour, HOUR_MS};

/// A table of the data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// Raw accepted events plus ingest metadata, partitioned by arrival
    /// time (`received_at`): append-only, never rewritten.
    Bronze,
    /// Typed, deduplicated, enriched events, partitioned by event time.
    Silver,
    /// Bad rows with their reason, partitioned by arrival day.
    Rejects,
}

impl Table {
    /// The table's root, relative to the data directory.
    pub fn root(self) -> &'static str {
        match self {
            Table::Bronze => "bronze/events",
            Table::Silver => "silver/events",
            Table::Rejects => "rejects",
        }
    }

    /// The partition directory (relative) holding a row of this table with
    /// the given partition timestamp (ms).
    pub fn partition_dir(self, ts_ms: i64) -> PathBuf {
        let mut dir = PathBuf::from(self.root());
        dir.push(format!("dt={}", utc_date_string(ts_ms)));
        if self != Table::Rejects {
            dir.push(format!("hour={:02}", utc_hour(ts_ms)));
        }
        dir
    }

    /// The partition key (hours or days since the epoch) of a timestamp:
    /// rows with the same key share a partition directory.
    pub fn partition_key(self, ts_ms: i64) -> i64 {
        match self {
            Table::Rejects => ts_ms.div_euclid(24 * HOUR_MS),
            _ => ts_ms.div_euclid(HOUR_MS),
        }
    }

    /// A timestamp inside the partition of a key (its start).
    pub fn partition_start(self, key: i64) -> i64 {
        match self {
            Table::Rejects => key * 24 * HOUR_MS,
            _ => key * HOUR_MS,
        }
    }
}

/// Every Gold table, by the name `query` registers it under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GoldTable {
    Traffic1m,
    TopPages1h,
    PageTransitions1h,
    Revenue5m,
    Conversion10m,
    Sessions,
    Funnel1h,
    EntryPages1h,
    ExitPages1h,
    Sources1h,
    ProductPerformance1h,
    Goals1h,
    CustomEvents1h,
    LinkClicks1h,
    Engagement1h,
    BotAnomalies,
    DimUsers,
    DimPages,
    DimProducts,
    IdentityMap,
    DimDate,
    RetentionWeekly,
    RetentionDaily,
}

impl GoldTable {
    pub const ALL: [GoldTable; 23] = [
        GoldTable::Traffic1m,
        GoldTable::TopPages1h,
        GoldTable::PageTransitions1h,
        GoldTable::Revenue5m,
        GoldTable::Conversion10m,
        GoldTable::Sessions,
        GoldTable::Funnel1h,
        GoldTable::EntryPages1h,
        GoldTable::ExitPages1h,
        GoldTable::Sources1h,
        GoldTable::ProductPerformance1h,
        GoldTable::Goals1h,
        GoldTable::CustomEvents1h,
        GoldTable::LinkClicks1h,
        GoldTable::Engagement1h,
        GoldTable::BotAnomalies,
        GoldTable::DimUsers,
        GoldTable::DimPages,
        GoldTable::DimProducts,
        GoldTable::IdentityMap,
        GoldTable::DimDate,
        GoldTable::RetentionWeekly,
        GoldTable::RetentionDaily,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GoldTable::Traffic1m => "traffic_1m",
            GoldTable::TopPages1h => "top_pages_1h",
            GoldTable::PageTransitions1h => "page_transitions_1h",
            GoldTable::Revenue5m => "revenue_5m",
            GoldTable::Conversion10m => "conversion_10m",
            GoldTable::Sessions => "sessions",
            GoldTable::Funnel1h => "funnel_1h",
            GoldTable::EntryPages1h => "entry_pages_1h",
            GoldTable::ExitPages1h => "exit_pages_1h",
            GoldTable::Sources1h => "sources_1h",
            GoldTable::ProductPerformance1h => "product_performance_1h",
            GoldTable::Goals1h => "goals_1h",
            GoldTable::CustomEvents1h => "custom_events_1h",
            GoldTable::LinkClicks1h => "link_clicks_1h",
            GoldTable::Engagement1h => "engagement_1h",
            GoldTable::BotAnomalies => "bot_anomalies",
            GoldTable::DimUsers => "dim_users",
            GoldTable::DimPages => "dim_pages",
            GoldTable::DimProducts => "dim_products",
            GoldTable::IdentityMap => "identity_map",
            GoldTable::DimDate => "dim_date",
            GoldTable::RetentionWeekly => "retention_weekly",
            GoldTable::RetentionDaily => "retention_daily",
        }
    }

    pub fn from_name(name: &str) -> Option<GoldTable> {
        GoldTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The time column whose UTC date names the table's `dt=` partition.
    pub fn partition_column(self) -> &'static str {
        match self {
            GoldTable::Traffic1m | GoldTable::Revenue5m | GoldTable::Conversion10m | GoldTable::BotAnomalies => {
                "window_start"
            }
            GoldTable::TopPages1h
            | GoldTable::PageTransitions1h
            | GoldTable::Funnel1h
            | GoldTable::EntryPages1h
            | GoldTable::ExitPages1h
            | GoldTable::Sources1h
            | GoldTable::ProductPerformance1h
            | GoldTable::Goals1h
            | GoldTable::CustomEvents1h
            | GoldTable::LinkClicks1h
            | GoldTable::Engagement1h => "hour_start",
            GoldTable::Sessions => "session_start",
            GoldTable::DimUsers | GoldTable::DimPages | GoldTable::DimProducts | GoldTable::IdentityMap => "first_seen",
            GoldTable::DimDate => "day_start",
            GoldTable::RetentionWeekly | GoldTable::RetentionDaily => "cohort_start",
        }
    }

    /// The file (relative to the data directory) of the table's rows whose
    /// time column falls in `hour` (hours since the epoch).
    pub fn hour_file(self, hour: i64) -> PathBuf {
        let ts = hour * HOUR_MS;
        self.dir().join(format!("dt={}", utc_date_string(ts))).join(format!("part-{:02}.parquet", utc_hour(ts)))
    }
}

/// The day (since the epoch) a `dt=YYYY-MM-DD` partition directory names.
pub fn partition_day(dir: &Path) -> Option<i64> {
    let date = dir.file_name()?.to_str()?.strip_prefix("dt=")?;
    let mut it = date.split('-').map(|p| p.parse::<u32>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    Some(clickstream_schema::time::days_from_civil(i64::from(y), m, d))
}

/// Where a table lives, so one reader serves every table.
pub trait TableDir: Copy {
    /// The table's directory, relative to the data directory.
    fn dir(self) -> PathBuf;
}

impl TableDir for Table {
    fn dir(self) -> PathBuf {
        PathBuf::from(self.root())
    }
}

impl TableDir for GoldTable {
    fn dir(self) -> PathBuf {
        PathBuf::from("gold").join(self.name())
    }
}

/// Where `clickstream replay` builds, inside the data directory (storage
/// knows it so that compaction leaves Bronze alone while a replay, which
/// counts Bronze files, is under way).
pub const REPLAY_DIR: &str = "_replay";

/// The glob analysts (and the query engine) read a whole table with.
pub fn glob(data_dir: &Path, table: impl TableDir) -> String {
    format!("{}/{}/**/*.parquet", data_dir.display(), table.dir().display())
}

/// Every published Parquet file under `root`, sorted by path (for Bronze:
/// arrival hour, then commit number, i.e. arrival order). Missing roots
/// have none.
pub fn parquet_files(root: &Path) -> Vec<PathBuf> {
    if super::lake::is_remote(root) {
        return match super::lake::list(root) {
            Ok(objects) => objects.into_iter().filter(|p| p.extension().is_some_and(|x| x == "parquet")).collect(),
            Err(e) => {
                // As a missing directory does locally: the caller's next
                // listing (or its scan, which fails loudly) tells more.
                tracing::warn!(root = %root.display(), error = %e, "cannot list the bucket");
                Vec::new()
            }
        };
    }
    let mut stack = vec![root.to_path_buf()];
    let mut out = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_partition_directories() {
        let ts = 1_732_260_000_123; // 2024-11-22T07:20:00.123Z
        assert_eq!(Table::Silver.partition_dir(ts), PathBuf::from("silver/events/dt=2024-11-22/hour=07"));
        assert_eq!(Table::Bronze.partition_dir(ts), PathBuf::from("bronze/events/dt=2024-11-22/hour=07"));
        assert_eq!(Table::Rejects.partition_dir(ts), PathBuf::from("rejects/dt=2024-11-22"));
        let key = Table::Silver.partition_key(ts);
        assert_eq!(Table::Silver.partition_dir(Table::Silver.partition_start(key)), Table::Silver.partition_dir(ts));
        // The last millisecond of an hour stays in that hour.
        let end_of_hour = (key + 1) * HOUR_MS - 1;
        assert_eq!(Table::Silver.partition_key(end_of_hour), key);
    }

    #[test]
    fn gold_tables_hold_a_file_per_hour_in_day_directories() {
        let hour = clickstream_schema::time::days_from_civil(2026, 11, 22) * 24 + 17;
        assert_eq!(GoldTable::Sessions.hour_file(hour), PathBuf::from("gold/sessions/dt=2026-11-22/part-17.parquet"));
        assert_eq!(glob(Path::new("/d"), GoldTable::DimUsers), "/d/gold/dim_users/**/*.parquet");
        assert_eq!(glob(Path::new("/d"), Table::Silver), "/d/silver/events/**/*.parquet");
        for table in GoldTable::ALL {
            assert_eq!(GoldTable::from_name(table.name()), Some(table));
        }
    }
}
