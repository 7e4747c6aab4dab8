//! The body the edge Worker sends to the backend's `/ingest`.
//!
//! Two forms. The JSON form ([`IngestBatch`]) is what Workers before the
//! binary one send, and stays accepted. The binary form carries each
//! accepted event as its stream record ([`crate::record`]), the very bytes
//! the backend appends to the log: the Worker writes no JSON for them and
//! the backend parses none, it only checks that each record reads.
//!
//! ```text
//! format: u8 (= 1)
//! nonce:  text                       (see IngestBatch::nonce)
//! events: u32 count, then per event: text-like length | record bytes
//! bad rows: u32 count, then per row:  text (the BadRow as JSON; they are rare)
//! ```
//!
//! Lengths are varints as in [`crate::record`]; counts are little-endian.

use std::borrow::Cow;

use crate::record::{RecordError, RecordReader, RecordWriter};
use crate::{BadRow, EnrichedEvent, IngestBatch};

/// The `content-type` of the binary body.
pub const INGEST_RECORDS_TYPE: &str = "application/vnd.clickstream.records";

/// The first byte of the binary body.
pub const INGEST_FORMAT: u8 = 1;

/// Writes the binary body of `events` and `bad_rows`.
pub fn encode_ingest(events: &[EnrichedEvent<'_>], bad_rows: &[BadRow], nonce: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + events.iter().map(|e| e.raw.len() * 2).sum::<usize>());
    let mut record = Vec::new();
    let mut w = RecordWriter(&mut out);
    w.u8(INGEST_FORMAT);
    w.str(nonce);
    w.u32(events.len() as u32);
    for event in events {
        record.clear();
        event.to_record(&mut record);
        w.bytes(&record);
    }
    w.u32(bad_rows.len() as u32);
    for row in bad_rows {
        w.str(&serde_json::to_string(row).unwrap_or_default());
    }
    out
}

/// A binary body read back: each event's record as sent (checked to read
/// as an event) with its visitor, the partitioning key.
#[derive(Debug)]
pub struct IngestRecords<'a> {
    pub events: Vec<IngestedRecord<'a>>,
    pub bad_rows: Vec<BadRow>,
    pub nonce: Cow<'a, str>,
}

#[derive(Debug)]
pub struct IngestedRecord<'a> {
    pub anonymous_id: Cow<'a, str>,
    pub record: &'a [u8],
}

/// Reads a binary body. Every record must read as an event of the current
/// record version, and nothing may follow the last bad row.
pub fn decode_ingest(body: &[u8]) -> Result<IngestRecords<'_>, RecordError> {
    let mut r = RecordReader::new(body);
    match r.u8()? {
        INGEST_FORMAT => {}
        other => return Err(RecordError(format!("unknown ingest body format {other}"))),
    }
    let nonce = r.str()?;
    let count = r.u32()?;
    // Every record takes at least two bytes: a count beyond that is a lie
    // that must not reserve memory.
    let mut events = Vec::with_capacity((count as usize).min(body.len() / 2));
    for i in 0..count {
        let record = r.bytes()?;
        // The binary record only: what the log gets must be what the
        // aggregator reads fastest.
        if record.first() != Some(&crate::record::RECORD_VERSION) {
            return Err(RecordError(format!(
                "event {i}: not a binary record of version {}",
                crate::record::RECORD_VERSION
            )));
        }
        let event = EnrichedEvent::from_record(record).map_err(|e| RecordError(format!("event {i}: {e}")))?;
        events.push(IngestedRecord { anonymous_id: event.anonymous_id, record });
    }
    let rows = r.u32()?;
    let mut bad_rows = Vec::with_capacity((rows as usize).min(body.len()));
    for i in 0..rows {
        let json = r.str()?;
        bad_rows.push(serde_json::from_str(&json).map_err(|e| RecordError(format!("bad row {i}: {e}")))?);
    }
    r.finish()?;
    Ok(IngestRecords { events, bad_rows, nonce })
}

/// The JSON body of Workers that predate the binary one.
pub fn decode_ingest_json(body: &[u8]) -> Result<IngestBatch<'_>, serde_json::Error> {
    serde_json::from_slice(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_whole_is_refused_with_where_it_broke() {
        let empty = encode_ingest(&[], &[], "n-1");
        let read = decode_ingest(&empty).unwrap();
        assert_eq!((read.events.len(), read.bad_rows.len(), read.nonce.as_ref()), (0, 0, "n-1"));
        let error = |body: &[u8]| decode_ingest(body).unwrap_err().to_string();
        assert_eq!(error(b"{\"events\":[]}"), "unknown ingest body format 123");
        assert!(error(&empty[..empty.len() - 1]).contains("record ends at byte"), "a count cut short");
        let mut more = empty.clone();
        more.push(0);
        assert_eq!(error(&more), "1 bytes left after the last field");
        // A count of four billion events in a body of a few bytes: refused
        // at the first missing record, without reserving room for them.
        let mut lying = vec![INGEST_FORMAT, 0];
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(error(&lying).contains("record ends at byte"));
        // A record that does not read as an event.
        let mut junk = vec![INGEST_FORMAT, 0, 1, 0, 0, 0, 3];
        junk.extend_from_slice(&[crate::record::RECORD_VERSION, 9, 9]);
        junk.extend_from_slice(&0u32.to_le_bytes());
        assert!(error(&junk).starts_with("event 0: "), "{}", error(&junk));
    }
}
