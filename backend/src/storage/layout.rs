//! The storage layout analysts depend on (DESIGN.md):
//!
//! ```text
//! DATA_DIR/bronze/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet
//! DATA_DIR/silver/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet
//! DATA_DIR/rejects/dt=YYYY-MM-DD/part-*.parquet
//! ```
//!
//! Hive-style partition directories, so `pl.scan_parquet(...,
//! hive_partitioning=True)` and DuckDB's `hive_partitioning=1` both read
//! them. The partition columns live in the path, not in the files.

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

    /// The glob analysts (and the query engine) read the table with.
    pub fn glob(self, data_dir: &Path) -> String {
        format!("{}/{}/**/*.parquet", data_dir.display(), self.root())
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

/// Every published Parquet file under `root`, sorted by path (for Bronze:
/// arrival hour, then commit number, i.e. arrival order). Missing roots
/// have none.
pub fn parquet_files(root: &Path) -> Vec<PathBuf> {
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
}
