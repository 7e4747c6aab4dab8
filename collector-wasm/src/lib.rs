//! The browser tracker. It starts as the plain-Rust core the wasm glue will
//! wrap: building wire batches from the shared contract's types.

use clickstream_schema::{Batch, Event, WIRE_VERSION};

/// Wraps events in a wire v1 batch envelope, stamped with the client clock.
pub fn batch(site_id: &str, sent_at: i64, events: Vec<Event>) -> Batch {
    Batch { v: WIRE_VERSION, site_id: site_id.to_string(), sent_at, events }
}

/// The JSON body the tracker sends.
pub fn to_body(batch: &Batch) -> String {
    serde_json::to_string(batch).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_schema::{EventType, Limits, Page, Props, Context};

    #[test]
    fn a_tracker_batch_passes_the_contract() {
        let event = Event {
            event_id: "e-1".into(),
            event_type: EventType::PageView,
            ts: 1_732_262_399_000,
            anonymous_id: "a-1".into(),
            user_id: None,
            session_id: "s-1".into(),
            page: Page { url: "https://shop.example/".into(), path: "/".into(), ..Page::default() },
            props: Props::default(),
            context: Context::default(),
        };
        let body = to_body(&batch("shop-1", 1_732_262_400_000, vec![event.clone()]));
        let parsed = clickstream_schema::parse_batch(body.as_bytes(), &Limits::default()).unwrap();
        let back = clickstream_schema::validate_event(&parsed.events[0], parsed.sent_at, 1_732_262_400_000, &Limits::default()).unwrap();
        assert_eq!(back, event);
    }
}
