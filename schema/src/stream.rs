//! What goes on the stream, for every producer: the topic names, each
//! record's key and value, and the partition of a key. The backend's
//! ingest and the Worker producing to Fluvio itself both build their
//! records here, so a consumer cannot tell which path an event took.

use crate::{BadRow, EnrichedEvent};

/// Valid, enriched events, keyed by `anonymous_id`.
pub const EVENTS_TOPIC: &str = "clickstream-events";
/// Bad rows with their reason, keyed by `anonymous_id` (else `site_id`).
pub const REJECTS_TOPIC: &str = "clickstream-rejects";

/// An accepted event's record: the visitor's id as the key (so a visitor's
/// events, and so sessions, share a partition) and the binary record
/// ([`crate::record`]) as the value.
pub fn event_record(event: &EnrichedEvent<'_>) -> (Vec<u8>, Vec<u8>) {
    let mut value = Vec::with_capacity(event.raw.len() * 2);
    event.to_record(&mut value);
    (event.anonymous_id.as_bytes().to_vec(), value)
}

/// A bad row's record: keyed by its visitor when it has one, else its
/// site; the row as JSON (they are rare, and analysts read them as text).
pub fn reject_record(row: &BadRow) -> (Vec<u8>, Vec<u8>) {
    let key = row.anonymous_id.as_deref().unwrap_or(&row.site_id);
    (key.as_bytes().to_vec(), serde_json::to_vec(row).unwrap_or_default())
}

/// The partition of a key: a stable hash (FNV-1a, 64 bit) modulo the
/// partition count, so every producer, on every platform and after every
/// restart, agrees.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_fixed_values_of_the_key() {
        // Pinned: a change here moves visitors between partitions, which
        // splits sessions across consumers for everything already stored.
        assert_eq!(partition_for(b"", 4), (0xcbf2_9ce4_8422_2325u64 % 4) as u32);
        // Values computed independently (FNV-1a in Python).
        let spread: Vec<u32> = ["a", "b", "c", "visitor-1"].iter().map(|k| partition_for(k.as_bytes(), 4)).collect();
        assert_eq!(spread, [0, 1, 2, 3]);
        assert_eq!(partition_for(b"visitor-1", 7), 1);
        assert_eq!(partition_for(b"anything", 0), 0, "no partitions count as one");
    }
}
