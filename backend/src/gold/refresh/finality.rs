//! Finality: every row's `is_final` is what the current watermark says,
//! however the events were batched. The watermark trails the latest event
//! time Silver has seen by the allowed lateness; a row is final once the
//! watermark passed the time it settles at. Rows written by this refresh
//! get their flag as they are written; this step rewrites the hours whose
//! rows the watermark newly passed.

use std::collections::BTreeSet;

use clickstream_schema::time::HOUR_MS;
use polars::prelude::*;

use super::hours::{hours_of, Writer};
use crate::gold::{ts_ms, GoldConfig, GoldTable};
use crate::storage::scan::{has_files, read_gold_hour, scan_table};
use crate::storage::{Commit, Manifest, PipelineError};

/// The watermark after Silver has seen events up to `max_event_ts`.
pub fn watermark(max_event_ts: Option<i64>, config: &GoldConfig) -> Option<i64> {
    max_event_ts.map(|t| t - config.allowed_lateness_ms)
}

/// The watermark before and after a micro-batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Watermarks {
    pub old: Option<i64>,
    pub new: Option<i64>,
}

impl Watermarks {
    /// Moves the manifest's latest event time on by the micro-batch's
    /// new Silver rows.
    pub fn advance(manifest: &mut Manifest, fresh: &DataFrame, config: &GoldConfig) -> PolarsResult<Watermarks> {
        let old = watermark(manifest.max_event_ts, config);
        let ts = fresh.column("event_ts")?.cast(&DataType::Int64)?;
        if let Some(max) = ts.i64()?.max() {
            manifest.max_event_ts = Some(manifest.max_event_ts.map_or(max, |m| m.max(max)));
        }
        Ok(Watermarks { old, new: watermark(manifest.max_event_ts, config) })
    }
}

/// When a row of `table` has settled: once the watermark is there, the row
/// is marked final. `None` for the dimensions, which have no window.
fn settled_at(table: GoldTable, config: &GoldConfig) -> Option<Expr> {
    let gap = config.session_gap_ms;
    Some(match table {
        GoldTable::Traffic1m | GoldTable::Revenue5m | GoldTable::Conversion10m | GoldTable::BotAnomalies => {
            ts_ms("window_end")
        }
        GoldTable::TopPages1h
        | GoldTable::PageTransitions1h
        | GoldTable::ProductPerformance1h
        | GoldTable::Goals1h
        | GoldTable::CustomEvents1h
        | GoldTable::LinkClicks1h
        | GoldTable::Engagement1h => ts_ms("hour_start") + lit(HOUR_MS),
        // Sessions that started in the hour can still go on for a while.
        GoldTable::Funnel1h | GoldTable::EntryPages1h | GoldTable::ExitPages1h | GoldTable::Sources1h => {
            ts_ms("hour_start") + lit(HOUR_MS + gap)
        }
        GoldTable::Sessions => ts_ms("session_end") + lit(gap),
        GoldTable::DimUsers
        | GoldTable::DimPages
        | GoldTable::DimProducts
        | GoldTable::IdentityMap
        | GoldTable::DimDate
        // A person can come back any day.
        | GoldTable::RetentionWeekly
        | GoldTable::RetentionDaily => return None,
    })
}

/// Sets `is_final` from the watermark: true once it passed `settled_at`.
pub(super) fn with_is_final(
    table: GoldTable,
    df: DataFrame,
    watermark: Option<i64>,
    config: &GoldConfig,
) -> PolarsResult<DataFrame> {
    let Some(settled) = settled_at(table, config) else {
        return Ok(df);
    };
    let is_final = match watermark {
        Some(w) => settled.lt_eq(lit(w)),
        None => lit(false),
    };
    df.lazy().with_column(is_final.alias("is_final")).collect()
}

