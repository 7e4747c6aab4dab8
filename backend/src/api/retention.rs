//! The cohort heatmap: of the people first active in a week (or day), the
//! share active in each week (day) after, from `retention_weekly`
//! (`retention_daily`). The range picks the cohorts: those whose first
//! period starts in it, in the site's time zone.

use clickstream_schema::time::DAY_MS;
use polars::prelude::*;
use serde_json::{json, Value};

use super::require_gold;
use super::{Context, DashboardError, Params};
use crate::gold::cohorts::Period;
use crate::storage::range::{gold, ints};
use crate::zones::local_day;

/// `GET /api/retention?period=week` (or `day`): per cohort, oldest first,
/// its date, its size, and how many of it were active in each period
/// since (`active[0]` is the cohort itself; a period that has passed with
/// nobody back is 0, one still to come is absent), with the rates. All
/// sites together add up their cohorts (people are per site).
pub fn retention(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let period = match p.text("period", 8)?.as_deref() {
        None | Some("week") => Period::Week,
        Some("day") => Period::Day,
        Some(other) => {
            return Err(DashboardError::BadParameter(format!("period must be one of week, day (got '{other}')")))
        }
    };
    let length = if period == Period::Week { 7 } else { 1 };
    // Days since the epoch, on the site's calendar; weeks start on Monday
    // (day 0 was a Thursday).
    let zone = p.range.zone;
    let start_of = |day: i64| if length == 7 { day - (day + 3).rem_euclid(7) } else { day };
    let first = start_of(local_day(zone, p.from));
    let last = local_day(zone, p.to - 1);
    let current = start_of(local_day(zone, cx.now));
    let (cohort_col, offset_col) = period.columns();
    let mut cohorts = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, period.table(), p.site.as_deref(), first * DAY_MS, (last + 1) * DAY_MS)? {
        let df = lf
            .group_by([col(cohort_col), col(offset_col)])
            .agg([col("active").cast(DataType::Int64).sum()])
            .sort([cohort_col, offset_col], SortMultipleOptions::default())
            .collect()?;
        let (days, offsets, active) = (ints(&df, cohort_col)?, ints(&df, offset_col)?, ints(&df, "active")?);
        let mut i = 0;
        while i < df.height() {
            let cohort = days[i];
            let periods = ((current - cohort) / length + 1).max(1) as usize;
            let mut counts = vec![0i64; periods];
            while i < df.height() && days[i] == cohort {
                if let Some(slot) = usize::try_from(offsets[i]).ok().and_then(|k| counts.get_mut(k)) {
                    *slot = active[i];
                }
                i += 1;
            }
            let size = counts[0];
            let rates: Vec<Option<f64>> = counts.iter().map(|n| (size > 0).then(|| *n as f64 / size as f64)).collect();
            let date = chrono::DateTime::from_timestamp_millis(cohort * DAY_MS).map(|t| t.date_naive().to_string());
            cohorts.push(json!({ "cohort": date, "size": size, "active": counts, "rates": rates }));
        }
    }
    let period = if length == 7 { "week" } else { "day" };
    Ok(json!({ "range": p.range.name(), "period": period, "cohorts": cohorts }))
}
