//! The queue of events waiting for delivery. Events are kept as the JSON
//! they will be sent as, so the persisted queue is the wire form and a
//! reload resends exactly the same events, ids included; the backend's
//! deduplication on `event_id` then makes delivery exactly-once.

use crate::json;

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    seq: u64,
    json: String,
    in_flight: bool,
    /// Handed to a beacon by this page (not stored: the next page resends).
    beaconed: bool,
}

impl Entry {
    /// May go in the next request: not in one now, and, for a beacon, not
    /// in an earlier beacon of this page (page hide fires both
    /// `visibilitychange` and `pagehide`).
    fn sendable(&self, leaving: bool) -> bool {
        !(self.in_flight || leaving && self.beaconed)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Queue {
    /// Oldest first. A `Vec`, not a `VecDeque`: dropping the oldest when
    /// full shifts at most `max` entries, and the deque's ring-buffer code
    /// cost the tracker about a kilobyte of wasm.
    entries: Vec<Entry>,
    next_seq: u64,
    max: usize,
    /// Events dropped because the queue was full (oldest first).
    pub dropped: u64,
}

/// One request's worth of events, taken from the queue until the outcome
/// of its delivery is known.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub body: String,
    pub events: usize,
    first_seq: u64,
    last_seq: u64,
}

impl Queue {
    pub fn new(max: usize) -> Queue {
        Queue { max: max.max(1), ..Queue::default() }
    }

    /// A queue from its stored form (one event's JSON per line; JSON never
    /// holds a raw newline). Lines that are not JSON objects are skipped.
    pub fn restore(stored: &str, max: usize) -> Queue {
        let mut queue = Queue::new(max);
        // Split by hand: `lines()` brings a char searcher (see `url::find`).
        for line in crate::url::split(stored, b'\n').filter(|l| l.starts_with("{") && l.ends_with("}")) {
            queue.push(line.to_string());
        }
        queue
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&e.json);
            out.push('\n');
        }
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Events not in a request now.
    pub fn waiting(&self) -> usize {
        self.entries.iter().filter(|e| !e.in_flight).count()
    }

    pub fn in_flight(&self) -> bool {
        self.entries.iter().any(|e| e.in_flight)
    }

