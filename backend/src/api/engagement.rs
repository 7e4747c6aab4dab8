//! The engagement panel: how long pages are read and how far down
//! (`engagement_1h`), and the engaged time of the range's sessions.

use polars::prelude::*;
use serde_json::{json, Value};

use super::require_gold;
use super::{Context, DashboardError, Params};
use crate::gold::GoldTable;
use crate::storage::range::{floats, gold, ints, texts};

/// `GET /api/engagement?limit=10`: the sessions that started in the range
/// with their engaged time per session (their `page_leave` reports'
/// engaged time over the sessions, reported or not), and the `limit`
/// pages with the most page views among those read in the range
/// (`engagement_1h` over the hours it touches): per page its page views,
/// engaged time per view and mean scroll depth. Pages and hours without a
/// report (a tracker older than `page_leave`) are left out of both.
pub fn engagement(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let site = p.site.as_deref();
    let limit = p.count("limit", 10, 100)?;
    let (mut sessions, mut engaged) = (0, 0);
    if let Some(lf) = gold(&cx.data_dir, GoldTable::Sessions, site, p.from, p.to)? {
        let df = lf
            .select([len().cast(DataType::Int64).alias("n"), col("engaged_ms").sum().cast(DataType::Int64).alias("ms")])
            .collect()?;
        sessions = ints(&df, "n")?.first().copied().unwrap_or(0);
        engaged = ints(&df, "ms")?.first().copied().unwrap_or(0);
    }
    let per_session = (sessions > 0).then(|| engaged as f64 / sessions as f64);
    let mut pages = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::Engagement1h, site, p.from_hour(), p.to)? {
        let df = lf
            .with_column((col("avg_scroll_depth") * col("leaves").cast(DataType::Float64)).alias("depth_sum"))
            .group_by([col("page_path")])
            .agg([
                col("page_views").cast(DataType::Int64).sum(),
                col("leaves").cast(DataType::Int64).sum(),
                col("engaged_ms").sum(),
                col("depth_sum").sum(),
            ])
            .sort_by_exprs(
                [col("page_views"), col("page_path")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .limit(limit as IdxSize)
            .collect()?;
        let (path, views, leaves) = (texts(&df, "page_path", "")?, ints(&df, "page_views")?, ints(&df, "leaves")?);
        let (ms, depth) = (ints(&df, "engaged_ms")?, floats(&df, "depth_sum")?);
        for i in 0..df.height() {
            pages.push(json!({
                "page_path": path[i],
                "page_views": views[i],
                "leaves": leaves[i],
                "avg_engaged_ms": (views[i] > 0).then(|| ms[i] as f64 / views[i] as f64),
                "avg_scroll_depth": (leaves[i] > 0).then(|| depth[i] / leaves[i] as f64),
            }));
        }
    }
    Ok(json!({
        "range": p.range.name(),
        "sessions": sessions,
        "engaged_ms_per_session": per_session,
        "pages": pages,
    }))
}
