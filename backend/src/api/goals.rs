//! The goals, custom events and links panels: `goals_1h`,
//! `custom_events_1h` and `link_clicks_1h` over the hours the range covers.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde_json::{json, Value};

use super::require_gold;
use super::{Context, DashboardError, Params};
use crate::gold::GoldTable;
use crate::storage::range::{floats, gold, ints, texts};

/// `GET /api/goals`: per goal completed in the range, its completions,
/// converting sessions (added over hours: a session converting in two
/// hours counts in both), their revenue, and the converting sessions'
/// share of the sessions that started in the range (the headline
/// conversion rate's denominator).
pub fn goals(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let site = p.site.as_deref();
    let sessions = match gold(&cx.data_dir, GoldTable::Sessions, site, p.from, p.to)? {
        Some(lf) => ints(&lf.select([len().cast(DataType::Int64).alias("n")]).collect()?, "n")?.first().copied(),
        None => None,
    }
    .unwrap_or(0);
    let mut rows = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::Goals1h, site, p.from_hour(), p.to)? {
        let df = lf
            .group_by([col("goal")])
            .agg([
                col("completions").cast(DataType::Int64).sum(),
                col("converting_sessions").cast(DataType::Int64).sum(),
                col("revenue").sum(),
            ])
            .sort_by_exprs(
                [col("completions"), col("goal")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .collect()?;
        let (goal, completions, converting, revenue) = (
            texts(&df, "goal", "")?,
            ints(&df, "completions")?,
            ints(&df, "converting_sessions")?,
            floats(&df, "revenue")?,
        );
        for i in 0..goal.len() {
            let rate = (sessions > 0).then(|| converting[i] as f64 / sessions as f64);
            rows.push(json!({
                "goal": goal[i],
                "completions": completions[i],
                "converting_sessions": converting[i],
                "conversion_rate": rate,
                "revenue": revenue[i],
            }));
        }
    }
    Ok(json!({ "range": p.range.name(), "sessions": sessions, "currency": cx.currency, "goals": rows }))
}

/// `GET /api/custom_events?limit=10`: the `limit` custom events with the
/// most events in the range, each with its visitors (added over hours) and
/// its counts per value of the props the config lists.
pub fn custom_events(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let limit = p.count("limit", 10, 100)?;
    let mut events = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::CustomEvents1h, p.site.as_deref(), p.from_hour(), p.to)? {
        let df = lf
            .group_by([col("event_name"), col("prop"), col("value")])
            .agg([col("events").cast(DataType::Int64).sum(), col("visitors").cast(DataType::Int64).sum()])
            .sort_by_exprs(
                [col("events"), col("event_name"), col("prop"), col("value")],
                SortMultipleOptions::default().with_order_descending_multi([true, false, false, false]),
            )
            .collect()?;
        let (name, prop, value) = (texts(&df, "event_name", "")?, texts(&df, "prop", "")?, texts(&df, "value", "")?);
        let (count, visitors) = (ints(&df, "events")?, ints(&df, "visitors")?);
        // The totals (prop null) in order of events; then each name's values.
        let mut by_prop: BTreeMap<&str, BTreeMap<&str, Vec<Value>>> = BTreeMap::new();
        for i in 0..name.len() {
            if !prop[i].is_empty() {
                let values = by_prop.entry(name[i].as_str()).or_default().entry(prop[i].as_str()).or_default();
                values.push(json!({ "value": value[i], "events": count[i], "visitors": visitors[i] }));
            }
        }
        for i in (0..name.len()).filter(|&i| prop[i].is_empty()).take(limit) {
            let props = by_prop.remove(name[i].as_str()).unwrap_or_default();
            events.push(json!({ "event_name": name[i], "events": count[i], "visitors": visitors[i], "props": props }));
        }
    }
    Ok(json!({ "range": p.range.name(), "events": events }))
}

/// `GET /api/links?limit=10`: `link_clicks_1h` over the hours the range
/// touches: the `limit` outbound links and the `limit` downloaded files
/// with the most clicks, each with `visitors` (added over hours).
pub fn links(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let limit = p.count("limit", 10, 100)?;
    let (mut outbound, mut downloads) = (Vec::new(), Vec::new());
    if let Some(lf) = gold(&cx.data_dir, GoldTable::LinkClicks1h, p.site.as_deref(), p.from_hour(), p.to)? {
        let df = lf
            .group_by([col("kind"), col("url")])
            .agg([col("clicks").cast(DataType::Int64).sum(), col("visitors").cast(DataType::Int64).sum()])
            .sort_by_exprs(
                [col("clicks"), col("url")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .collect()?;
        let (kind, url) = (texts(&df, "kind", "")?, texts(&df, "url", "")?);
        let (clicks, visitors) = (ints(&df, "clicks")?, ints(&df, "visitors")?);
        for i in 0..df.height() {
            let list = if kind[i] == "download" { &mut downloads } else { &mut outbound };
            if list.len() < limit {
                list.push(json!({ "url": url[i], "clicks": clicks[i], "visitors": visitors[i] }));
            }
        }
    }
    Ok(json!({ "range": p.range.name(), "outbound": outbound, "downloads": downloads }))
}
