//! Batches as the tracker sends them: one visitor's events closed into a
//! POST (by size, deadline or session end), held-back events released
//! later, and some batches sent twice.

use clickstream_schema::WIRE_VERSION;
use rand::Rng;
use serde_json::json;

use super::sessions::Session;
use super::{PlannedBatch, PlannedEvent, Traffic, CONTENT_TYPE_BEACON, CONTENT_TYPE_JSON};

/// Share of batches sent by `sendBeacon` (page hide) rather than `fetch`.
const BEACON_SHARE: f64 = 0.2;

impl Traffic {
    pub(super) fn close_batch(&mut self, s: &mut Session, at: i64) {
        if s.open.is_empty() {
            return;
        }
        s.open_no += 1;
        let events = std::mem::take(&mut s.open);
        self.push_batch(s.visitor, events, at);
    }

    /// Sends the visitor's held-back events that are due (all if `all`).
    pub(super) fn release(&mut self, key: u64, at: i64, all: bool) {
        let Some(v) = self.visitors.get_mut(&key) else {
            return;
        };
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut v.late).into_iter().partition(|(r, _)| all || *r <= at);
        v.late = keep;
        let due: Vec<PlannedEvent> = due.into_iter().map(|(_, e)| e).collect();
        for chunk in due.chunks(self.batch_size) {
            self.push_batch(key, chunk.to_vec(), at);
        }
        self.forget_if_idle(key);
    }

    fn push_batch(&mut self, visitor: u64, events: Vec<PlannedEvent>, at: i64) {
        let Some(v) = self.visitors.get(&visitor) else {
            return;
        };
        let send_at_ms = at.min(self.now_ms);
        let body = json!({
            "v": WIRE_VERSION,
            "site_id": self.site_id,
            "sent_at": send_at_ms,
            "events": events.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        });
        let batch = PlannedBatch {
            body,
            user_agent: v.user_agent.to_string(),
            country: v.country.to_string(),
            ip: v.ip.clone(),
            content_type: if self.rng.gen_bool(BEACON_SHARE) { CONTENT_TYPE_BEACON } else { CONTENT_TYPE_JSON },
            duplicate: false,
            events,
            anonymous_id: v.anonymous_id.clone(),
            kind: v.kind,
            send_at_ms,
        };
        let resend = self.rng.gen_bool(self.duplicate_share);
        if resend {
            let mut again = batch.clone();
            again.duplicate = true;
            self.out.push_back(batch);
            self.out.push_back(again);
        } else {
            self.out.push_back(batch);
        }
    }
}
