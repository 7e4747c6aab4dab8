//! Sessions, and the funnel made of them.
//!
//! Per visitor with new human events between `_from` and `_to`, the
//! sessions they can change are those ending within a gap before `_from`
//! or starting within a gap after `_to`; any event of the visitor outside
//! the span of those sessions (and the new events) is more than a gap away
//! from it, so the events inside the span alone give the new sessions.
//! The `sessions` table is the state: it says where each visitor's
//! sessions begin and end.

use std::collections::BTreeSet;

use polars::prelude::*;

use super::bots::BotFlags;
use super::hours::{hours_of, ids_of, join_on_visitor, read_hour, session_keys, visitor, SilverView, Writer};
use crate::gold::{
    collect_tables, human_events, session_hour_tables, sessions, ts_ms, GoldConfig, GoldTable, GOLD_INPUT,
};
use crate::storage::scan::{has_files, scan_table};
use crate::storage::{Commit, PipelineError};

/// What a micro-batch did to the `sessions` table.
pub(super) struct SessionsChange {
    /// The visitors with new human events (`site_id`, `anonymous_id`, and
    /// the span `_from`, `_to` of those events in ms).
    pub visitors: DataFrame,
    /// Their old sessions that the new ones replace (with
    /// [`session_keys`] columns; empty without columns when none).
    pub replaced: DataFrame,
    /// The sessions that replace them, and new ones.
    pub added: DataFrame,
    /// Every session of the rewritten hours, as now written.
    pub hour_sessions: DataFrame,
    /// The hours (of `session_start`) rewritten.
    pub hours: BTreeSet<i64>,
}

impl SessionsChange {
    pub fn compute(
        view: &SilverView<'_>,
        fresh: &DataFrame,
        bots: &BotFlags,
        config: &GoldConfig,
    ) -> Result<SessionsChange, PipelineError> {
        let data_dir = view.data_dir;
        let gap = config.session_gap_ms;
        let visitors = human_events(fresh.clone().lazy(), bots.flagged.clone().lazy())
            .group_by(visitor())
            .agg([ts_ms("event_ts").min().alias("_from"), ts_ms("event_ts").max().alias("_to")])
            .collect()?;
        let replaced = if visitors.height() > 0 && has_files(data_dir, GoldTable::Sessions) {
            let earliest = visitors.column("_from")?.i64()?.min().unwrap_or(i64::MIN) - gap;
            let earliest = lit(earliest).cast(DataType::Datetime(TimeUnit::Milliseconds, None));
            let near = scan_table(data_dir, GoldTable::Sessions)?
                .select(session_keys())
                .filter(col("session_end").gt_eq(earliest));
            join_on_visitor(near, visitors.clone().lazy(), JoinType::Inner)
                .filter(
                    ts_ms("session_end")
                        .gt_eq(col("_from") - lit(gap))
                        .and(ts_ms("session_start").lt_eq(col("_to") + lit(gap))),
                )
                .select(session_keys())
                .collect()?
        } else {
            DataFrame::empty()
        };
        let added = added_sessions(view, &visitors, &replaced, &bots.flagged, config)?;

        // The hours of the sessions replaced, dropped (bots) and added, each
        // rewritten whole: the rest of its sessions from its file.
        let mut removed = vec![];
        for df in [&replaced, &bots.dropped_sessions] {
            if df.height() > 0 {
                removed.push(df.clone().lazy().select([col("site_id"), col("session_id"), col("session_start")]));
            }
        }
        let removed =
            if removed.is_empty() { DataFrame::empty() } else { concat(removed, UnionArgs::default())?.collect()? };
        let mut hours = hours_of(&added, "session_start")?;
        if removed.height() > 0 {
            hours.extend(hours_of(&removed, "session_start")?);
        }
        let mut hour_sessions = vec![added.clone().lazy()];
        for &hour in &hours {
            if let Some(df) = read_hour(data_dir, GoldTable::Sessions, hour)? {
                let kept = if removed.height() > 0 {
                    let key = [col("site_id"), col("session_id")];
                    df.lazy().join(removed.clone().lazy(), key.clone(), key, JoinArgs::new(JoinType::Anti))
                } else {
                    df.lazy()
                };
                hour_sessions.push(kept);
            }
        }
        let hour_sessions = concat(hour_sessions, UnionArgs::default())?
            .sort(["site_id", "session_start", "session_id"], SortMultipleOptions::default())
            .collect()?;
        Ok(SessionsChange { visitors, replaced, added, hour_sessions, hours })
    }

    /// Writes the rewritten hours of `sessions`, and of the tables made of
    /// an hour's sessions (`funnel_1h`, ...), all of which are at hand.
    pub fn write(&self, out: &mut Writer<'_>, commit: &mut Commit) -> Result<(), PipelineError> {
        out.write_hours(commit, GoldTable::Sessions, self.hour_sessions.clone(), &self.hours)?;
        for (table, rows) in collect_tables(session_hour_tables(self.hour_sessions.clone().lazy()))? {
            out.write_hours(commit, table, rows, &self.hours)?;
        }
        Ok(())
    }
}

/// The sessions of the visitors' events between the edges of their new
/// events and of the sessions those replace.
fn added_sessions(
    view: &SilverView<'_>,
    visitors: &DataFrame,
    replaced: &DataFrame,
    flagged: &DataFrame,
    config: &GoldConfig,
) -> Result<DataFrame, PipelineError> {
    let mut spans =
        vec![visitors.clone().lazy().select([col("site_id"), col("anonymous_id"), col("_from"), col("_to")])];
    if replaced.height() > 0 {
        spans.push(replaced.clone().lazy().select([
            col("site_id"),
            col("anonymous_id"),
            ts_ms("session_start").alias("_from"),
            ts_ms("session_end").alias("_to"),
        ]));
    }
    let spans = concat(spans, UnionArgs::default())?
        .group_by(visitor())
        .agg([col("_from").min(), col("_to").max()])
        .collect()?;
    let span_hours = super::hours::hours_spanned(&spans, "_from", "_to")?;
    // Only the touched visitors' rows are decoded whole.
    let events = join_on_visitor(
        view.hours(&span_hours, GOLD_INPUT, Some(&col("anonymous_id").is_in(ids_of(&spans)?, false)))?,
        spans.lazy(),
        JoinType::Inner,
    )
    .filter(ts_ms("event_ts").gt_eq(col("_from")).and(ts_ms("event_ts").lt_eq(col("_to"))))
    .drop(cols(["_from", "_to"]));
    Ok(sessions(&human_events(events, flagged.clone().lazy()).collect()?, config)?)
}

#[cfg(test)]
mod tests {
    use super::super::testing::Scenario;
    use super::*;

    #[test]
    fn sessions_and_the_funnel_after_a_micro_batch_are_those_of_a_rebuild() {
        for scenario in Scenario::all("sessions") {
            scenario.refresh_and_commit(|view, fresh, out, commit| {
                let (_, slice) = Scenario::fresh_slice(view, fresh);
                let bots = BotFlags::flag(view.data_dir, &slice, out.config)?;
                SessionsChange::compute(view, fresh, &bots, out.config)?.write(out, commit)
            });
            scenario.assert_as_rebuilt(GoldTable::Sessions);
            for (table, _) in session_hour_tables(LazyFrame::default()) {
                scenario.assert_as_rebuilt(table);
            }
        }
    }
}
