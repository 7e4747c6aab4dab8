//! `retention_weekly` and `retention_daily`: of the people first seen in a
//! week (a day), how many came back in each week (day) after.
//!
//! A person is a signed-in user across every browser `identity_map` ties
//! to them, else a browser (`anonymous_id`). Signing in therefore moves a
//! browser's whole history into its user's cohort, which is why the
//! refresh recomputes the people a micro-batch touches rather than adding
//! rows ([`crate::gold::refresh`]). Both tables count human sessions
//! (`sessions`): a person is active on the days their sessions start on,
//! in the site's time zone ([`crate::zones::Zones`]).

use clickstream_schema::time::DAY_MS;
use polars::prelude::*;

use super::{datetime_ms, rate};
use crate::zones::Zones;

/// The `sessions` columns the cohorts read.
pub const COHORT_INPUT: [&str; 3] = ["site_id", "anonymous_id", "session_start"];

/// The two tables' periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
}

impl Period {
    pub const BOTH: [Period; 2] = [Period::Week, Period::Day];

    pub fn table(self) -> super::GoldTable {
        match self {
            Period::Day => super::GoldTable::RetentionDaily,
            Period::Week => super::GoldTable::RetentionWeekly,
        }
    }

    /// The cohort's column and the offset's, in the table.
    pub fn columns(self) -> (&'static str, &'static str) {
        match self {
            Period::Day => ("cohort_day", "day_offset"),
            Period::Week => ("cohort_week", "week_offset"),
        }
    }

    fn days(self) -> i32 {
        match self {
            Period::Day => 1,
            Period::Week => 7,
        }
    }

    /// The first day (since the epoch) of the period holding `day`: weeks
    /// start on Monday, as ISO 8601 and `dim_date.week_start` have them.
    fn start(self, day: Expr) -> Expr {
        match self {
            Period::Day => day,
            // Day 0, 1970-01-01, was a Thursday: three days after a Monday.
            // (+ 7 keeps the remainder's operand positive.)
            Period::Week => day.clone() - (day + lit(3 + 7)) % lit(7),
        }
    }
}

/// Both tables, from the `sessions` table and `identity_map`.
pub fn retention(
    sessions: LazyFrame,
    identities: LazyFrame,
    zones: &Zones,
) -> PolarsResult<Vec<(super::GoldTable, LazyFrame)>> {
    let days = active_days(sessions, identities, zones)?.cache();
    Period::BOTH.into_iter().map(|p| Ok((p.table(), table(contributions(days.clone(), p)?, p)?))).collect()
}

/// An `identity_map` without rows (no browser identified yet), with the
/// columns [`active_days`] reads.
pub fn no_identities() -> LazyFrame {
    let empty = |name: &str| Column::new_empty(name.into(), &DataType::String);
    DataFrame::new_infer_height(vec![empty("site_id"), empty("anonymous_id"), empty("user_id")])
        .expect("three empty columns")
        .lazy()
}

/// Each person's active days: (`site_id`, `person`, `day`: days since the
/// epoch in the site's zone), once each. `person` is `u:` and the user id
/// for a browser `identities` (`identity_map` rows) ties to a user, else
/// `a:` and the browser's id.
pub fn active_days(sessions: LazyFrame, identities: LazyFrame, zones: &Zones) -> PolarsResult<LazyFrame> {
    let on = || [col("site_id"), col("anonymous_id")];
    let users = identities.select([col("site_id"), col("anonymous_id"), col("user_id").alias("_user")]);
    let sessions = sessions.select(COHORT_INPUT.map(col)).join(users, on(), on(), JoinArgs::new(JoinType::Left));
    let person = when(col("_user").is_not_null())
        .then(lit("u:") + col("_user"))
        .otherwise(lit("a:") + col("anonymous_id"))
        .alias("person");
    let local = local_ms(sessions, "session_start", zones)?;
    Ok(local
        .select([col("site_id"), person, col("_local").floor_div(lit(DAY_MS)).cast(DataType::Int32).alias("day")])
        .unique(None, UniqueKeepStrategy::Any))
}

