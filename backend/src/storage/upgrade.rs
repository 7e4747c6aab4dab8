//! Bronze and Silver files written before a prop joined the contract.
//!
//! A prop added to `with_props!` is a new column in every Bronze and
//! Silver file written from then on. Files written before lack it, and one
//! table's files must share their columns: a scan over all of them (an
//! analyst's `pl.scan_parquet("silver/events/**/*.parquet")`, Gold's
//! rebuild) refuses files whose columns differ. So when a role starts and
//! its manifest says its files were written with fewer props than the
//! contract now names, each of its files that lacks a prop column is
//! rewritten with it (all nulls, in the contract's column order), in one
//! atomic commit like any other: a crash halfway leaves the old files, and
//! the next start does it again. It runs once per data directory and
//! version: the manifest then records the props its files have.

use std::path::Path;

use clickstream_schema::props::{PropKind, PROPS, PROP_COUNT};
use polars::prelude::*;

use super::commit::{Commit, Manifest, Role};
use super::error::PipelineError;
use super::layout::{parquet_files, Table, TableDir};
use super::scan::scan_files;

/// Rewrites the role's Bronze and Silver files that lack a prop column,
/// and returns the manifest saying its files have every prop (committed
/// when files were rewritten; otherwise the role's next commit records it).
pub fn add_prop_columns(data_dir: &Path, role: &Role, manifest: &Manifest) -> Result<Manifest, PipelineError> {
    let mut next = manifest.clone();
    next.prop_columns = PROP_COUNT as u32;
    if *role == Role::Gold {
        return Ok(next);
    }
    let mut commit = Commit::of(data_dir, role.clone(), manifest.seq + 1);
    let mut rewritten = 0;
    for table in [Table::Bronze, Table::Silver] {
        for file in parquet_files(&data_dir.join(table.dir())) {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !owns(role, name) {
                continue;
            }
            let Some(mut scan) = scan_files(std::slice::from_ref(&file))? else { continue };
            // The footer only, for the files already complete.
            let schema = scan.collect_schema()?;
            if PROPS.iter().all(|p| schema.contains(p.column)) {
                continue;
            }
            let mut df = with_prop_columns(scan.collect()?)?;
            let rel = file.strip_prefix(data_dir).unwrap_or(&file).to_path_buf();
            commit.write_parquet_at(&rel, &mut df)?;
            rewritten += 1;
        }
    }
    if rewritten == 0 {
        return Ok(next);
    }
    tracing::info!(
        files = rewritten,
        props = PROP_COUNT,
        "Bronze and Silver files written before the contract's newest props now have their columns (null)"
    );
    commit.commit(next, manifest.committed_at)
}

/// Whether the role wrote this Bronze or Silver file: a partition consumer
/// its own (named with its tag), the whole-directory aggregator every other
/// one (its own, and compaction's).
fn owns(role: &Role, file_name: &str) -> bool {
    match Role::of_file(file_name) {
        Some((writer, _)) => writer == *role,
        None => *role == Role::Whole,
    }
}

