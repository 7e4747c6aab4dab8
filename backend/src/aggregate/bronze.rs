//! Bronze: accepted events as received, plus ingest metadata (where in the
//! log each came from, and when the aggregator took it).

use clickstream_schema::EnrichedEvent;
use polars::prelude::*;

/// One decoded record of the events topic, borrowing from the record.
#[derive(Clone, Debug)]
pub struct LogEvent<'a> {
    pub partition: u32,
    pub offset: u64,
    pub event: EnrichedEvent<'a>,
}

macro_rules! prop_column {
    (Text, $rows:expr, $column:ident) => {
        $rows.iter().map(|r| r.event.$column.as_deref()).collect::<Vec<_>>()
    };
    (Url, $rows:expr, $column:ident) => {
        prop_column!(Text, $rows, $column)
    };
    (Number, $rows:expr, $column:ident) => {
        $rows.iter().map(|r| r.event.$column).collect::<Vec<_>>()
    };
    (Integer, $rows:expr, $column:ident) => {
        prop_column!(Number, $rows, $column)
    };
}

macro_rules! prop_columns {
    ($( ($wire:ident, $column:ident, $kind:ident, $about:literal) ),* $(,)?) => {
        /// The columns of the props the contract names, in Silver's order.
        fn prop_columns(rows: &[LogEvent<'_>]) -> Vec<Column> {
            vec![$( Column::new(stringify!($column).into(), prop_column!($kind, rows, $column)) ),*]
        }
    };
}
clickstream_schema::with_props!(prop_columns);

pub(crate) fn datetime_ms() -> DataType {
    DataType::Datetime(TimeUnit::Milliseconds, None)
}

fn ts_column(name: &str, values: Vec<Option<i64>>) -> PolarsResult<Column> {
    Column::new(name.into(), values).cast(&datetime_ms())
}

/// The Bronze rows of a micro-batch, in log order. Timestamps are UTC
/// `Datetime(ms)`.
pub fn bronze_frame(rows: &[LogEvent<'_>], ingested_at: i64) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let strings =
        |f: for<'e> fn(&'e EnrichedEvent<'_>) -> &'e str| -> Vec<&str> { rows.iter().map(|r| f(&r.event)).collect() };
    let opt_strings = |f: for<'e> fn(&'e EnrichedEvent<'_>) -> Option<&'e str>| -> Vec<Option<&str>> {
        rows.iter().map(|r| f(&r.event)).collect()
    };
    let ts = |f: fn(&EnrichedEvent) -> Option<i64>| -> Vec<Option<i64>> { rows.iter().map(|r| f(&r.event)).collect() };

    let mut columns = vec![
        Column::new("event_id".into(), strings(|e| &e.event_id)),
        Column::new("event_type".into(), strings(|e| e.event_type.as_str())),
        Column::new("site_id".into(), strings(|e| &e.site_id)),
        Column::new("anonymous_id".into(), strings(|e| &e.anonymous_id)),
        Column::new("user_id".into(), opt_strings(|e| e.user_id.as_deref())),
        Column::new("session_id".into(), strings(|e| &e.session_id)),
        ts_column("client_ts", ts(|e| Some(e.client_ts)))?,
        ts_column("sent_at", ts(|e| e.sent_at))?,
        ts_column("received_at", ts(|e| Some(e.received_at)))?,
        ts_column("event_ts", ts(|e| Some(e.event_ts)))?,
        Column::new("page_url".into(), strings(|e| &e.page_url)),
        Column::new("page_path".into(), strings(|e| &e.page_path)),
        Column::new("referrer".into(), strings(|e| &e.referrer)),
        Column::new("page_title".into(), strings(|e| &e.page_title)),
    ];
    columns.extend(prop_columns(rows));
    columns.extend([
        Column::new("props_extra".into(), opt_strings(|e| e.props_extra.as_deref())),
        Column::new("screen".into(), strings(|e| &e.screen)),
        Column::new("lang".into(), strings(|e| &e.lang)),
        Column::new("tz".into(), strings(|e| &e.tz)),
        Column::new("country".into(), opt_strings(|e| e.country.as_deref())),
        Column::new("colo".into(), opt_strings(|e| e.colo.as_deref())),
        Column::new("asn".into(), rows.iter().map(|r| r.event.asn).collect::<Vec<_>>()),
        Column::new("tls_version".into(), opt_strings(|e| e.tls_version.as_deref())),
        Column::new("ip_hash".into(), opt_strings(|e| e.ip_hash.as_deref())),
        Column::new("user_agent".into(), opt_strings(|e| e.user_agent.as_deref())),
        Column::new("browser".into(), strings(|e| &e.browser)),
        Column::new("os".into(), strings(|e| &e.os)),
        Column::new("device_type".into(), strings(|e| &e.device_type)),
        Column::new("is_bot".into(), rows.iter().map(|r| r.event.is_bot).collect::<Vec<_>>()),
        Column::new("bot_signature".into(), opt_strings(|e| e.bot_signature.as_deref())),
        Column::new("utm_source".into(), opt_strings(|e| e.utm_source.as_deref())),
        Column::new("utm_medium".into(), opt_strings(|e| e.utm_medium.as_deref())),
        Column::new("utm_campaign".into(), opt_strings(|e| e.utm_campaign.as_deref())),
        Column::new("utm_term".into(), opt_strings(|e| e.utm_term.as_deref())),
        Column::new("utm_content".into(), opt_strings(|e| e.utm_content.as_deref())),
        Column::new("raw".into(), strings(|e| &e.raw)),
        Column::new("log_partition".into(), rows.iter().map(|r| r.partition).collect::<Vec<_>>()),
        Column::new("log_offset".into(), rows.iter().map(|r| r.offset).collect::<Vec<_>>()),
        ts_column("ingested_at", vec![Some(ingested_at); n])?,
    ]);
    DataFrame::new(n, columns)
}