/// `frame` with `_local`: `ts` as ms on the site's wall clock. Offsets are
/// looked up per quarter hour (every zone's offset, and the instants they
/// change at, are whole quarter hours), so only the distinct quarter hours
/// of each site are converted.
fn local_ms(frame: LazyFrame, ts: &str, zones: &Zones) -> PolarsResult<LazyFrame> {
    let utc = super::ts_ms(ts);
    if zones.all_utc() {
        return Ok(frame.with_column(utc.alias("_local")));
    }
    const QUARTER: i64 = 15 * 60_000;
    let frame = frame.with_column(utc.clone().floor_div(lit(QUARTER)).alias("_quarter")).cache();
    let quarters =
        frame.clone().select([col("site_id"), col("_quarter")]).unique(None, UniqueKeepStrategy::Any).collect()?;
    let offsets: Vec<i64> = quarters
        .column("site_id")?
        .str()?
        .iter()
        .zip(quarters.column("_quarter")?.i64()?.iter())
        .map(|(site, q)| zones.offset_ms(site.unwrap_or(""), q.unwrap_or(0) * QUARTER))
        .collect();
    let offsets = quarters.hstack(&[Column::new("_zone_offset".into(), offsets)])?;
    let on = || [col("site_id"), col("_quarter")];
    Ok(frame
        .join(offsets.lazy(), on(), on(), JoinArgs::new(JoinType::Left))
        .with_column((utc + col("_zone_offset").fill_null(lit(0))).alias("_local"))
        .drop(cols(["_quarter", "_zone_offset"])))
}

/// What the people in `days` add to a table: (`site_id`, `_cohort`, the
/// first day of the cohort, `_offset` in periods, `active`: how many of
/// them). Counts add up over
/// disjoint sets of people, which is what lets a refresh take a set of
/// people's old rows out and put their new ones in.
pub fn contributions(days: LazyFrame, period: Period) -> PolarsResult<LazyFrame> {
    let person = || [col("site_id"), col("person")];
    Ok(days
        .select([col("site_id"), col("person"), period.start(col("day")).alias("_period")])
        .unique(None, UniqueKeepStrategy::Any)
        .with_column(col("_period").min().over(person())?.alias("_cohort"))
        .group_by([
            col("site_id"),
            col("_cohort"),
            (col("_period") - col("_cohort")).floor_div(lit(period.days())).alias("_offset"),
        ])
        .agg([len().cast(DataType::Int64).alias("active")]))
}

/// A table's rows back as contributions, to add to or take from.
pub fn as_contributions(rows: LazyFrame, period: Period) -> LazyFrame {
    let (cohort, offset) = period.columns();
    rows.select([
        col("site_id"),
        col(cohort).cast(DataType::Int32).alias("_cohort"),
        col(offset).alias("_offset"),
        col("active").cast(DataType::Int64),
    ])
}

/// The table from contributions (summed per cohort and offset).
///
/// Columns (`retention_weekly`; `retention_daily` has `cohort_day` and
/// `day_offset`):
/// - `site_id`; `cohort_week` (Date, the Monday of the week its people
///   were first active in, in the site's zone); `cohort_start` (that day
///   as a timestamp, the partition column);
/// - `week_offset` (i32; 0 is the cohort's own week);
/// - `cohort_size` (u32: people in the cohort), `active` (u32: of them,
///   active in that week), `retention_rate` (`active / cohort_size`).
///
/// Weeks nobody came back in have no row.
pub fn table(contributions: LazyFrame, period: Period) -> PolarsResult<LazyFrame> {
    let (cohort, offset) = period.columns();
    let cohort_key = || [col("site_id"), col("_cohort")];
    let size = when(col("_offset").eq(lit(0))).then(col("active")).otherwise(lit(0i64)).sum().over(cohort_key())?;
    Ok(contributions
        .group_by([col("site_id"), col("_cohort"), col("_offset")])
        .agg([col("active").sum()])
        .filter(col("active").gt(lit(0)))
        .with_column(size.alias("_size"))
        .select([
            col("site_id"),
            col("_cohort").cast(DataType::Date).alias(cohort),
            col("_cohort").cast(DataType::Date).cast(datetime_ms()).alias("cohort_start"),
            col("_offset").cast(DataType::Int32).alias(offset),
            col("_size").cast(DataType::UInt32).alias("cohort_size"),
            col("active").cast(DataType::UInt32),
            rate(col("active"), col("_size")).alias("retention_rate"),
        ])
        .sort(["site_id", cohort, offset], SortMultipleOptions::default()))
}
