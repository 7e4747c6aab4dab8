//! The event builder: one step of a session becomes the event the tracker
//! would send, with its id, page, props and context; some are corrupted,
//! some held back to arrive late.

use rand::Rng;
use serde_json::{json, Value};

use super::journey::Step;
use super::pages::PageKind;
use super::sessions::Session;
use super::{log_uniform, Action, PlannedEvent, Traffic, ACCEPTED, LATE_MAX_MS, MINUTE, SECOND};
use crate::generate::catalog::{Product, CURRENCY};

/// The tracker flushes a batch at most this long after its first event.
const BATCH_WINDOW_MS: i64 = 5 * SECOND;
/// Held-back (late) events are sent at least this long after their time.
const LATE_MIN_MS: i64 = 2 * MINUTE;

impl Traffic {
    pub(super) fn emit_step(&mut self, s: &mut Session, step: Step, ts: i64) {
        let (event_type, props) = match step {
            Step::View(page, referrer) => {
                s.referrer = referrer.unwrap_or_else(|| s.page.url.clone());
                s.page = page;
                let props = match s.page.kind {
                    PageKind::Product(p) => json!({"product_id": p.id(), "category": p.category}),
                    _ => json!({}),
                };
                ("page_view", props)
            }
            Step::Click { tag, text, href } => {
                let mut props = json!({"tag": tag, "text": text});
                if let Some(h) = href {
                    props["href"] = json!(h);
                }
                ("click", props)
            }
            Step::Search(q) => ("search", json!({"query": q})),
            Step::Add(p, q) => ("add_to_cart", cart_props(p, q)),
            Step::Remove(p, q) => ("remove_from_cart", cart_props(p, q)),
            Step::BeginCheckout { cents } => (
                "begin_checkout",
                json!({"currency": CURRENCY, "revenue": cents as f64 / 100.0}),
            ),
            Step::PurchaseLine {
                order_id,
                product,
                quantity,
            } => (
                "purchase",
                json!({
                    "order_id": order_id,
                    "product_id": product.id(),
                    "category": product.category,
                    "price": product.price(),
                    "quantity": quantity,
                    // From cents, so it equals price × quantity exactly.
                    "revenue": (product.cents * u64::from(quantity)) as f64 / 100.0,
                    "currency": CURRENCY,
                }),
            ),
            Step::Identify => {
                let needs_account = self
                    .visitors
                    .get(&s.visitor)
                    .is_some_and(|v| v.account.is_none());
                let fresh = needs_account.then(|| self.new_user_id());
                if let Some(v) = self.visitors.get_mut(&s.visitor) {
                    if let Some(u) = fresh {
                        v.account = Some(u);
                    }
                    v.logged_in = true;
                }
                ("identify", json!({}))
            }
            Step::Custom(name) => ("custom", json!({"name": name})),
        };
        s.events += 1;
        if ts < self.start_ms {
            // Hidden warm-up (see `new`).
            return;
        }
        let event_id = ulid(ts, &mut self.rng);
        let Some(v) = self.visitors.get(&s.visitor) else {
            return;
        };
        let user_id = if v.logged_in { v.account.clone() } else { None };
        let event = json!({
            "event_id": event_id,
            "event_type": event_type,
            "ts": ts,
            "anonymous_id": v.anonymous_id,
            "user_id": user_id,
            "session_id": s.id,
            "page": {"url": s.page.url, "path": s.page.path, "referrer": s.referrer, "title": s.page.title},
            "props": props,
            "context": {"screen": v.screen, "lang": v.lang, "tz": v.tz},
        });
        let planned = if self.rng.gen_bool(self.malformed_share) {
            self.corrupt(event)
        } else {
            PlannedEvent {
                event,
                expect: ACCEPTED.to_string(),
            }
        };
        self.generated += 1;

        if self.rng.gen_bool(self.late_share) {
            // Held back (e.g. queued offline) and sent with a later batch.
            let release = ts + log_uniform(&mut self.rng, LATE_MIN_MS, LATE_MAX_MS);
            if let Some(v) = self.visitors.get_mut(&s.visitor) {
                v.late.push((release, planned));
            }
            self.schedule(release, Action::Release(s.visitor));
            return;
        }
        if s.open.is_empty() {
            self.schedule(ts + BATCH_WINDOW_MS, Action::Deadline(s.key, s.open_no));
        }
        s.open.push(planned);
        if s.open.len() >= self.batch_size {
            self.close_batch(s, ts);
        }
    }
}

fn cart_props(p: &Product, quantity: u32) -> Value {
    json!({
        "product_id": p.id(),
        "price": p.price(),
        "quantity": quantity,
        "category": p.category,
        "currency": CURRENCY,
    })
}

/// A ULID (Crockford base32, 26 chars): 48-bit ms time + 80 bits from the
/// seeded RNG, so ids sort by time, are unique, and are reproducible.
fn ulid<R: Rng>(ts: i64, rng: &mut R) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let time = (ts.max(0) as u128) & ((1 << 48) - 1);
    let random = ((rng.gen::<u64>() as u128) << 16) | (rng.gen::<u16>() as u128);
    let value = (time << 80) | random;
    (0..26)
        .map(|i| ALPHABET[((value >> (125 - 5 * i)) & 31) as usize] as char)
        .collect()
}
