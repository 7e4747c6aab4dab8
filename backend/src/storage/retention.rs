//! Retention: how long each layer keeps its data. Whole day partitions
//! (`dt=…`) older than a layer's limit are removed; by default every layer
//! is kept forever.
//!
//! A day is removed as compaction replaces a partition: its directory is
//! moved out of the table into `_state/compact/retired-*` in one rename,
//! so a reader lists the day whole or not at all, and files a query listed
//! just before stay readable for the grace period before a later round
//! deletes them.

use std::fs;
use std::path::{Path, PathBuf};

use clickstream_schema::time::DAY_MS;

use super::compact::retire;
use super::error::PipelineError;
use super::layout::{GoldTable, Table, TableDir};

/// The lateness horizon: events are accepted up to 7 days late, and Silver
/// and Gold must still hold the days such an event lands in.
pub const MIN_SILVER_GOLD_DAYS: u32 = 8;

/// Days each layer keeps; `None` keeps it forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub bronze_days: Option<u32>,
    pub silver_days: Option<u32>,
    pub rejects_days: Option<u32>,
    pub gold_days: Option<u32>,
}

impl Retention {
    /// Checks the limits make sense: Silver and Gold must outlive the
    /// lateness horizon (a late event's day must still be there to update).
    pub fn check(&self) -> Result<(), String> {
        for (name, days) in [("silver_days", self.silver_days), ("gold_days", self.gold_days)] {
            if let Some(d) = days {
                if d < MIN_SILVER_GOLD_DAYS {
                    return Err(format!(
                        "retention {name} = {d}: at least {MIN_SILVER_GOLD_DAYS} (events are accepted 7 days late)"
                    ));
                }
            }
        }
        for (name, days) in [("bronze_days", self.bronze_days), ("rejects_days", self.rejects_days)] {
            if days == Some(0) {
                return Err(format!("retention {name} = 0: at least 1 (leave it out to keep it forever)"));
            }
        }
        Ok(())
    }

    pub fn is_forever(&self) -> bool {
        *self == Retention::default()
    }
}

/// What a retention round removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Day partitions removed, per table name.
    pub days_removed: Vec<(String, usize)>,
    pub bytes_removed: u64,
}

impl RetentionReport {
    pub fn total_days(&self) -> usize {
        self.days_removed.iter().map(|(_, n)| n).sum()
    }
}

/// Removes the day partitions older than each layer keeps, as of `now_ms`.
pub fn expire(data_dir: &Path, retention: &Retention, now_ms: i64) -> Result<RetentionReport, PipelineError> {
    let mut report = RetentionReport::default();
    let mut tables: Vec<(String, PathBuf, Option<u32>)> = vec![
        ("bronze".into(), Table::Bronze.dir(), retention.bronze_days),
        ("silver".into(), Table::Silver.dir(), retention.silver_days),
        ("rejects".into(), Table::Rejects.dir(), retention.rejects_days),
    ];
    for table in GoldTable::ALL {
        tables.push((table.name().into(), table.dir(), retention.gold_days));
    }
    for (name, dir, days) in tables {
        let Some(days) = days else { continue };
        // A day goes once all of it is older than the limit.
        let cutoff = now_ms - i64::from(days) * DAY_MS;
        let mut removed = 0;
        for (day_dir, day_start) in day_partitions(&data_dir.join(dir)) {
            if day_start + DAY_MS <= cutoff {
                report.bytes_removed += dir_bytes(&day_dir);
                retire(data_dir, &day_dir, now_ms)?;
                removed += 1;
            }
        }
        if removed > 0 {
            report.days_removed.push((name, removed));
        }
    }
    Ok(report)
}

/// The `dt=YYYY-MM-DD` directories of a table, with the first millisecond
/// of each day.
pub(super) fn day_partitions(root: &Path) -> Vec<(PathBuf, i64)> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let mut out: Vec<(PathBuf, i64)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let day = p.file_name()?.to_str()?.strip_prefix("dt=")?.to_string();
            Some((p, parse_day(&day)?))
        })
        .collect();
    out.sort();
    out
}

/// `YYYY-MM-DD` → its first millisecond (UTC).
pub(super) fn parse_day(day: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_bytes(&path)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silver_and_gold_outlive_the_lateness_horizon() {
        assert!(Retention { bronze_days: Some(1), ..Retention::default() }.check().is_ok());
        assert!(Retention { silver_days: Some(7), ..Retention::default() }.check().unwrap_err().contains("at least 8"));
        assert!(Retention { gold_days: Some(3), ..Retention::default() }.check().is_err());
        assert!(Retention { rejects_days: Some(0), ..Retention::default() }.check().is_err());
        assert!(Retention::default().is_forever());
    }

    #[test]
    fn days_parse_as_utc_midnight() {
        assert_eq!(parse_day("2024-11-22"), Some(1_732_233_600_000));
        assert_eq!(parse_day("2024-13-01"), None);
    }
}
