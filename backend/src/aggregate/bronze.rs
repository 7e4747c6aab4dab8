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

/// How a Bronze column reads its value from a decoded record.
type Text = for<'e> fn(&'e LogEvent<'_>) -> Option<&'e str>;

/// A Bronze column being filled: how it reads a record, and its values.
enum Values {
    Text(Text, StringChunkedBuilder),
    /// UTC milliseconds, a `Datetime(ms)` when finished.
    Time(fn(&LogEvent) -> Option<i64>, Vec<Option<i64>>),
    Float(fn(&LogEvent) -> Option<f64>, Vec<Option<f64>>),
    Int(fn(&LogEvent) -> Option<i64>, Vec<Option<i64>>),
    U32(fn(&LogEvent) -> Option<u32>, Vec<Option<u32>>),
    U64(fn(&LogEvent) -> u64, Vec<u64>),
    Bool(fn(&LogEvent) -> bool, Vec<bool>),
}

macro_rules! prop_values {
    (Text, $column:ident, $rows:expr) => {
        Values::Text(|r| r.event.$column.as_deref(), StringChunkedBuilder::new(PlSmallStr::EMPTY, $rows))
    };
    (Url, $column:ident, $rows:expr) => {
        prop_values!(Text, $column, $rows)
    };
    (Number, $column:ident, $rows:expr) => {
        Values::Float(|r| r.event.$column, Vec::with_capacity($rows))
    };
    (Integer, $column:ident, $rows:expr) => {
        Values::Int(|r| r.event.$column, Vec::with_capacity($rows))
    };
}

macro_rules! prop_columns {
    ($( ($wire:ident, $column:ident, $kind:ident, $about:literal) ),* $(,)?) => {
        /// The columns of the props the contract names, in Silver's order.
        fn prop_columns(rows: usize) -> Vec<(&'static str, Values)> {
            vec![$( (stringify!($column), prop_values!($kind, $column, rows)) ),*]
        }
    };
}
clickstream_schema::with_props!(prop_columns);

/// Bronze's columns, in order, empty, with room for `rows`.
fn bronze_columns(rows: usize) -> Vec<(&'static str, Values)> {
    let text = |f: Text| Values::Text(f, StringChunkedBuilder::new(PlSmallStr::EMPTY, rows));
    let time = |f: fn(&LogEvent) -> Option<i64>| Values::Time(f, Vec::with_capacity(rows));
    let mut columns = vec![
        ("event_id", text(|r| Some(&r.event.event_id))),
        ("event_type", text(|r| Some(r.event.event_type.as_str()))),
        ("site_id", text(|r| Some(&r.event.site_id))),
        ("anonymous_id", text(|r| Some(&r.event.anonymous_id))),
        ("user_id", text(|r| r.event.user_id.as_deref())),
        ("session_id", text(|r| Some(&r.event.session_id))),
        ("client_ts", time(|r| Some(r.event.client_ts))),
        ("sent_at", time(|r| r.event.sent_at)),
        ("received_at", time(|r| Some(r.event.received_at))),
        ("event_ts", time(|r| Some(r.event.event_ts))),
        ("page_url", text(|r| Some(&r.event.page_url))),
        ("page_path", text(|r| Some(&r.event.page_path))),
        ("referrer", text(|r| Some(&r.event.referrer))),
        ("page_title", text(|r| Some(&r.event.page_title))),
    ];
    columns.extend(prop_columns(rows));
    columns.extend([
        ("props_extra", text(|r| r.event.props_extra.as_deref())),
        ("screen", text(|r| Some(&r.event.screen))),
        ("lang", text(|r| Some(&r.event.lang))),
        ("tz", text(|r| Some(&r.event.tz))),
        ("country", text(|r| r.event.country.as_deref())),
        ("colo", text(|r| r.event.colo.as_deref())),
        ("asn", Values::U32(|r| r.event.asn, Vec::with_capacity(rows))),
        ("tls_version", text(|r| r.event.tls_version.as_deref())),
        ("ip_hash", text(|r| r.event.ip_hash.as_deref())),
        ("user_agent", text(|r| r.event.user_agent.as_deref())),
        ("browser", text(|r| Some(&r.event.browser))),
        ("os", text(|r| Some(&r.event.os))),
        ("device_type", text(|r| Some(&r.event.device_type))),
        ("is_bot", Values::Bool(|r| r.event.is_bot, Vec::with_capacity(rows))),
        ("bot_signature", text(|r| r.event.bot_signature.as_deref())),
        ("utm_source", text(|r| r.event.utm_source.as_deref())),
        ("utm_medium", text(|r| r.event.utm_medium.as_deref())),
        ("utm_campaign", text(|r| r.event.utm_campaign.as_deref())),
        ("utm_term", text(|r| r.event.utm_term.as_deref())),
        ("utm_content", text(|r| r.event.utm_content.as_deref())),
        ("raw", text(|r| Some(&r.event.raw))),
        ("log_partition", Values::U32(|r| Some(r.partition), Vec::with_capacity(rows))),
        ("log_offset", Values::U64(|r| r.offset, Vec::with_capacity(rows))),
    ]);
    columns
}

