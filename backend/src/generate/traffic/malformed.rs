//! Deliberately malformed events: each broken in one of the ways the
//! server must catch, with the reason it must give.

use rand::Rng;
use serde_json::{json, Value};

use super::{PlannedEvent, Traffic, DAY};
use crate::generate::catalog::pick;

impl Traffic {
    /// Breaks a valid event in one of the ways the server must catch.
    pub(super) fn corrupt(&mut self, mut event: Value) -> PlannedEvent {
        let event_type = event["event_type"].as_str().unwrap_or_default().to_string();
        let specific: &[&str] = match event_type.as_str() {
            "add_to_cart" => &["no_product", "price_string", "quantity_zero", "negative_price"],
            "search" => &["no_query"],
            "identify" => &["no_user_id"],
            _ => &[],
        };
        let how = if !specific.is_empty() && self.rng.gen_bool(0.5) {
            *pick(&mut self.rng, specific)
        } else {
            *pick(
                &mut self.rng,
                &[
                    "no_event_id",
                    "numeric_event_id",
                    "teleport",
                    "no_event_type",
                    "no_ts",
                    "string_ts",
                    "future_ts",
                    "no_anonymous_id",
                    "not_an_object",
                ],
            )
        };
        let obj = event.as_object_mut().expect("events are built as objects");
        let expect = match how {
            "no_event_id" => {
                obj.remove("event_id");
                "missing_event_id"
            }
            "numeric_event_id" => {
                obj.insert("event_id".into(), json!(self.rng.gen_range(1..1_000_000u32)));
                "invalid_event_id"
            }
            "teleport" => {
                obj.insert("event_type".into(), json!("teleport"));
                "unknown_event_type"
            }
            "no_event_type" => {
                obj.remove("event_type");
                "missing_event_type"
            }
            "no_ts" => {
                obj.remove("ts");
                "missing_timestamp"
            }
            "string_ts" => {
                let ts = obj["ts"].to_string();
                obj.insert("ts".into(), json!(ts));
                "invalid_timestamp"
            }
            "future_ts" => {
                // Relative to the wall clock, so it is in the future however
                // old the simulated history is.
                obj.insert("ts".into(), json!(self.now_ms + 2 * DAY));
                "timestamp_in_future"
            }
            "no_anonymous_id" => {
                obj.remove("anonymous_id");
                "missing_anonymous_id"
            }
            "no_product" => {
                props_mut(obj).remove("product_id");
                "missing_prop"
            }
            "price_string" => {
                let price = obj["props"]["price"].as_f64().unwrap_or(12.5);
                props_mut(obj).insert("price".into(), json!(format!("{price:.2}")));
                "invalid_prop_type"
            }
            "quantity_zero" => {
                props_mut(obj).insert("quantity".into(), json!(0));
                "invalid_prop_value"
            }
            "negative_price" => {
                let price = obj["props"]["price"].as_f64().unwrap_or(12.5);
                props_mut(obj).insert("price".into(), json!(-price));
                "invalid_prop_value"
            }
            "no_query" => {
                props_mut(obj).remove("query");
                "missing_prop"
            }
            "no_user_id" => {
                obj.insert("user_id".into(), Value::Null);
                "missing_user_id"
            }
            _ => {
                // A tracker bug that serialised a field instead of the event.
                event = if self.rng.gen_bool(0.5) { json!(event_type) } else { json!(obj["ts"].clone()) };
                "not_an_object"
            }
        };
        PlannedEvent { event, expect: expect.to_string() }
    }
}

fn props_mut(obj: &mut serde_json::Map<String, Value>) -> &mut serde_json::Map<String, Value> {
    obj.entry("props").or_insert_with(|| json!({})).as_object_mut().expect("props is an object")
}
