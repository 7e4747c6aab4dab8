//! Bots: who is flagged after the micro-batch, who was flagged by it, and
//! which of Gold's sessions go with them.
//!
//! Minute counts only grow, so a visitor flagged stays flagged, and the
//! new flags come from the hours of the new rows alone. A newly flagged
//! visitor loses all of its sessions (business tables leave out every
//! event of a flagged visitor, not only the burst).

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::*;

use super::hours::{hours_spanned, join_on_visitor, no_visitors, session_keys};
use crate::gold::{bot_anomalies, flagged_visitors, GoldConfig, GoldTable};
use crate::storage::scan::{has_files, scan_table};
use crate::storage::PipelineError;

/// Who is a bot after this micro-batch, and what that changes.
pub(super) struct BotFlags {
    /// Every visitor flagged so far (`site_id`, `anonymous_id`).
    pub flagged: DataFrame,
    /// The visitors this micro-batch flagged first.
    pub newly_flagged: DataFrame,
    /// The sessions Gold holds of the newly flagged visitors, which go
    /// (with [`session_keys`] columns; empty without columns when none).
    pub dropped_sessions: DataFrame,
}

impl BotFlags {
    /// Flags the visitors of `slice` (the window input of the hours the new
    /// rows fall in) and adds those flagged before.
    pub fn flag(data_dir: &Path, slice: &DataFrame, config: &GoldConfig) -> Result<BotFlags, PipelineError> {
        let flagged_before = if has_files(data_dir, GoldTable::BotAnomalies) {
            flagged_visitors(scan_table(data_dir, GoldTable::BotAnomalies)?).collect()?
        } else {
            no_visitors()
        };
        let flagged_here = flagged_visitors(bot_anomalies(slice.clone().lazy(), config)).collect()?;
        let newly_flagged =
            join_on_visitor(flagged_here.clone().lazy(), flagged_before.clone().lazy(), JoinType::Anti).collect()?;
        let flagged = concat([flagged_before.lazy(), flagged_here.lazy()], UnionArgs::default())?
            .unique(None, UniqueKeepStrategy::Any)
            .collect()?;
        let dropped_sessions = if newly_flagged.height() > 0 && has_files(data_dir, GoldTable::Sessions) {
            join_on_visitor(
                scan_table(data_dir, GoldTable::Sessions)?.select(session_keys()),
                newly_flagged.clone().lazy(),
                JoinType::Semi,
            )
            .collect()?
        } else {
            DataFrame::empty()
        };
        Ok(BotFlags { flagged, newly_flagged, dropped_sessions })
    }

    /// Every hour a newly flagged visitor was active in, by its sessions:
    /// their windows are to be counted again without it.
    pub fn hours_active(&self) -> PolarsResult<BTreeSet<i64>> {
        if self.dropped_sessions.height() == 0 {
            return Ok(BTreeSet::new());
        }
        hours_spanned(&self.dropped_sessions, "session_start", "session_end")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{by_all_columns, Scenario};
    use super::*;
    use crate::gold::all_tables;
    use crate::gold::fixture::silver;

    fn flagged_in(events: &[crate::gold::fixture::Ev]) -> DataFrame {
        let config = GoldConfig::default();
        by_all_columns(flagged_visitors(bot_anomalies(silver(events), &config)).collect().unwrap())
    }

    #[test]
    fn the_flags_after_a_micro_batch_are_those_of_the_whole_history() {
        for scenario in Scenario::all("bots") {
            let slice = scenario.fresh_hours_slice();
            let bots = BotFlags::flag(scenario.dir(), &slice, &scenario.config).unwrap();
            let name = scenario.name;

            let rebuilt = flagged_in(&scenario.all_events());
            assert!(by_all_columns(bots.flagged.clone()).equals_missing(&rebuilt), "{name}: flagged");

            let before = flagged_in(&scenario.history);
            let new = join_on_visitor(rebuilt.lazy(), before.lazy(), JoinType::Anti).collect().unwrap();
            assert!(by_all_columns(bots.newly_flagged.clone()).equals_missing(&new), "{name}: newly flagged");

            // The sessions that go are the history's sessions of those visitors.
            let history_sessions = all_tables(silver(&scenario.history), &scenario.config)
                .unwrap()
                .into_iter()
                .find(|(t, _)| *t == GoldTable::Sessions)
                .unwrap()
                .1;
            let expected =
                join_on_visitor(history_sessions, new.lazy(), JoinType::Semi).select(session_keys()).collect().unwrap();
            let dropped =
                if bots.dropped_sessions.height() == 0 { expected.clear() } else { bots.dropped_sessions.clone() };
            assert!(by_all_columns(dropped).equals_missing(&by_all_columns(expected)), "{name}: dropped sessions");
        }
    }
}
