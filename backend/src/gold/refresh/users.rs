//! `dim_users`: the rows of the visitors whose sessions changed (new
//! events, or newly flagged as bots), rewritten in the hours (of
//! `first_seen`) they leave or land in.
//!
//! The common case, a visitor whose only new session is their latest one
//! (an ongoing visit goes on, or a new visit starts), is merged into the
//! visitor's row: the sessions it replaced are inside it, so counts and
//! sums move by the difference, first and last seen by the min and max,
//! and the user id is its own if it has one. Other visitors (late events,
//! bots) are recomputed from all their sessions.

use std::path::Path;

use polars::prelude::*;

use super::hours::{ids_of, in_hours, join_on_visitor, rewrite_dimension, visitor, Writer};
use super::sessions::SessionsChange;
use crate::gold::{datetime_ms, dim_users, GoldTable};
use crate::storage::scan::{has_files, scan_table};
use crate::storage::{Commit, PipelineError};

/// The `dim_users` rows a micro-batch changes.
pub(super) struct UsersChange {
    /// The visitors whose rows change.
    changed: DataFrame,
    /// Their rows now (none for a visitor left without sessions).
    rows: DataFrame,
    /// Their rows before, as Gold held them.
    old_rows: DataFrame,
}

impl UsersChange {
    /// `None` when no visitor's sessions changed.
    pub fn compute(
        data_dir: &Path,
        sessions: &SessionsChange,
        newly_flagged: &DataFrame,
    ) -> Result<Option<UsersChange>, PipelineError> {
        let changed = concat(
            [sessions.visitors.clone().lazy().select(visitor()), newly_flagged.clone().lazy()],
            UnionArgs::default(),
        )?
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?;
        if changed.height() == 0 {
            return Ok(None);
        }
        let old_rows = if has_files(data_dir, GoldTable::DimUsers) {
            join_on_visitor(
                scan_table(data_dir, GoldTable::DimUsers)?
                    .filter(col("anonymous_id").is_in(ids_of(&changed)?, false))
                    .drop(cols(["dt"])),
                changed.clone().lazy(),
                JoinType::Semi,
            )
            .collect()?
        } else {
            DataFrame::empty()
        };
        let rows = users_now(data_dir, &changed, &old_rows, sessions)?;
        Ok(Some(UsersChange { changed, rows, old_rows }))
    }

    /// Rewrites the hours the changed rows leave or land in.
    pub fn write(self, out: &mut Writer<'_>, commit: &mut Commit) -> Result<(), PipelineError> {
        let key = ["site_id", "anonymous_id"];
        rewrite_dimension(out, commit, GoldTable::DimUsers, key, &self.changed, self.rows, &self.old_rows)
    }
}

