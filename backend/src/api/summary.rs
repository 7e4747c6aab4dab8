//! `GET /api/summary`: the headline numbers.

use clickstream_schema::time::{DAY_MS, MINUTE_MS};
use polars::prelude::*;
use serde_json::{json, Map, Value};

use super::range::day_start;
use super::require_gold;
use super::{iso, Context, DashboardError, Params};
use crate::gold::GoldTable;
use crate::storage::range::{first_float, gold};

/// How far back "active" reaches.
pub const ACTIVE_WINDOW_MS: i64 = 5 * MINUTE_MS;

/// - `active_visitors`: distinct visitors with a session whose last event
///   is in the last 5 minutes (sessions started within the last day);
/// - `events_per_minute`: human events per minute over the last 5 complete
///   minutes;
/// - `revenue_today`: revenue since midnight in the site's time zone;
/// - `sessions`, `converted_sessions`, `conversion_rate`, `bounce_rate`:
///   of the sessions that started in the range (rates null without any);
/// - `events`: human events in the range; `revenue`: its revenue;
/// - `previous`: the range's numbers for the period of the same length
///   just before it, for the dashboard's deltas.
pub fn summary(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let now = cx.now;
    let site = p.site.as_deref();
    let active_visitors = match gold(&cx.data_dir, GoldTable::Sessions, site, now - DAY_MS, now + 1)? {
        Some(lf) => {
            let df = lf
                .filter(col("session_end").cast(DataType::Int64).gt_eq(lit(now - ACTIVE_WINDOW_MS)))
                .select([col("anonymous_id").n_unique().alias("n")])
                .collect()?;
            first_float(&df, "n")?
        }
        None => 0.0,
    };
    let minute = now.div_euclid(MINUTE_MS) * MINUTE_MS;
    let recent_events =
        sum_of(gold(&cx.data_dir, GoldTable::Traffic1m, site, minute - 5 * MINUTE_MS, minute)?, "events")?;
    let today = day_start(p.range.zone, now);
    let revenue_today = sum_of(gold(&cx.data_dir, GoldTable::Revenue5m, site, today, now)?, "revenue")?;
    let mut body = period(cx, site, p.from, p.to)?;
    let (from, to) = p.range.previous();
    let previous = period(cx, site, from, to)?;
    body.extend([
        ("range".to_string(), json!(p.range.name())),
        ("from".to_string(), json!(iso(p.from))),
        ("to".to_string(), json!(iso(p.to))),
        ("time_zone".to_string(), json!(p.range.zone.name())),
        ("active_visitors".to_string(), json!(active_visitors as u64)),
        ("events_per_minute".to_string(), json!(recent_events / 5.0)),
        ("revenue_today".to_string(), json!(revenue_today)),
        ("currency".to_string(), json!(cx.currency)),
        ("previous".to_string(), json!(previous)),
    ]);
    Ok(Value::Object(body))
}

/// The numbers of `[from, to)` the summary compares with the period before.
fn period(cx: &Context, site: Option<&str>, from: i64, to: i64) -> Result<Map<String, Value>, DashboardError> {
    let events = sum_of(gold(&cx.data_dir, GoldTable::Traffic1m, site, from, to)?, "events")?;
    let revenue = sum_of(gold(&cx.data_dir, GoldTable::Revenue5m, site, from, to)?, "revenue")?;
    let (sessions, converted, bounced) = match gold(&cx.data_dir, GoldTable::Sessions, site, from, to)? {
        Some(lf) => {
            let df = lf
                .select([
                    len().cast(DataType::Float64).alias("sessions"),
                    col("converted").cast(DataType::Float64).sum().alias("converted"),
                    col("bounced").cast(DataType::Float64).sum().alias("bounced"),
                ])
                .collect()?;
            (first_float(&df, "sessions")?, first_float(&df, "converted")?, first_float(&df, "bounced")?)
        }
        None => (0.0, 0.0, 0.0),
    };
    let rate = |n: f64| (sessions > 0.0).then(|| n / sessions);
    let body = json!({
        "sessions": sessions as u64,
        "converted_sessions": converted as u64,
        "conversion_rate": rate(converted),
        "bounce_rate": rate(bounced),
        "events": events as u64,
        "revenue": revenue,
    });
    Ok(match body {
        Value::Object(map) => map,
        _ => Map::new(),
    })
}

/// The sum of a column over the rows, 0 without any.
pub fn sum_of(lf: Option<LazyFrame>, column: &str) -> PolarsResult<f64> {
    match lf {
        Some(lf) => first_float(&lf.select([col(column).cast(DataType::Float64).sum()]).collect()?, column),
        None => Ok(0.0),
    }
}
