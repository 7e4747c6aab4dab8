//! `retention_weekly` and `retention_daily`: the people a micro-batch
//! touches taken out of their cohorts as they were and put back as they
//! are.
//!
//! Touched are the browsers with changed sessions (new events, or newly
//! flagged as bots) and those whose `identity_map` row changed (a sign-in
//! moves a browser's whole history to its user). Their people, before and
//! after, are the people whose rows can change: every browser of those
//! people is read (a user's other devices too), their active days computed
//! once from the sessions as Gold held them and once as they are now, and
//! the difference of what each adds to its cohort applied to the cohorts'
//! files. Counts of disjoint sets of people add up, so this is what a
//! rebuild computes.

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::*;

use super::hours::{ids_of, in_hours, join_on_visitor, read_hour, visitor, Writer};
use super::sessions::SessionsChange;
use crate::gold::cohorts::{active_days, as_contributions, contributions, no_identities, table, Period, COHORT_INPUT};
use crate::gold::{datetime_ms, GoldTable};
use crate::storage::scan::{has_files, scan_table};
use crate::storage::{Commit, PipelineError};
use crate::zones::Zones;

/// The cohort rows a micro-batch changes.
pub(super) struct CohortsChange {
    /// Per table: the cohorts' hours rewritten, and their rows now.
    tables: Vec<(Period, BTreeSet<i64>, DataFrame)>,
}

impl CohortsChange {
    /// `identities`: the `identity_map` rows the micro-batch changed, as
    /// they are now (`site_id`, `anonymous_id`, `user_id`, ...).
    pub fn compute(
        data_dir: &Path,
        sessions: &SessionsChange,
        newly_flagged: &DataFrame,
        identities: Option<&DataFrame>,
        zones: &Zones,
    ) -> Result<Option<CohortsChange>, PipelineError> {
        let mut touched = vec![sessions.visitors.clone().lazy().select(visitor()), newly_flagged.clone().lazy()];
        if let Some(rows) = identities {
            touched.push(rows.clone().lazy().select(visitor()));
        }
        let touched = concat(touched, UnionArgs::default())?.unique(None, UniqueKeepStrategy::Any).collect()?;
        if touched.height() == 0 {
            return Ok(None);
        }

        // Who each touched browser was and is: their users, and every
        // browser of those users (before or after).
        // Small (browsers that signed in): read once, used four times.
        let old_map = map_of(data_dir)?.collect()?.lazy();
        let new_map = match identities {
            Some(rows) => concat(
                [
                    join_on_visitor(old_map.clone(), rows.clone().lazy().select(visitor()), JoinType::Anti),
                    rows.clone().lazy().select([col("site_id"), col("anonymous_id"), col("user_id")]),
                ],
                UnionArgs::default(),
            )?,
            None => old_map.clone(),
        }
        .cache();
        let ids = ids_of(&touched)?;
        let users = concat(
            [old_map.clone(), new_map.clone()].map(|map| {
                map.filter(col("anonymous_id").is_in(ids.clone(), false)).select([col("site_id"), col("user_id")])
            }),
            UnionArgs::default(),
        )?
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?;
        let user_ids = lit(users.column("user_id")?.as_materialized_series().clone()).implode(false);
        let on_user = || [col("site_id"), col("user_id")];
        let their_browsers = |map: LazyFrame| {
            map.filter(col("user_id").is_in(user_ids.clone(), false))
                .join(users.clone().lazy(), on_user(), on_user(), JoinArgs::new(JoinType::Semi))
                .select(visitor())
        };
        // A browser the old map gave one of those users and the new one
        // does not is touched itself (its row changed).
        let members = concat([touched.clone().lazy(), their_browsers(new_map.clone())], UnionArgs::default())?
            .unique(None, UniqueKeepStrategy::Any)
            .collect()?;
        let member_ids = ids_of(&members)?;
        let of_members = |lf: LazyFrame| {
            join_on_visitor(
                lf.filter(col("anonymous_id").is_in(member_ids.clone(), false)),
                members.clone().lazy(),
                JoinType::Semi,
            )
        };

        // Their sessions as Gold held them, and as they are now (the hours
        // the sessions step rewrote, as it wrote them).
        let held = if has_files(data_dir, GoldTable::Sessions) {
            of_members(scan_table(data_dir, GoldTable::Sessions)?.select(COHORT_INPUT.map(col))).collect()?
        } else {
            DataFrame::new_infer_height(vec![
                Column::new_empty("site_id".into(), &DataType::String),
                Column::new_empty("anonymous_id".into(), &DataType::String),
                Column::new_empty("session_start".into(), &datetime_ms()),
            ])?
        };
        let now = concat(
            [
                held.clone().lazy().filter(in_hours("session_start", &sessions.hours).not()),
                of_members(sessions.hour_sessions.clone().lazy().select(COHORT_INPUT.map(col))),
            ],
            UnionArgs::default(),
        )?;
        let before = active_days(held.lazy(), of_members(old_map), zones)?.cache();
        let after = active_days(now, of_members(new_map), zones)?.cache();

        let mut tables = Vec::new();
        for period in Period::BOTH {
            let taken = contributions(before.clone(), period)?.with_column(-col("active"));
            let given = contributions(after.clone(), period)?;
            let delta = concat([taken, given], UnionArgs::default())?.collect()?;
            // Every cohort the people were or are in, whole: the hour of
            // its `cohort_start`, the first of its first day.
            let days = delta.column("_cohort")?.cast(&DataType::Int64)?;
            let hours: BTreeSet<i64> = days.i64()?.into_no_null_iter().map(|d| d * 24).collect();
            let mut parts = vec![delta.lazy()];
            for &hour in &hours {
                if let Some(rows) = read_hour(data_dir, period.table(), hour)? {
                    parts.push(as_contributions(rows.lazy(), period));
                }
            }
            let rows = table(concat(parts, UnionArgs::default())?, period)?.collect()?;
            tables.push((period, hours, rows));
        }
        Ok(Some(CohortsChange { tables }))
    }