/// The rows of the `changed` visitors after the micro-batch: merged into
/// `old_rows` where that is exact, recomputed from sessions otherwise.
fn users_now(
    data_dir: &Path,
    changed: &DataFrame,
    old_rows: &DataFrame,
    change: &SessionsChange,
) -> Result<DataFrame, PipelineError> {
    // Per visitor: what was added, what was replaced.
    let by_start = SortMultipleOptions::default;
    let added = change.added.clone().lazy().group_by(visitor()).agg([
        len().alias("_added"),
        col("revenue").sum().alias("_added_revenue"),
        col("converted").sum().cast(DataType::UInt32).alias("_added_converted"),
        col("session_start").min().alias("_added_first"),
        col("session_end").max().alias("_added_last"),
        col("utm_source").sort_by([col("session_start")], by_start()).first().alias("_added_utm"),
        col("country").sort_by([col("session_start")], by_start()).first().alias("_added_country"),
        col("user_id").sort_by([col("session_start")], by_start()).last().alias("_added_user"),
    ]);
    let replaced = if change.replaced.height() > 0 {
        change.replaced.clone().lazy().group_by(visitor()).agg([
            len().alias("_replaced"),
            col("revenue").sum().alias("_replaced_revenue"),
            col("converted").sum().cast(DataType::UInt32).alias("_replaced_converted"),
        ])
    } else {
        added.clone().select([
            col("site_id"),
            col("anonymous_id"),
            lit(0u32).alias("_replaced"),
            lit(0.0).alias("_replaced_revenue"),
            lit(0u32).alias("_replaced_converted"),
        ])
    };
    let mut merged = join_on_visitor(added, replaced, JoinType::Left);
    merged = if old_rows.height() > 0 {
        join_on_visitor(merged, old_rows.clone().lazy(), JoinType::Left)
    } else {
        merged.with_columns(
            [
                ("user_id", DataType::String),
                ("first_seen", datetime_ms()),
                ("last_seen", datetime_ms()),
                ("sessions", DataType::UInt32),
                ("lifetime_revenue", DataType::Float64),
                ("purchases_sessions", DataType::UInt32),
                ("first_utm_source", DataType::String),
                ("country", DataType::String),
            ]
            .map(|(name, dtype)| lit(NULL).cast(dtype).alias(name)),
        )
    };
    let zero = |c: &str| col(c).fill_null(lit(0));
    // One added session, and it is the visitor's latest.
    let mergeable =
        col("_added").eq(lit(1)).and(col("last_seen").is_null().or(col("_added_last").gt_eq(col("last_seen"))));
    let first_is_added = col("first_seen").is_null().or(col("_added_first").lt_eq(col("first_seen")));
    let merged = merged.with_column(mergeable.alias("_mergeable")).collect()?;
    let rows = merged.clone().lazy().filter(col("_mergeable")).select([
        col("site_id"),
        col("anonymous_id"),
        when(col("_added_user").is_not_null()).then(col("_added_user")).otherwise(col("user_id")).alias("user_id"),
        when(first_is_added.clone()).then(col("_added_first")).otherwise(col("first_seen")).alias("first_seen"),
        col("_added_last").alias("last_seen"),
        (zero("sessions") - zero("_replaced") + col("_added")).cast(DataType::UInt32).alias("sessions"),
        (col("lifetime_revenue").fill_null(lit(0.0)) - col("_replaced_revenue").fill_null(lit(0.0))
            + col("_added_revenue"))
        .alias("lifetime_revenue"),
        (zero("purchases_sessions") - zero("_replaced_converted") + col("_added_converted"))
            .cast(DataType::UInt32)
            .alias("purchases_sessions"),
        when(first_is_added.clone())
            .then(col("_added_utm"))
            .otherwise(col("first_utm_source"))
            .alias("first_utm_source"),
        when(first_is_added).then(col("_added_country")).otherwise(col("country")).alias("country"),
    ]);

    // Everyone else (not mergeable, or whose sessions all went): from all
    // their sessions, the rewritten hours' as just computed.
    let merged_visitors = merged.lazy().filter(col("_mergeable")).select(visitor()).collect()?;
    let recompute =
        join_on_visitor(changed.clone().lazy(), merged_visitors.clone().lazy(), JoinType::Anti).collect()?;
    let (merged_count, recompute_count) = (merged_visitors.height(), recompute.height());
    let mut users = vec![rows];
    if recompute.height() > 0 {
        let mut their_sessions =
            vec![join_on_visitor(change.hour_sessions.clone().lazy(), recompute.clone().lazy(), JoinType::Semi)];
        if has_files(data_dir, GoldTable::Sessions) {
            let on_disk = scan_table(data_dir, GoldTable::Sessions)?
                .filter(
                    col("anonymous_id")
                        .is_in(ids_of(&recompute)?, false)
                        .and(in_hours("session_start", &change.hours).not()),
                )
                .drop(cols(["dt", "is_final"]));
            their_sessions.push(join_on_visitor(on_disk, recompute.lazy(), JoinType::Semi));
        }
        users.push(dim_users(concat(their_sessions, UnionArgs::default())?));
    }
    let users = concat(users, UnionArgs::default())?.collect()?;
    tracing::debug!(merged = merged_count, recomputed = recompute_count, "dim_users rows");
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::super::bots::BotFlags;
    use super::super::testing::Scenario;
    use super::*;

    #[test]
    fn dim_users_after_a_micro_batch_is_that_of_a_rebuild() {
        for scenario in Scenario::all("users") {
            scenario.refresh_and_commit(|view, fresh, out, commit| {
                let (_, slice) = Scenario::fresh_slice(view, fresh);
                let bots = BotFlags::flag(view.data_dir, &slice, out.config)?;
                let sessions = SessionsChange::compute(view, fresh, &bots, out.config)?;
                if let Some(users) = UsersChange::compute(view.data_dir, &sessions, &bots.newly_flagged)? {
                    users.write(out, commit)?;
                }
                Ok(())
            });
            scenario.assert_as_rebuilt(GoldTable::DimUsers);
        }
    }
}
