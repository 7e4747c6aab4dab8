//! The window tables (traffic, top pages, revenue, conversion, products,
//! bot anomalies): each a sum over windows of at most an hour, so a table's
//! hour is computed whole from that hour of Silver. A micro-batch rewrites
//! the hours its new rows fall in, and every hour a newly flagged bot was
//! active in (counted again without it).

use std::collections::BTreeSet;

use polars::prelude::*;

use super::bots::BotFlags;
use super::hours::{SilverView, Writer};
use crate::gold::{collect_tables, window_tables, GoldConfig, GoldTable, WINDOW_INPUT};
use crate::storage::{Commit, PipelineError};

/// The window tables of the hours a micro-batch changes.
pub(super) struct Windows {
    pub hours: BTreeSet<i64>,
    pub tables: Vec<(GoldTable, DataFrame)>,
}

impl Windows {
    /// `slice` is the window input of `fresh_hours` (the hours of the new
    /// rows), already read for the bot flags.
    pub fn compute(
        view: &SilverView<'_>,
        fresh_hours: &BTreeSet<i64>,
        slice: DataFrame,
        bots: &BotFlags,
        config: &GoldConfig,
    ) -> PolarsResult<Windows> {
        let mut hours = fresh_hours.clone();
        hours.extend(bots.hours_active()?);
        let slice =
            if hours.len() > fresh_hours.len() { view.hours(&hours, WINDOW_INPUT, None)?.collect()? } else { slice };
        let tables = collect_tables(window_tables(slice.lazy(), bots.flagged.clone().lazy(), config)?)?;
        Ok(Windows { hours, tables })
    }

    pub fn write(self, out: &mut Writer<'_>, commit: &mut Commit) -> Result<(), PipelineError> {
        for (table, df) in self.tables {
            out.write_hours(commit, table, df, &self.hours)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Scenario;
    use super::*;

    #[test]
    fn the_window_tables_after_a_micro_batch_are_those_of_a_rebuild() {
        for scenario in Scenario::all("windows") {
            scenario.refresh_and_commit(|view, fresh, out, commit| {
                let (fresh_hours, slice) = Scenario::fresh_slice(view, fresh);
                let bots = BotFlags::flag(view.data_dir, &slice, out.config)?;
                Windows::compute(view, &fresh_hours, slice, &bots, out.config)?.write(out, commit)
            });
            // Every window table is one `gold --recompute` can redo, and the
            // bot table comes from the same hours of Silver.
            for table in super::super::RECOMPUTABLE.into_iter().chain([GoldTable::BotAnomalies]) {
                scenario.assert_as_rebuilt(table);
            }
        }
    }
}