/// The frame with a column for every prop: one it lacks is added as nulls
/// of the prop's type, right after the prop before it (props are
/// consecutive columns, in the contract's order).
pub(crate) fn with_prop_columns(df: DataFrame) -> PolarsResult<DataFrame> {
    let mut order: Vec<PlSmallStr> = df.get_column_names_owned();
    let mut df = df;
    for (i, prop) in PROPS.iter().enumerate() {
        if order.iter().any(|c| c == prop.column) {
            continue;
        }
        let dtype = match prop.kind {
            PropKind::Text | PropKind::Url => DataType::String,
            PropKind::Number => DataType::Float64,
            PropKind::Integer => DataType::Int64,
        };
        df.with_column(Column::full_null(prop.column.into(), df.height(), &dtype))?;
        let at = PROPS[..i]
            .iter()
            .rev()
            .find_map(|p| order.iter().position(|c| c == p.column))
            .map_or(order.len(), |before| before + 1);
        order.insert(at, prop.column.into());
    }
    df.select(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::silver::SILVER_COLUMNS;

    #[test]
    fn a_frame_without_the_newest_props_gets_them_as_nulls_in_place() {
        let last = PROPS[PROP_COUNT - 1].column;
        let before_last = PROPS[PROP_COUNT - 2].column;
        // Silver's columns without the last two props, as an older version wrote them.
        let old: Vec<Column> = SILVER_COLUMNS
            .iter()
            .filter(|c| **c != last && **c != before_last)
            .map(|c| Column::new((*c).into(), [Some("x")]))
            .collect();
        let df = with_prop_columns(DataFrame::new_infer_height(old).unwrap()).unwrap();
        let names: Vec<&str> = df.get_column_names().into_iter().map(PlSmallStr::as_str).collect();
        assert_eq!(names, SILVER_COLUMNS, "the current writer's column order");
        for c in [last, before_last] {
            assert_eq!(df.column(c).unwrap().null_count(), 1, "{c}");
        }
        assert_eq!(df.column(last).unwrap().dtype(), &DataType::Int64, "engaged_ms and scroll_depth are integers");
        // A frame that has them all is returned as it is.
        assert_eq!(with_prop_columns(df.clone()).unwrap(), df);
    }

    /// Silver rows as a test writes them: every column text but the props
    /// (their own types), `with_props` false leaving out the newest two.
    fn silver(event_id: &str, with_props: bool) -> DataFrame {
        let newest = [PROPS[PROP_COUNT - 1].column, PROPS[PROP_COUNT - 2].column];
        let columns = SILVER_COLUMNS
            .iter()
            .filter(|c| with_props || !newest.contains(c))
            .map(|c| match PROPS.iter().find(|p| p.column == *c) {
                Some(p) if p.kind == PropKind::Integer => Column::new((*c).into(), [Some(7i64)]),
                Some(p) if p.kind == PropKind::Number => Column::new((*c).into(), [Some(1.5f64)]),
                _ => Column::new((*c).into(), [Some(if *c == "event_id" { event_id } else { "x" })]),
            })
            .collect();
        DataFrame::new_infer_height(columns).unwrap()
    }

    #[test]
    fn a_start_gives_older_files_the_new_columns_once_and_a_scan_reads_old_and_new_together() {
        let dir = std::env::temp_dir().join(format!("cs-upgrade-{}", std::process::id()));
        crate::fixtures::fresh_dir(&dir).unwrap();
        let hour = Table::Silver.partition_dir(1_732_262_400_000);
        // What a version before the newest props committed.
        let mut commit = Commit::new(&dir, 1);
        commit.write_parquet(&hour, "silver", &mut silver("e-old", false)).unwrap();
        let old = Manifest { prop_columns: (PROP_COUNT - 2) as u32, ..Manifest::default() };
        commit.commit(old, 1).unwrap();
        assert!(crate::storage::scan::scan_table(&dir, Table::Silver).unwrap().collect().is_ok());

        let (started, _) = Manifest::recover(&dir).unwrap();
        assert_eq!((started.prop_columns, started.seq), (PROP_COUNT as u32, 2), "one commit rewrote the file");
        let mut commit = Commit::new(&dir, 3);
        commit.write_parquet(&hour, "silver", &mut silver("e-new", true)).unwrap();
        commit.commit(started, 2).unwrap();

        // Old and new files in one scan, as analysts and Gold read them.
        let all = crate::storage::scan::scan_table(&dir, Table::Silver)
            .unwrap()
            .select([col("event_id"), col(PROPS[PROP_COUNT - 1].column)])
            .sort(["event_id"], Default::default())
            .collect()
            .unwrap();
        let depth: Vec<Option<i64>> = all.column(PROPS[PROP_COUNT - 1].column).unwrap().i64().unwrap().to_vec();
        assert_eq!(depth, [Some(7), None], "e-new has the prop, e-old a null");

        // Once done, a start rewrites nothing.
        let (again, _) = Manifest::recover(&dir).unwrap();
        assert_eq!(again.seq, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_role_upgrades_only_the_files_it_wrote() {
        let consumer = Role::partitions(vec![0, 2]);
        assert!(owns(&consumer, "part-p0_2-0000000012-silver.parquet"));
        assert!(!owns(&consumer, "part-p1-0000000012-silver.parquet"));
        assert!(!owns(&consumer, "part-0000000012-silver.parquet"));
        assert!(owns(&Role::Whole, "part-0000000012-silver.parquet"));
        assert!(owns(&Role::Whole, "part-compacted.parquet"));
        assert!(!owns(&Role::Whole, "part-p1-0000000012-silver.parquet"));
    }
}
