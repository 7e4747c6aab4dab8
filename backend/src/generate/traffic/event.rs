//! The event builder: one step of a session becomes the event the tracker
//! would send, with its id, page, props and context; some are corrupted,
//! some held back to arrive late.

use clickstream_schema::wire::{self, Context, Event, EventType, Props};
use rand::Rng;
use serde_json::Value;

use super::journey::Step;
use super::pages::PageKind;
use super::sessions::Session;
use super::{log_uniform, Action, PlannedEvent, Traffic, VisitorKind, ACCEPTED, LATE_MAX_MS, MINUTE, SECOND};
use crate::generate::catalog::{Product, CURRENCY};

/// The tracker flushes a batch at most this long after its first event.
const BATCH_WINDOW_MS: i64 = 5 * SECOND;
/// Held-back (late) events are sent at least this long after their time.
const LATE_MIN_MS: i64 = 2 * MINUTE;

impl Traffic {
    pub(super) fn emit_step(&mut self, s: &mut Session, step: Step, ts: i64) {
        let (event_type, props) = match step {
            Step::View(page, referrer) => {
                // The page before is left first: how long it was read.
                self.leave_page(s, ts - 1);
                s.viewed_at = ts;
                s.referrer = referrer.unwrap_or_else(|| s.page.url.clone());
                s.page = page;
                let props = match s.page.kind {
                    PageKind::Product(p) => {
                        Props { product_id: Some(p.id()), category: Some(p.category.to_string()), ..named(p) }
                    }
                    _ => Props::default(),
                };
                (EventType::PageView, props)
            }
            Step::Click { tag, text, href } => {
                (EventType::Click, Props { tag: Some(tag.to_string()), text: Some(text), href, ..Props::default() })
            }
            Step::Search(q) => (EventType::Search, Props { query: Some(q.to_string()), ..Props::default() }),
            Step::Add(p, q) => (EventType::AddToCart, cart_props(p, q)),
            Step::Remove(p, q) => (EventType::RemoveFromCart, cart_props(p, q)),
            Step::BeginCheckout { cents } => (
                EventType::BeginCheckout,
                Props { currency: Some(CURRENCY.to_string()), revenue: Some(cents as f64 / 100.0), ..Props::default() },
            ),
            Step::PurchaseLine { order_id, product, quantity } => (
                EventType::Purchase,
                Props {
                    order_id: Some(order_id),
                    product_id: Some(product.id()),
                    category: Some(product.category.to_string()),
                    price: Some(product.price()),
                    quantity: Some(i64::from(quantity)),
                    // From cents, so it equals price × quantity exactly.
                    revenue: Some((product.cents * u64::from(quantity)) as f64 / 100.0),
                    currency: Some(CURRENCY.to_string()),
                    ..named(product)
                },
            ),
            Step::Identify => {
                let needs_account = self.visitors.get(&s.visitor).is_some_and(|v| v.account.is_none());
                let fresh = needs_account.then(|| self.new_user_id());
                if let Some(v) = self.visitors.get_mut(&s.visitor) {
                    if let Some(u) = fresh {
                        v.account = Some(u);
                    }
                    v.logged_in = true;
                }
                (EventType::Identify, Props::default())
            }
            Step::Custom(name) => {
                let mut props = Props { name: Some(name.to_string()), ..Props::default() };
                if name == "newsletter_signup" {
                    // Where the form was: the shop's goals and custom-event
                    // breakdowns (examples/shop.toml) use it.
                    let placement = if s.page.path == "/" { "home" } else { "footer" };
                    props.extra.insert("placement".to_string(), Value::String(placement.to_string()));
                }
                (EventType::Custom, props)
            }
            Step::Leave => return self.leave_page(s, ts),
        };
        self.send(s, event_type, props, ts);
    }

    /// A human's `page_leave` of the page they are on, sent at `ts` (the
    /// next page's view, or the end of the visit): most of the time since
    /// its view was engaged (a tab in the background now and then), and
    /// they scrolled some way down, further the longer they read.
    pub(super) fn leave_page(&mut self, s: &mut Session, ts: i64) {
        if s.kind != VisitorKind::Human || s.viewed_at == 0 || ts <= s.viewed_at {
            return;
        }
        let read = ts - s.viewed_at;
        let engaged = (read as f64 * self.rng.gen_range(0.55..1.0)) as i64;
        let depth = (25.0 + 75.0 * (read as f64 / 60_000.0).min(1.0) * self.rng.gen_range(0.4..1.0)) as i64;
        s.viewed_at = 0;
        let props = Props { engaged_ms: Some(engaged), scroll_depth: Some(depth.min(100)), ..Props::default() };
        self.send(s, EventType::PageLeave, props, ts);
    }

    /// Sends one event of the session (or holds it back to arrive late).
    fn send(&mut self, s: &mut Session, event_type: EventType, props: Props, ts: i64) {
        // A step can send two events (a page left, then the next one's
        // view): the budget is exact all the same.
        if self.budget.is_some_and(|n| self.generated >= n) {
            return;
        }
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
        let event = Event {
            event_id,
            event_type,
            ts,
            anonymous_id: v.anonymous_id.clone(),
            user_id,
            session_id: s.id.clone(),
            page: wire::Page {
                url: s.page.url.clone(),
                path: s.page.path.clone(),
                referrer: s.referrer.clone(),
                title: s.page.title.clone(),
            },
            props,
            context: Context { screen: v.screen.to_string(), lang: v.lang.to_string(), tz: v.tz.to_string() },
        };
        let event = as_sent(&event);
        let planned = if self.rng.gen_bool(self.malformed_share) {
            self.corrupt(event)
        } else {
            PlannedEvent { event, expect: ACCEPTED.to_string() }
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

fn cart_props(p: &Product, quantity: u32) -> Props {
    Props {
        product_id: Some(p.id()),
        price: Some(p.price()),
        quantity: Some(i64::from(quantity)),
        category: Some(p.category.to_string()),
        currency: Some(CURRENCY.to_string()),
        ..named(p)
    }
}

/// Props naming a product as a shop's pages do: `product_name` is not one
/// of the contract's props, so it travels as an extra prop (Gold's
/// `dim_products` reads it from there).
fn named(p: &Product) -> Props {
    let mut props = Props::default();
    props.extra.insert("product_name".to_string(), Value::String(p.name.to_string()));
    props
}

/// The event's JSON as the generator sends it. Every page field is sent,
/// an empty one (a direct visit's referrer) as `""`, where the contract's
/// serde leaves it out; the collector reads both alike.
fn as_sent(event: &Event) -> Value {
    let mut json = serde_json::to_value(event).expect("a contract event is plain JSON");
    if let Some(page) = json.get_mut("page").and_then(Value::as_object_mut) {
        for field in ["url", "path", "referrer", "title"] {
            page.entry(field).or_insert_with(|| Value::String(String::new()));
        }
    }
    json
}

/// A ULID (Crockford base32, 26 chars): 48-bit ms time + 80 bits from the
/// seeded RNG, so ids sort by time, are unique, and are reproducible.
fn ulid<R: Rng>(ts: i64, rng: &mut R) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let time = (ts.max(0) as u128) & ((1 << 48) - 1);
    let random = (u128::from(rng.gen::<u64>()) << 16) | u128::from(rng.gen::<u16>());
    let value = (time << 80) | random;
    (0..26).map(|i| ALPHABET[((value >> (125 - 5 * i)) & 31) as usize] as char).collect()
}
