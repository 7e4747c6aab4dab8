//! The `rejects` table: bad rows with their reason, never silently dropped.

use clickstream_schema::BadRow;
use polars::prelude::*;

use super::bronze::datetime_ms;

/// A bad row read from the rejects topic.
#[derive(Clone, Debug)]
pub struct LogBadRow {
    pub partition: u32,
    pub offset: u64,
    pub row: BadRow,
}

pub const REJECT_COLUMNS: &[&str] = &[
    "received_at",
    "site_id",
    "reason",
    "detail",
    "payload",
    "event_index",
    "event_id",
    "anonymous_id",
    "source",
    "log_partition",
    "log_offset",
];

pub fn rejects_frame(rows: &[LogBadRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let columns = vec![
        Column::new("received_at".into(), rows.iter().map(|r| r.row.received_at).collect::<Vec<_>>())
            .cast(&datetime_ms())?,
        Column::new("site_id".into(), rows.iter().map(|r| r.row.site_id.as_str()).collect::<Vec<_>>()),
        Column::new("reason".into(), rows.iter().map(|r| r.row.reason.as_str()).collect::<Vec<_>>()),
        Column::new("detail".into(), rows.iter().map(|r| r.row.detail.as_str()).collect::<Vec<_>>()),
        Column::new("payload".into(), rows.iter().map(|r| r.row.payload.as_str()).collect::<Vec<_>>()),
        Column::new("event_index".into(), rows.iter().map(|r| r.row.index).collect::<Vec<_>>()),
        Column::new("event_id".into(), rows.iter().map(|r| r.row.event_id.as_deref()).collect::<Vec<_>>()),
        Column::new("anonymous_id".into(), rows.iter().map(|r| r.row.anonymous_id.as_deref()).collect::<Vec<_>>()),
        Column::new("source".into(), rows.iter().map(|r| r.row.source.as_str()).collect::<Vec<_>>()),
        Column::new("log_partition".into(), rows.iter().map(|r| r.partition).collect::<Vec<_>>()),
        Column::new("log_offset".into(), rows.iter().map(|r| r.offset).collect::<Vec<_>>()),
    ];
    DataFrame::new(n, columns)
}
