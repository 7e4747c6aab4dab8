//! `dim_pages`: the rows of the pages a micro-batch has page views of,
//! merged with the rows Gold holds for them (`merge_pages` is associative,
//! so merging is what a rebuild computes) and rewritten in the hours (of
//! `first_seen`) they leave or land in. Bots count here too, so a newly
//! flagged visitor changes nothing.

use std::path::Path;

use polars::prelude::*;

use super::hours::{rewrite_dimension, Writer};
use crate::gold::pages::{merge_pages, page_rows, PAGE_INPUT};
use crate::gold::GoldTable;
use crate::storage::scan::{has_files, scan_table};
use crate::storage::{Commit, PipelineError};

fn page() -> [Expr; 2] {
    [col("site_id"), col("page_path")]
}

fn join_on_page(left: LazyFrame, right: LazyFrame, how: JoinType) -> LazyFrame {
    left.join(right, page(), page(), JoinArgs::new(how))
}

/// The `dim_pages` rows a micro-batch changes.
pub(super) struct PagesChange {
    /// The pages whose rows change (`site_id`, `page_path`).
    changed: DataFrame,
    /// Their rows now.
    rows: DataFrame,
    /// Their rows before, as Gold held them.
    old_rows: DataFrame,
}

impl PagesChange {
    /// `None` when the micro-batch has no page views.
    pub fn compute(data_dir: &Path, fresh: &DataFrame) -> Result<Option<PagesChange>, PipelineError> {
        let new = merge_pages(page_rows(fresh.select(PAGE_INPUT)?.lazy())).collect()?;
        if new.height() == 0 {
            return Ok(None);
        }
        let changed = new.select(["site_id", "page_path"])?;
        let old_rows = if has_files(data_dir, GoldTable::DimPages) {
            let paths = lit(changed.column("page_path")?.as_materialized_series().clone()).implode(false);
            join_on_page(
                scan_table(data_dir, GoldTable::DimPages)?
                    .filter(col("page_path").is_in(paths, false))
                    .drop(cols(["dt"])),
                changed.clone().lazy(),
                JoinType::Semi,
            )
            .collect()?
        } else {
            new.clear()
        };
        let rows = merge_pages(concat([old_rows.clone().lazy(), new.lazy()], UnionArgs::default())?).collect()?;
        Ok(Some(PagesChange { changed, rows, old_rows }))
    }

    /// Rewrites the hours the changed rows leave or land in.
    pub fn write(self, out: &mut Writer<'_>, commit: &mut Commit) -> Result<(), PipelineError> {
        let key = ["site_id", "page_path"];
        rewrite_dimension(out, commit, GoldTable::DimPages, key, &self.changed, self.rows, &self.old_rows)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Scenario;
    use super::*;

    #[test]
    fn dim_pages_after_a_micro_batch_is_that_of_a_rebuild() {
        for scenario in Scenario::all("pages") {
            scenario.refresh_and_commit(|view, fresh, out, commit| {
                if let Some(pages) = PagesChange::compute(view.data_dir, fresh)? {
                    pages.write(out, commit)?;
                }
                Ok(())
            });
            scenario.assert_as_rebuilt(GoldTable::DimPages);
        }
    }
}
