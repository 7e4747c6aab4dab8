//! The dashboard's charts, one function per endpoint. Each reads one Gold
//! table (or `rejects`) for the range and shapes it for drawing; the
//! arithmetic stays in Polars.

use std::collections::BTreeMap;

use clickstream_schema::time::{DAY_MS, HOUR_MS, MINUTE_MS};
use polars::prelude::*;
use serde_json::{json, Map, Value};

use super::require_gold;
use super::{iso, Context, DashboardError, Params};
use crate::gold::GoldTable;
use crate::storage::range::{floats, gold, ints, rejects as read_rejects, texts};

/// Milliseconds of a time column, floored to `bucket` on the range's time
/// zone's boundaries (an hour or a day starts on its own hours).
fn bucket_of(column: &str, bucket: i64, p: &Params) -> Expr {
    let off = p.range.offset_ms();
    (col(column).cast(DataType::Int64) + lit(off)).floor_div(lit(bucket)) * lit(bucket) - lit(off)
}

fn floor(ms: i64, unit: i64) -> i64 {
    ms.div_euclid(unit) * unit
}

/// `GET /api/traffic`: per bucket (a minute over an hour, five minutes over
/// a day, an hour over a week), human events and page views summed;
/// `active_users` and `sessions` are the busiest minute's, since visitors
/// of different minutes cannot be added up. Buckets without traffic are
/// left out.
pub fn traffic(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let bucket = p.range.traffic_bucket_ms();
    let mut points = Vec::new();
    if let Some(lf) =
        gold(&cx.data_dir, GoldTable::Traffic1m, p.site.as_deref(), p.range.bucket_start(p.from, bucket), p.to)?
    {
        let counts = ["events", "page_views", "active_users", "sessions"];
        let df = lf
            .group_by([col("window_start")])
            .agg(counts.map(|c| col(c).cast(DataType::Int64).sum()))
            .group_by([bucket_of("window_start", bucket, p).alias("t")])
            .agg([col("events").sum(), col("page_views").sum(), col("active_users").max(), col("sessions").max()])
            .sort(["t"], SortMultipleOptions::default())
            .collect()?;
        let t = ints(&df, "t")?;
        let columns = counts.map(|c| ints(&df, c));
        let [events, page_views, active_users, sessions] = columns;
        let (events, page_views, active_users, sessions) = (events?, page_views?, active_users?, sessions?);
        for i in 0..t.len() {
            points.push(json!({
                "t": iso(t[i]),
                "events": events[i],
                "page_views": page_views[i],
                "active_users": active_users[i],
                "sessions": sessions[i],
            }));
        }
    }
    Ok(json!({ "range": p.range.name(), "bucket": bucket_name(bucket), "points": points }))
}