/// Rewrites the hours holding rows the watermark passed since the last
/// micro-batch (and that this refresh did not write already).
pub(super) fn refinalize_passed(
    out: &mut Writer<'_>,
    commit: &mut Commit,
    marks: Watermarks,
) -> Result<(), PipelineError> {
    let (Some(old), Some(new)) = (marks.old, marks.new) else {
        return Ok(());
    };
    if new <= old {
        return Ok(());
    }
    let gap = out.config.session_gap_ms;
    // The rows of hour h settle within (h + first, h + last] (ms after the
    // hour's start): only hours whose range meets (old, new] can hold a
    // row that turns final now.
    for (table, first, last) in [
        (GoldTable::Traffic1m, 0, HOUR_MS),
        (GoldTable::Revenue5m, 0, HOUR_MS),
        (GoldTable::Conversion10m, 0, HOUR_MS),
        (GoldTable::BotAnomalies, 0, HOUR_MS),
        (GoldTable::TopPages1h, HOUR_MS - 1, HOUR_MS),
        (GoldTable::PageTransitions1h, HOUR_MS - 1, HOUR_MS),
        (GoldTable::ProductPerformance1h, HOUR_MS - 1, HOUR_MS),
        (GoldTable::Goals1h, HOUR_MS - 1, HOUR_MS),
        (GoldTable::CustomEvents1h, HOUR_MS - 1, HOUR_MS),
        (GoldTable::LinkClicks1h, HOUR_MS - 1, HOUR_MS),
        (GoldTable::Engagement1h, HOUR_MS - 1, HOUR_MS),
        (GoldTable::Funnel1h, HOUR_MS + gap - 1, HOUR_MS + gap),
        (GoldTable::EntryPages1h, HOUR_MS + gap - 1, HOUR_MS + gap),
        (GoldTable::ExitPages1h, HOUR_MS + gap - 1, HOUR_MS + gap),
        (GoldTable::Sources1h, HOUR_MS + gap - 1, HOUR_MS + gap),
    ] {
        let hours = (old - last).div_euclid(HOUR_MS)..=(new - first - 1).div_euclid(HOUR_MS);
        for hour in hours.filter(|h| h * HOUR_MS + last > old && h * HOUR_MS + first < new) {
            refinalize(out, commit, table, hour)?;
        }
    }
    // A session settles a gap after its end, which no hour bounds: ask
    // the table which sessions did.
    if has_files(out.data_dir, GoldTable::Sessions) {
        let settled = scan_table(out.data_dir, GoldTable::Sessions)?
            .filter(col("is_final").not().and((ts_ms("session_end") + lit(gap)).lt_eq(lit(new))))
            .select([col("session_start")])
            .collect()?;
        for hour in hours_of(&settled, "session_start")? {
            refinalize(out, commit, GoldTable::Sessions, hour)?;
        }
    }
    Ok(())
}

/// Rewrites an hour whose rows the watermark newly passed.
fn refinalize(out: &mut Writer<'_>, commit: &mut Commit, table: GoldTable, hour: i64) -> Result<(), PipelineError> {
    if out.was_written(table, hour) {
        return Ok(());
    }
    let Some(before) = read_gold_hour(out.data_dir, table, hour)? else {
        return Ok(());
    };
    let after = with_is_final(table, before.clone(), out.watermark, out.config)?;
    // Flags only ever turn true: a different count means a change.
    let finals = |d: &DataFrame| -> PolarsResult<u32> { Ok(d.column("is_final")?.bool()?.sum().unwrap_or(0)) };
    if finals(&before)? != finals(&after)? {
        out.write_hours(commit, table, before.drop("is_final")?, &BTreeSet::from([hour]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::Scenario;
    use super::*;

    #[test]
    fn after_the_watermark_moves_every_row_is_flagged_as_a_rebuild_flags_it() {
        for scenario in Scenario::all("finality") {
            // This step alone: no hour is written by the others, so every
            // flag that changes is this step's doing.
            let marks = scenario.watermarks();
            scenario.refresh_and_commit(|_, _, out, commit| refinalize_passed(out, commit, marks));
            for table in GoldTable::ALL {
                scenario.assert_history_flagged_at(table, marks.new);
            }
        }
    }
}
