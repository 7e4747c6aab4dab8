//! Building Gold from the whole of Silver: the same refresh as streaming,
//! fed one hour of Silver at a time in event-time order, so memory stays
//! that of a few hours whatever the history.

use std::collections::BTreeSet;
use std::path::Path;

use clickstream_schema::time::days_from_civil;
use polars::prelude::*;

use super::hours::SilverView;
use super::refresh;
use crate::gold::{GoldConfig, GOLD_INPUT};
use crate::storage::layout::parquet_files;
use crate::storage::scan::{scan_files, silver_files};
use crate::storage::{Commit, Manifest, PipelineError, Table};

/// Builds Gold from the whole of Silver, hour by hour, committing after
/// each hour. Gold written before is removed first. Calls `progress` with
/// (hours done, hours in all). Returns the manifest and the files written.
pub fn build(
    data_dir: &Path,
    mut manifest: Manifest,
    config: &GoldConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Manifest, usize), PipelineError> {
    let gold = data_dir.join("gold");
    if gold.exists() {
        std::fs::remove_dir_all(&gold)
            .map_err(|e| PipelineError::Task(format!("removing {} before rebuilding it: {e}", gold.display())))?;
    }
    let hours: BTreeSet<i64> =
        parquet_files(&data_dir.join(Table::Silver.root())).iter().filter_map(|f| silver_file_hour(f)).collect();
    manifest.max_event_ts = None;
    let mut files = 0;
    progress(0, hours.len());
    for (done, &hour) in hours.iter().enumerate() {
        if let Some(silver) = scan_files(&silver_files(data_dir, [hour]))? {
            let columns: Vec<Expr> = GOLD_INPUT.iter().map(|c| col(*c)).collect();
            let fresh = silver.select(columns).collect()?;
            let view = SilverView { data_dir, unpublished: fresh.clone(), published_before: Some(hour) };
            let mut next = manifest.clone();
            let mut commit = Commit::new(data_dir, next.seq + 1);
            files += refresh(&view, &mut commit, &mut next, &fresh, config)?;
            let committed_at = next.committed_at;
            manifest = commit.commit(next, committed_at)?;
        }
        progress(done + 1, hours.len());
    }
    manifest.gold_current = true;
    if !hours.is_empty() {
        // Said in a commit of its own, so a restart does not build again.
        let committed_at = manifest.committed_at;
        manifest = Commit::new(data_dir, manifest.seq + 1).commit(manifest, committed_at)?;
    }
    Ok((manifest, files))
}

/// The hour of a `silver/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet` path.
fn silver_file_hour(path: &Path) -> Option<i64> {
    let dir = path.parent()?;
    let hour: i64 = dir.file_name()?.to_str()?.strip_prefix("hour=")?.parse().ok()?;
    let date = dir.parent()?.file_name()?.to_str()?.strip_prefix("dt=")?;
    let mut it = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    Some(days_from_civil(y, m as u32, d as u32) * 24 + hour)
}

#[cfg(test)]
mod tests {
    use super::super::testing::Scenario;
    use super::*;
    use crate::gold::GoldTable;
    use crate::storage::scan::has_files;

    #[test]
    fn silver_partition_names_give_back_their_hour() {
        let hour = days_from_civil(2026, 11, 22) * 24 + 17;
        let silver = Path::new("silver/events/dt=2026-11-22/hour=17/part-0000000001-silver.parquet");
        assert_eq!(silver_file_hour(silver), Some(hour));
        assert_eq!(Table::Silver.partition_dir(hour * clickstream_schema::time::HOUR_MS), silver.parent().unwrap());
    }

    #[test]
    fn a_build_from_silver_is_the_rebuild_every_table_and_flag_is_held_to() {
        // Scenario::new builds the history's Gold; with the whole day as
        // history, that build is compared with one query over all of it.
        let scenario = Scenario::new("build", "whole day as history", |_| false);
        for table in GoldTable::ALL {
            assert!(has_files(scenario.dir(), table), "{}", table.name());
            scenario.assert_as_rebuilt_with_flags(table);
        }
    }
}