    /// Adds an event; when full, drops the oldest. Returns whether one was dropped.
    pub fn push(&mut self, json: String) -> bool {
        let full = self.entries.len() >= self.max;
        if full {
            self.entries.remove(0);
            self.dropped += 1;
        }
        self.entries.push(Entry { seq: self.next_seq, json, in_flight: false, beaconed: false });
        self.next_seq += 1;
        full
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The oldest waiting events, as a wire batch of at most `max_bytes`
    /// (one event alone may exceed it: it is sent anyway, the collector
    /// judges it) and `max_events`, now marked in flight. `leaving`: for a
    /// beacon, which skips what an earlier beacon of this page took.
    pub fn next_chunk(
        &mut self,
        site_id: &str,
        sent_at: i64,
        max_bytes: usize,
        max_events: usize,
        leaving: bool,
    ) -> Option<Chunk> {
        let start = self.entries.iter().position(|e| e.sendable(leaving))?;
        let mut body = String::from("{\"v\":");
        json::int(&mut body, clickstream_schema::WIRE_VERSION);
        body.push_str(",\"site_id\":");
        json::string(&mut body, site_id);
        body.push_str(",\"sent_at\":");
        json::int(&mut body, sent_at);
        body.push_str(",\"events\":[");
        let (first_seq, mut last_seq, mut events) = (self.entries[start].seq, 0, 0);
        for entry in self.entries.iter_mut().skip(start) {
            if !entry.sendable(leaving) || events == max_events {
                break;
            }
            if events > 0 && body.len() + entry.json.len() + 2 > max_bytes {
                break;
            }
            if events > 0 {
                body.push(',');
            }
            body.push_str(&entry.json);
            entry.in_flight = true;
            last_seq = entry.seq;
            events += 1;
        }
        body.push_str("]}");
        Some(Chunk { body, events, first_seq, last_seq })
    }

    /// The chunk reached the collector, or was refused for good: its events leave.
    pub fn settle(&mut self, chunk: &Chunk) {
        self.entries.retain(|e| e.seq < chunk.first_seq || e.seq > chunk.last_seq);
    }

    /// The chunk's delivery failed, or it went by beacon (`beaconed`): its
    /// events wait for the next attempt.
    pub fn give_back(&mut self, chunk: &Chunk, beaconed: bool) {
        for e in self.entries.iter_mut().filter(|e| e.seq >= chunk.first_seq && e.seq <= chunk.last_seq) {
            e.in_flight = false;
            e.beaconed |= beaconed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_schema::Limits;

    fn event(i: usize) -> String {
        format!(
            r#"{{"event_id":"e-{i}","event_type":"page_view","ts":1732262400000,"anonymous_id":"a","session_id":"s","page":{{"path":"/{i}"}}}}"#
        )
    }

    crate::both! {
        fn a_chunk_is_a_wire_batch_the_contract_accepts() {
            let mut q = Queue::new(1000);
            for i in 0..3 {
                q.push(event(i));
            }
            let chunk = q.next_chunk("shop-\"1\"", 1_732_262_400_500, 64 * 1024, 500, false).unwrap();
            let parsed = clickstream_schema::parse_batch(chunk.body.as_bytes(), &Limits::default()).unwrap();
            assert_eq!(parsed.site_id, "shop-\"1\"");
            assert_eq!(parsed.sent_at, Some(1_732_262_400_500));
            assert_eq!(parsed.events.len(), 3);
            let third: serde_json::Value = serde_json::from_str(parsed.events[2].json).unwrap();
            assert_eq!(third["event_id"], "e-2");
        }

        fn chunks_respect_the_byte_and_event_limits() {
            let mut q = Queue::new(1000);
            for i in 0..100 {
                q.push(event(i));
            }
            let mut sizes = vec![];
            while let Some(chunk) = q.next_chunk("s", 0, 2_000, 500, false) {
                assert!(chunk.body.len() <= 2_000, "{}", chunk.body.len());
                sizes.push(chunk.events);
            }
            assert_eq!(sizes.iter().sum::<usize>(), 100);
            assert!(sizes.len() > 1);
            let mut q = Queue::new(1000);
            for i in 0..30 {
                q.push(event(i));
            }
            assert_eq!(q.next_chunk("s", 0, 64 * 1024, 20, false).unwrap().events, 20);
        }

        fn delivered_events_leave_and_failed_ones_are_sent_again_with_the_same_ids() {
            let mut q = Queue::new(1000);
            for i in 0..5 {
                q.push(event(i));
            }
            let first = q.next_chunk("s", 0, 64 * 1024, 2, false).unwrap();
            let second = q.next_chunk("s", 0, 64 * 1024, 2, false).unwrap();
            assert_eq!(q.waiting(), 1);
            q.give_back(&first, false);
            q.settle(&second);
            assert_eq!(q.len(), 3);
            // e-0 and e-1 go again, as they were; e-4 still waits behind them.
            let again = q.next_chunk("s", 0, 64 * 1024, 2, false).unwrap();
            assert_eq!(again.body, first.body);
            assert_eq!(q.waiting(), 1);
        }

        fn a_full_queue_drops_the_oldest_and_counts_them() {
            let mut q = Queue::new(3);
            for i in 0..5 {
                q.push(event(i));
            }
            assert_eq!(q.len(), 3);
            assert_eq!(q.dropped, 2);
            let chunk = q.next_chunk("s", 0, 64 * 1024, 500, false).unwrap();
            assert!(chunk.body.contains("\"e-2\"") && !chunk.body.contains("\"e-1\""));
        }

        fn the_stored_queue_round_trips_and_skips_garbage() {
            let mut q = Queue::new(10);
            for i in 0..3 {
                q.push(event(i));
            }
            q.next_chunk("s", 0, 64 * 1024, 1, false);
            let stored = format!("{}not json\n\n", q.encode());
            let back = Queue::restore(&stored, 10);
            // In-flight state is not stored: after a reload everything waits.
            assert_eq!(back.waiting(), 3);
            assert_eq!(back.encode(), q.encode());
        }
    }
}