/// Bronze rows being built one record at a time. Each record's fields are
/// appended while its decoded event is fresh in the cache: building the
/// columns one after the other over a chunk of decoded events read every
/// event some fifty times, mostly from memory (a third of decoding).
pub struct BronzeBuilder {
    columns: Vec<(&'static str, Values)>,
    rows: usize,
}

impl BronzeBuilder {
    pub fn with_capacity(rows: usize) -> Self {
        BronzeBuilder { columns: bronze_columns(rows), rows: 0 }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn push(&mut self, row: &LogEvent<'_>) {
        for (_, values) in &mut self.columns {
            match values {
                Values::Text(f, out) => out.append_option(f(row)),
                Values::Time(f, out) | Values::Int(f, out) => out.push(f(row)),
                Values::Float(f, out) => out.push(f(row)),
                Values::U32(f, out) => out.push(f(row)),
                Values::U64(f, out) => out.push(f(row)),
                Values::Bool(f, out) => out.push(f(row)),
            }
        }
        self.rows += 1;
    }

    /// The rows, in the order pushed. Timestamps are UTC `Datetime(ms)`.
    pub fn finish(self, ingested_at: i64) -> PolarsResult<DataFrame> {
        let mut columns = Vec::with_capacity(self.columns.len() + 1);
        for (name, values) in self.columns {
            columns.push(match values {
                Values::Text(_, out) => out.finish().with_name(name.into()).into_column(),
                Values::Time(_, out) => ts_column(name, out)?,
                Values::Int(_, out) => Column::new(name.into(), out),
                Values::Float(_, out) => Column::new(name.into(), out),
                Values::U32(_, out) => Column::new(name.into(), out),
                Values::U64(_, out) => Column::new(name.into(), out),
                Values::Bool(_, out) => Column::new(name.into(), out),
            });
        }
        columns.push(ts_column("ingested_at", vec![Some(ingested_at); self.rows])?);
        DataFrame::new(self.rows, columns)
    }
}

pub(crate) fn datetime_ms() -> DataType {
    DataType::Datetime(TimeUnit::Milliseconds, None)
}

fn ts_column(name: &str, values: Vec<Option<i64>>) -> PolarsResult<Column> {
    Column::new(name.into(), values).cast(&datetime_ms())
}

/// The Bronze rows of a micro-batch, in log order. Timestamps are UTC
/// `Datetime(ms)`.
pub fn bronze_frame(rows: &[LogEvent<'_>], ingested_at: i64) -> PolarsResult<DataFrame> {
    let mut bronze = BronzeBuilder::with_capacity(rows.len());
    for row in rows {
        bronze.push(row);
    }
    bronze.finish(ingested_at)
}