/// `GET /api/revenue?top=5`: revenue per bucket (five minutes, hours over a
/// week) split by the `top` products of the range, the rest as "other",
/// and each product's totals.
pub fn revenue(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let top = p.count("top", 5, 20)?;
    let bucket = p.range.revenue_bucket_ms();
    let (mut products, mut points, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(lf) =
        gold(&cx.data_dir, GoldTable::Revenue5m, p.site.as_deref(), p.range.bucket_start(p.from, bucket), p.to)?
    {
        let lf = lf.cache();
        let by_product = lf
            .clone()
            .group_by([col("product_id")])
            .agg([
                col("revenue").sum(),
                col("orders").cast(DataType::Int64).sum(),
                col("units").cast(DataType::Int64).sum(),
            ])
            .sort_by_exprs(
                [col("revenue"), col("product_id")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .collect()?;
        let (ids, revenue, orders, units) = (
            texts(&by_product, "product_id", "(none)")?,
            floats(&by_product, "revenue")?,
            ints(&by_product, "orders")?,
            ints(&by_product, "units")?,
        );
        for i in 0..ids.len() {
            totals.push(json!({ "product_id": ids[i], "revenue": revenue[i], "orders": orders[i], "units": units[i] }));
        }
        products = ids.iter().take(top).cloned().collect();
        if ids.len() > top {
            products.push("other".to_string());
        }

        let per_bucket = lf
            .group_by([bucket_of("window_start", bucket, p).alias("t"), col("product_id")])
            .agg([col("revenue").sum()])
            .collect()?;
        let (t, id, amount) =
            (ints(&per_bucket, "t")?, texts(&per_bucket, "product_id", "(none)")?, floats(&per_bucket, "revenue")?);
        let mut buckets: BTreeMap<i64, BTreeMap<&str, f64>> = BTreeMap::new();
        for i in 0..t.len() {
            let key = if products[..top.min(ids.len())].contains(&id[i]) { id[i].as_str() } else { "other" };
            *buckets.entry(t[i]).or_default().entry(key).or_default() += amount[i];
        }
        for (t, split) in buckets {
            let total: f64 = split.values().sum();
            let by_product: Map<String, Value> = split.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
            points.push(json!({ "t": iso(t), "total": total, "by_product": by_product }));
        }
    }
    Ok(json!({
        "range": p.range.name(),
        "bucket": bucket_name(bucket),
        "currency": cx.currency,
        "products": products,
        "points": points,
        "totals": totals,
    }))
}

/// `GET /api/top_pages?limit=10`: page views per page over the hours the
/// range covers (`top_pages_1h` is hourly); `unique_visitors` adds each
/// hour's distinct visitors, so a visitor of two hours counts twice.
pub fn top_pages(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let limit = p.count("limit", 10, 100)?;
    let mut pages = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::TopPages1h, p.site.as_deref(), floor(p.from, HOUR_MS), p.to)? {
        let df = lf
            .group_by([col("page_path")])
            .agg([col("views").cast(DataType::Int64).sum(), col("unique_visitors").cast(DataType::Int64).sum()])
            .sort_by_exprs(
                [col("views"), col("page_path")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .limit(limit as IdxSize)
            .collect()?;
        let (path, views, visitors) =
            (texts(&df, "page_path", "")?, ints(&df, "views")?, ints(&df, "unique_visitors")?);
        for i in 0..path.len() {
            pages.push(json!({ "page_path": path[i], "views": views[i], "unique_visitors": visitors[i] }));
        }
    }
    Ok(json!({ "range": p.range.name(), "pages": pages }))
}

/// The funnel's steps, and the `funnel_step` a session must reach for each.
const FUNNEL: [(&str, u32); 5] =
    [("sessions", 0), ("product_view", 1), ("add_to_cart", 2), ("checkout", 3), ("purchase", 4)];

/// `GET /api/funnel`: of the sessions that started in the range, how many
/// reached each step in order (`sessions.funnel_step`, the column
/// `funnel_1h` is built from, so the range need not be whole hours), with
/// each step's rate of the step before.
pub fn funnel(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let mut counts = [0i64; FUNNEL.len()];
    if let Some(lf) = gold(&cx.data_dir, GoldTable::Sessions, p.site.as_deref(), p.from, p.to)? {
        let reached = FUNNEL.map(|(name, step)| {
            col("funnel_step").cast(DataType::Int64).gt_eq(lit(i64::from(step))).cast(DataType::Int64).sum().alias(name)
        });
        let df = lf.select(reached).collect()?;
        for (count, (name, _)) in counts.iter_mut().zip(FUNNEL) {
            *count = ints(&df, name)?.first().copied().unwrap_or(0);
        }
    }
    let ratio = |n: i64, of: i64| (of > 0).then(|| n as f64 / of as f64);
    let steps: Vec<Value> = FUNNEL
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let rate = if i == 0 { None } else { ratio(counts[i], counts[i - 1]) };
            json!({ "step": name, "count": counts[i], "rate": rate })
        })
        .collect();
    Ok(json!({ "range": p.range.name(), "steps": steps, "conversion_rate": ratio(counts[4], counts[0]) }))
}

/// `GET /api/sessions/breakdown?by=source|country|device`: the range's
/// sessions by UTM source (`(direct)` without one), country (`unknown`)
/// or device type, with how many converted and their revenue.
pub fn sessions_breakdown(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let by = p.choice("by", &["source", "country", "device"])?;
    let (column, missing) = match by {
        "source" => ("utm_source", "(direct)"),
        "country" => ("country", "unknown"),
        _ => ("device_type", "unknown"),
    };
    let mut rows = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::Sessions, p.site.as_deref(), p.from, p.to)? {
        let df = lf
            .group_by([col(column).fill_null(lit(missing)).alias("key")])
            .agg([
                len().cast(DataType::Int64).alias("sessions"),
                col("converted").cast(DataType::Int64).sum().alias("converted"),
                col("revenue").sum().alias("revenue"),
            ])
            .sort_by_exprs(
                [col("sessions"), col("key")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .collect()?;
        let (key, sessions, converted, revenue) =
            (texts(&df, "key", missing)?, ints(&df, "sessions")?, ints(&df, "converted")?, floats(&df, "revenue")?);
        for i in 0..key.len() {
            rows.push(
                json!({ "key": key[i], "sessions": sessions[i], "converted": converted[i], "revenue": revenue[i] }),
            );
        }
    }
    Ok(json!({ "range": p.range.name(), "by": by, "rows": rows }))
}

/// `GET /api/bots?limit=50`: visitor-minutes over the bot threshold in the
/// range, latest first, and how many visitors they are.
pub fn bots(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let limit = p.count("limit", 50, 1000)?;
    let (mut anomalies, mut visitors) = (Vec::new(), 0);
    if let Some(lf) = gold(&cx.data_dir, GoldTable::BotAnomalies, p.site.as_deref(), p.from, p.to)? {
        let lf = lf.cache();
        let count = lf.clone().select([col("anonymous_id").n_unique().cast(DataType::Int64).alias("n")]).collect()?;
        visitors = ints(&count, "n")?.first().copied().unwrap_or(0);
        let df = lf
            .sort_by_exprs(
                [col("window_start"), col("events")],
                SortMultipleOptions::default().with_order_descending_multi([true, true]),
            )
            .limit(limit as IdxSize)
            .collect()?;
        let (id, start, events) = (texts(&df, "anonymous_id", "")?, ints(&df, "window_start")?, ints(&df, "events")?);
        for i in 0..id.len() {
            anomalies.push(json!({ "anonymous_id": id[i], "window_start": iso(start[i]), "events": events[i] }));
        }
    }
    Ok(json!({ "range": p.range.name(), "visitors": visitors, "anomalies": anomalies }))
}

/// `GET /api/rejects`: bad rows that arrived in the range, by reason.
pub fn rejects(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    let (mut reasons, mut total) = (Vec::new(), 0);
    if let Some(lf) = read_rejects(&cx.data_dir, p.site.as_deref(), p.from, p.to)? {
        let df = lf
            .group_by([col("reason")])
            .agg([len().cast(DataType::Int64).alias("count")])
            .sort_by_exprs(
                [col("count"), col("reason")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .collect()?;
        let (reason, count) = (texts(&df, "reason", "")?, ints(&df, "count")?);
        total = count.iter().sum();
        for i in 0..reason.len() {
            reasons.push(json!({ "reason": reason[i], "count": count[i] }));
        }
    }
    Ok(json!({ "range": p.range.name(), "total": total, "reasons": reasons }))
}

/// `GET /api/sites`: the sites with traffic in the last week, for the
/// dashboard's site filter (the range is not used).
pub fn sites(cx: &Context, _: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let mut sites = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::Traffic1m, None, cx.now - 7 * 24 * HOUR_MS, cx.now)? {
        let df = lf.select([col("site_id").unique().sort(SortOptions::default())]).collect()?;
        sites = texts(&df, "site_id", "")?;
    }
    Ok(json!({ "sites": sites }))
}

fn bucket_name(ms: i64) -> String {
    if ms % DAY_MS == 0 {
        format!("{}d", ms / DAY_MS)
    } else if ms % HOUR_MS == 0 {
        format!("{}h", ms / HOUR_MS)
    } else {
        format!("{}m", ms / MINUTE_MS)
    }
}
