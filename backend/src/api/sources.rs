//! The acquisition panel: where sessions came from, by channel and by
//! source / medium, from the `sessions` table (its `source`, `medium` and
//! `channel`) over the range, so that visitors are distinct over the whole
//! range (`sources_1h` counts them per hour).

use polars::prelude::*;
use serde_json::{json, Value};

use super::require_gold;
use super::{Context, DashboardError, Params};
use crate::gold::GoldTable;
use crate::storage::range::{gold, ints, texts};

/// The figures of a group of sessions, in the order [`rows`] reads them.
fn figures() -> [Expr; 5] {
    [
        len().cast(DataType::Int64).alias("sessions"),
        col("anonymous_id").n_unique().cast(DataType::Int64).alias("visitors"),
        col("bounced").cast(DataType::Int64).sum().alias("bounces"),
        col("converted").cast(DataType::Int64).sum().alias("conversions"),
        col("revenue").sum().alias("revenue"),
    ]
}

/// One JSON object per row: `keys` as text, then the [`figures`] and
/// their rates.
fn rows(df: &DataFrame, keys: &[&str]) -> Result<Vec<Value>, DashboardError> {
    let keyed: Vec<Vec<String>> = keys.iter().map(|k| texts(df, k, "")).collect::<PolarsResult<_>>()?;
    let (sessions, visitors) = (ints(df, "sessions")?, ints(df, "visitors")?);
    let (bounces, conversions) = (ints(df, "bounces")?, ints(df, "conversions")?);
    let revenue: Vec<f64> = df.column("revenue")?.f64()?.iter().map(|r| r.unwrap_or(0.0)).collect();
    Ok((0..df.height())
        .map(|i| {
            let mut row = serde_json::Map::new();
            for (key, values) in keys.iter().zip(&keyed) {
                row.insert((*key).to_string(), json!(values[i]));
            }
            let rate = |n: i64| (sessions[i] > 0).then(|| n as f64 / sessions[i] as f64);
            row.extend([
                ("sessions".to_string(), json!(sessions[i])),
                ("visitors".to_string(), json!(visitors[i])),
                ("bounces".to_string(), json!(bounces[i])),
                ("bounce_rate".to_string(), json!(rate(bounces[i]))),
                ("conversions".to_string(), json!(conversions[i])),
                ("conversion_rate".to_string(), json!(rate(conversions[i]))),
                ("revenue".to_string(), json!(revenue[i])),
            ]);
            Value::Object(row)
        })
        .collect())
}

/// `GET /api/sources?limit=10&channel=Organic%20Search`: sessions, distinct
/// visitors, bounces, conversions and revenue per channel (every channel
/// with sessions, most first), and the `limit` sources (source, medium,
/// channel) most sessions came from, of one channel when `channel` is
/// given. Sessions count in the range their start falls in.
pub fn sources(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let limit = p.count("limit", 10, 100)?;
    let channel = p.text("channel", 64)?;
    let (site, from) = (p.site.as_deref(), p.from_hour());
    let (mut channels, mut sources) = (Vec::new(), Vec::new());
    if let Some(lf) = gold(&cx.data_dir, GoldTable::Sessions, site, from, p.to)? {
        let read = ["anonymous_id", "bounced", "converted", "revenue", "source", "medium", "channel"];
        let lf = lf.select(read.map(col)).cache();
        let most = |keys: &[&str]| {
            let mut by: Vec<Expr> = vec![col("sessions")];
            by.extend(keys.iter().map(|k| col(*k)));
            let descending = std::iter::once(true).chain(keys.iter().map(|_| false)).collect::<Vec<_>>();
            (by, SortMultipleOptions::default().with_order_descending_multi(descending))
        };
        let (by, order) = most(&["channel"]);
        let df = lf.clone().group_by([col("channel")]).agg(figures()).sort_by_exprs(by, order).collect()?;
        channels = rows(&df, &["channel"])?;
        let keys = ["source", "medium", "channel"];
        let chosen = match &channel {
            Some(c) => lf.filter(col("channel").eq(lit(c.clone()))),
            None => lf,
        };
        let (by, order) = most(&keys);
        let df =
            chosen.group_by(keys.map(col)).agg(figures()).sort_by_exprs(by, order).limit(limit as IdxSize).collect()?;
        sources = rows(&df, &keys)?;
    }
    Ok(json!({ "range": p.range.name(), "channel": channel, "channels": channels, "sources": sources }))
}
