//! The merged dimensions (`dim_pages`, `dim_products`): the rows of the
//! keys a micro-batch has events of, merged with the rows Gold holds for
//! them (the merge is associative, so merging is what a rebuild computes)
//! and rewritten in the hours (of `first_seen`) they leave or land in.
//! Bots count here too, so a newly flagged visitor changes nothing.

use std::path::Path;

use polars::prelude::*;

use super::hours::{rewrite_dimension, Writer};
use crate::gold::dimension::Dimension;
use crate::storage::scan::{has_files, scan_table};
use crate::storage::{Commit, PipelineError};

/// The rows of a dimension a micro-batch changes.
pub(super) struct DimensionChange {
    dimension: &'static Dimension,
    /// The keys whose rows change (`site_id` and the dimension's key).
    changed: DataFrame,
    /// Their rows now.
    rows: DataFrame,
    /// Their rows before, as Gold held them.
    old_rows: DataFrame,
}

impl DimensionChange {
    /// `None` when the micro-batch has no events with the dimension's key.
    pub fn compute(
        data_dir: &Path,
        fresh: &DataFrame,
        dimension: &'static Dimension,
    ) -> Result<Option<DimensionChange>, PipelineError> {
        let Dimension { table, key, input, rows, merge } = *dimension;
        let new = merge(rows(fresh.select(input.iter().copied())?.lazy())).collect()?;
        if new.height() == 0 {
            return Ok(None);
        }
        let changed = new.select(["site_id", key])?;
        let on = || [col("site_id"), col(key)];
        let old_rows = if has_files(data_dir, table) {
            // A filter on the keys lets the reader skip other rows before
            // the join matches sites.
            let keys = lit(changed.column(key)?.as_materialized_series().clone()).implode(false);
            scan_table(data_dir, table)?
                .filter(col(key).is_in(keys, false))
                .drop(cols(["dt"]))
                .join(changed.clone().lazy(), on(), on(), JoinArgs::new(JoinType::Semi))
                .collect()?
        } else {
            new.clear()
        };
        let rows = merge(concat([old_rows.clone().lazy(), new.lazy()], UnionArgs::default())?).collect()?;
        Ok(Some(DimensionChange { dimension, changed, rows, old_rows }))
    }

    /// The changed keys' rows now.
    pub fn rows(&self) -> &DataFrame {
        &self.rows
    }

    /// Rewrites the hours the changed rows leave or land in.
    pub fn write(self, out: &mut Writer<'_>, commit: &mut Commit) -> Result<(), PipelineError> {
        let Dimension { table, key, .. } = *self.dimension;
        rewrite_dimension(out, commit, table, ["site_id", key], &self.changed, self.rows, &self.old_rows)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Scenario;
    use super::*;
    use crate::gold::dimension::DIMENSIONS;

    #[test]
    fn each_dimension_after_a_micro_batch_is_that_of_a_rebuild() {
        for dimension in DIMENSIONS {
            for scenario in Scenario::all(dimension.table.name()) {
                scenario.refresh_and_commit(|view, fresh, out, commit| {
                    if let Some(change) = DimensionChange::compute(view.data_dir, fresh, dimension)? {
                        change.write(out, commit)?;
                    }
                    Ok(())
                });
                scenario.assert_as_rebuilt(dimension.table);
            }
        }
    }
}