    pub fn write(self, out: &mut Writer<'_>, commit: &mut Commit) -> Result<(), PipelineError> {
        for (period, hours, rows) in self.tables {
            out.write_hours(commit, period.table(), rows, &hours)?;
        }
        Ok(())
    }
}

/// `identity_map` as Gold holds it: (`site_id`, `anonymous_id`,
/// `user_id`).
fn map_of(data_dir: &Path) -> PolarsResult<LazyFrame> {
    if has_files(data_dir, GoldTable::IdentityMap) {
        Ok(scan_table(data_dir, GoldTable::IdentityMap)?.select([col("site_id"), col("anonymous_id"), col("user_id")]))
    } else {
        Ok(no_identities())
    }
}

#[cfg(test)]
mod tests {
    use super::super::bots::BotFlags;
    use super::super::dimensions::DimensionChange;
    use super::super::testing::Scenario;
    use super::*;
    use crate::gold::identities::IDENTITIES;

    #[test]
    fn retention_after_a_micro_batch_is_that_of_a_rebuild() {
        for scenario in Scenario::all("cohorts") {
            scenario.refresh_and_commit(|view, fresh, out, commit| {
                let (_, slice) = Scenario::fresh_slice(view, fresh);
                let bots = BotFlags::flag(view.data_dir, &slice, out.config)?;
                let sessions = SessionsChange::compute(view, fresh, &bots, out.config)?;
                let identities = DimensionChange::compute(view.data_dir, fresh, &IDENTITIES)?;
                let rows = identities.as_ref().map(|c| c.rows().clone());
                let change = CohortsChange::compute(
                    view.data_dir,
                    &sessions,
                    &bots.newly_flagged,
                    rows.as_ref(),
                    &out.config.zones,
                )?;
                // The steps the cohorts read, written as the refresh does.
                sessions.write(out, commit)?;
                if let Some(c) = identities {
                    c.write(out, commit)?;
                }
                if let Some(c) = change {
                    c.write(out, commit)?;
                }
                Ok(())
            });
            for period in Period::BOTH {
                scenario.assert_as_rebuilt(period.table());
            }
        }
    }
}
