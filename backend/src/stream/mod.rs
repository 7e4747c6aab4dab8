//! The stream between ingest and aggregation.
//!
//! One small interface, two implementations: the embedded durable log (the
//! default, one machine) and Fluvio (a cluster). Nothing above this module
//! knows which one runs.

mod embedded;
mod fluvio_stream;

pub use embedded::{forget_records, is_log_file, visit_records, EmbeddedLog, LOCK_FILE_NAME, ZERO_AHEAD_VAR};
pub use fluvio_stream::{register_spu, FluvioSettings, FluvioStream, FluvioTls};

use async_trait::async_trait;
use bytes::Bytes;
pub use clickstream_schema::stream::partition_for;
use clickstream_schema::stream::{event_record, reject_record, EVENTS_TOPIC, REJECTS_TOPIC};

/// The topics the pipeline uses. Events are keyed by `anonymous_id`, so one
/// visitor's events (and therefore each session) live in one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Valid, enriched events.
    Events,
    /// Bad rows: events that failed validation, with their reason.
    Rejects,
}

impl Topic {
    pub const ALL: [Topic; 2] = [Topic::Events, Topic::Rejects];

    pub fn name(self) -> &'static str {
        match self {
            Topic::Events => EVENTS_TOPIC,
            Topic::Rejects => REJECTS_TOPIC,
        }
    }
}

/// One record to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: Topic,
    /// Partitioning key (the visitor's `anonymous_id`).
    pub key: Vec<u8>,
    /// The payload: an event's binary record, a bad row's JSON.
    pub value: Vec<u8>,
}

/// One record read back, with its position in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub partition: u32,
    pub offset: u64,
    /// Slices of the buffer the stream read them in (shared, not copied).
    pub key: Bytes,
    pub value: Bytes,
    /// Why the log cannot vouch for this record (a checksum mismatch, a
    /// damaged entry), with its position. Such a record is handed on, with
    /// whatever bytes are left, so the consumer quarantines it as a bad row
    /// and moves on instead of every read of the partition failing.
    pub damage: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream cannot take or serve records right now; the caller should
    /// retry later (the ingest answers 503).
    #[error("stream unavailable: {0}")]
    Unavailable(String),
    /// Stored data failed an integrity check.
    #[error("stream data corrupt: {0}")]
    Corrupt(String),
    #[error("bad stream request: {0}")]
    BadRequest(String),
}

#[async_trait]
pub trait EventStream: Send + Sync + 'static {
    /// Number of partitions of a topic.
    fn partitions(&self, topic: Topic) -> u32;

    /// Appends the records, each to the partition of its key, and returns
    /// only once all of them are durable. Records of one key keep their
    /// order. On error, none or some may have been appended: callers retry,
    /// and the Silver layer removes duplicates by event id.
    async fn produce(&self, records: Vec<Record>) -> Result<(), StreamError>;

    /// Reads up to `max` records of one partition starting at offset `from`
    /// (inclusive), in offset order. Returns an empty vector at the end.
    async fn fetch(&self, topic: Topic, partition: u32, from: u64, max: usize) -> Result<Vec<Fetched>, StreamError>;

    /// The offset the next appended record of this partition will get.
    async fn end_offset(&self, topic: Topic, partition: u32) -> Result<u64, StreamError>;

    /// Records a consumer group's position (the next offset to read). The
    /// aggregator's Parquet manifest is the source of truth for its own
    /// position; this is what operators and the lag metric see.
    async fn commit(&self, group: &str, topic: Topic, partition: u32, next_offset: u64) -> Result<(), StreamError>;

    /// A consumer group's committed position, if any.
    async fn committed(&self, group: &str, topic: Topic, partition: u32) -> Result<Option<u64>, StreamError>;

    /// Retention of the stream itself: deletes, in each partition, the
    /// records below the lowest position any consumer group committed
    /// (never one a group has yet to read; a partition no group committed
    /// keeps everything). Returns how many went. A Fluvio cluster keeps its
    /// own retention (per topic), so the default does nothing.
    async fn trim_committed(&self) -> Result<u64, StreamError> {
        Ok(0)
    }
}

/// What one produce appends for a collected batch: the records of
/// [`clickstream_schema::stream`], each accepted event to the events topic
/// and each bad row to the rejects topic.
pub fn records_of(
    events: &[clickstream_schema::EnrichedEvent<'_>],
    bad_rows: &[clickstream_schema::BadRow],
) -> Vec<Record> {
    let mut records = Vec::with_capacity(events.len() + bad_rows.len());
    for e in events {
        let (key, value) = event_record(e);
        records.push(Record { topic: Topic::Events, key, value });
    }
    for row in bad_rows {
        let (key, value) = reject_record(row);
        records.push(Record { topic: Topic::Rejects, key, value });
    }
    records
}
