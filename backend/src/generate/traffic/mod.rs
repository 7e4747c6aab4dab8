//! The deterministic planner: a discrete-event simulation of a shop's
//! visitors that yields the batches a browser tracker would send.
//!
//! No I/O and no clock of its own: the caller says what "now" is, so the same
//! seed and the same `now_ms` give byte-identical batches, and the HTTP side
//! (`sender.rs`) only decides *when* to send them.
//!
//! Model, briefly:
//! - Sessions arrive as a Poisson process sized to the target event rate
//!   (events per ms of event time), nudged back when the cumulative count
//!   drifts. The simulation starts with a hidden warm-up, so the history
//!   opens with visitors already mid-session instead of a ramp.
//! - Real-time mode: the history starts at `now` and the caller advances
//!   `now` with the wall clock. Fast mode: it starts in the past and ends
//!   near `now`; it never emits an event later than `now`.
//! - Each session is a small state machine over the shop's pages (landing
//!   with a traffic source, browse, search, cart, checkout, purchase); every
//!   step emits one event after a think time.
//! - A visitor's open batch closes at `batch_size` events, 5 s after its first
//!   event, or at the end of the session, like the tracker's flush.
//! - Bots (crawlers, burst clients), late events, malformed events and
//!   duplicate batches are mixed in at the configured shares.

mod batches;
mod bots;
mod event;
mod journey;
mod malformed;
mod pages;
mod sessions;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::catalog::pick;
use super::config::GenerateOptions;
use sessions::{Session, Visitor};

/// `expect` of an event the server must accept.
pub const ACCEPTED: &str = "accepted";
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// What `navigator.sendBeacon` sends for a string body.
pub const CONTENT_TYPE_BEACON: &str = "text/plain;charset=UTF-8";

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Fast mode replays a history at this density, so a 20,000-event run spans
/// about 8 hours of event time (hourly tables, returning visitors and hours-
/// late events all get exercised).
const FAST_EVENTS_PER_MIN: f64 = 40.0;
const FAST_MAX_HISTORY_MS: i64 = 3 * DAY;
/// History replayed by an open-ended fast run before it goes live.
const FAST_OPEN_ENDED_HISTORY_MS: i64 = HOUR;
/// No valid event is older than the server's horizon less this; explicit
/// `start_ms` values are clamped to respect it.
const HORIZON_MARGIN_MS: i64 = DAY;
/// Held-back (late) events are sent at most this long after their time.
const LATE_MAX_MS: i64 = 3 * HOUR;
/// Hidden warm-up before `start_ms`: at most this long / this many events.
const WARMUP_MS: i64 = 15 * MINUTE;
const WARMUP_MAX_EVENTS: f64 = 10_000.0;
/// Events per session of the behaviour model, measured from the model itself
/// (a test keeps them honest): humans, bots, and the share of sessions that
/// come from new visitors (only those can be bots).
const HUMAN_EVENTS_PER_SESSION: f64 = 6.1;
const BOT_EVENTS_PER_SESSION: f64 = 62.0;
const NEW_VISITOR_SESSION_SHARE: f64 = 0.67;

/// One event as planned, with the outcome the server must report for it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedEvent {
    /// The event JSON exactly as sent (may be a corrupted one, even a non-object).
    pub event: Value,
    /// `"accepted"` or the reason code the server must reject it with.
    pub expect: String,
}

impl PlannedEvent {
    pub fn is_valid(&self) -> bool {
        self.expect == ACCEPTED
    }
}

/// Who sends a batch; ground truth for the bot tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VisitorKind {
    Human,
    /// Crawler or automation UA fetching many pages.
    Crawler,
    /// Browser UA firing more than 50 events within a minute.
    Burst,
}

/// One POST as the tracker of one visitor would send it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedBatch {
    /// `{"v":1,"site_id":…,"sent_at":…,"events":[…]}`; `sent_at` is the planned
    /// send time and is replaced by the wall clock when actually sent.
    pub body: Value,
    pub user_agent: String,
    /// For `CF-IPCountry`.
    pub country: String,
    /// For `X-Forwarded-For` (documentation ranges only).
    pub ip: String,
    pub content_type: &'static str,
    /// A deliberate resend of the previous batch (same body, same event ids).
    pub duplicate: bool,
    /// The events of `body`, in order, with their expected outcome.
    pub events: Vec<PlannedEvent>,
    pub anonymous_id: String,
    pub kind: VisitorKind,
    /// Event time at which the tracker sends it (≤ `now_ms`).
    pub send_at_ms: i64,
}

/// The planner. Iterate it (or call [`Traffic::next_batch`]) to get batches in
/// send order; it stops at `now_ms` (see [`Traffic::set_now`]) or when the
/// event budget is spent.
pub struct Traffic {
    rng: ChaCha8Rng,
    site_id: String,
    batch_size: usize,
    malformed_share: f64,
    duplicate_share: f64,
    late_share: f64,
    bot_share: f64,
    budget: Option<u64>,

    start_ms: i64,
    now_ms: i64,
    clock: i64,
    /// Target event rate, events per ms of event time.
    rate_per_ms: f64,
    /// Fast mode with a budget: once the history reaches this wall-clock
    /// time unfinished, visitors arrive quickly so the run ends in seconds
    /// rather than at the history's leisurely pace.
    catch_up_at: Option<i64>,
    mean_events: f64,

    heap: BinaryHeap<Reverse<(i64, u64, Action)>>,
    seq: u64,
    out: VecDeque<PlannedBatch>,
    visitors: BTreeMap<u64, Visitor>,
    sessions: BTreeMap<u64, Session>,
    pool: Vec<u64>,
    next_key: u64,
    next_user: u64,

    generated: u64,
    done_sessions: u64,
    done_session_events: u64,
    finished: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Arrival,
    Step(u64),
    /// Close the session's open batch if it is still batch number `.1`.
    Deadline(u64, u64),
    /// Send the visitor's held-back events that are due.
    Release(u64),
}

impl Traffic {
    /// Plans traffic for `opts` as seen at wall-clock time `now_ms`.
    pub fn new(opts: &GenerateOptions, now_ms: i64) -> Self {
        let share = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let realtime = opts.rate.is_some_and(|r| r.is_finite() && r > 0.0);
        // Leave room for late events (≤ 3 h after their ts) inside the age limit.
        let earliest = now_ms - (opts.horizon_ms - HORIZON_MARGIN_MS) + LATE_MAX_MS + HOUR;
        let start_ms = match (opts.start_ms, opts.events) {
            (Some(s), _) => s.clamp(earliest, now_ms),
            (None, _) if realtime => now_ms,
            (None, Some(n)) => {
                let span = (n as f64 / FAST_EVENTS_PER_MIN * MINUTE as f64) as i64;
                now_ms - span.clamp(MINUTE, FAST_MAX_HISTORY_MS)
            }
            (None, None) => now_ms - FAST_OPEN_ENDED_HISTORY_MS,
        };
        let default_rate = FAST_EVENTS_PER_MIN / MINUTE as f64;
        let rate_per_ms = match (opts.rate, opts.events) {
            (Some(r), _) if realtime => r / 1000.0,
            // Aim a little ahead, so the budget is spent before the history
            // reaches the wall clock (where the run would have to wait).
            (_, Some(n)) if now_ms - start_ms >= MINUTE => {
                let margin = 1.03 + 1.0 / (n as f64).sqrt();
                // A history asked for is spread over, however thin.
                let floor = if opts.start_ms.is_some() { 0.0 } else { default_rate / 10.0 };
                (n as f64 / (now_ms - start_ms) as f64 * margin).max(floor)
            }
            _ => default_rate,
        };
        // Warm up hidden: the simulation starts earlier and drops events
        // before `start_ms`, so the first minute already has the steady
        // population of visitors mid-session (no ramp). Bounded in events so
        // high rates do not pay for it.
        let warmup_ms = (WARMUP_MAX_EVENTS / rate_per_ms).min(WARMUP_MS as f64) as i64;
        let mut t = Traffic {
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            site_id: opts.site_id.clone(),
            batch_size: opts.batch_size.max(1),
            malformed_share: share(opts.malformed_share),
            duplicate_share: share(opts.duplicate_share),
            late_share: share(opts.late_share),
            bot_share: share(opts.bot_share),
            budget: opts.events,
            start_ms,
            now_ms,
            clock: start_ms - warmup_ms,
            rate_per_ms,
            catch_up_at: (!realtime && opts.events.is_some()).then_some(now_ms),
            mean_events: HUMAN_EVENTS_PER_SESSION
                + NEW_VISITOR_SESSION_SHARE
                    * share(opts.bot_share)
                    * (BOT_EVENTS_PER_SESSION - HUMAN_EVENTS_PER_SESSION),
            heap: BinaryHeap::new(),
            seq: 0,
            out: VecDeque::new(),
            visitors: BTreeMap::new(),
            sessions: BTreeMap::new(),
            pool: Vec::new(),
            next_key: 0,
            next_user: 1000,
            generated: 0,
            done_sessions: 0,
            done_session_events: 0,
            finished: opts.events == Some(0),
        };
        t.schedule(start_ms - warmup_ms, Action::Arrival);
        t
    }

    /// Start of the simulated clock.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// The wall clock the planner may not run past.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Events generated so far (valid + malformed, each once).
    pub fn generated(&self) -> u64 {
        self.generated
    }

    /// True once the budget is spent (or `finish` was called) and every
    /// batch has been handed out.
    pub fn is_finished(&self) -> bool {
        self.finished && self.out.is_empty()
    }

    /// Lets the simulation advance up to the new wall-clock time.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Event time at which the next batch may become ready; `None` when done.
    pub fn next_due_ms(&self) -> Option<i64> {
        if !self.out.is_empty() {
            return Some(self.clock);
        }
        if self.finished {
            return None;
        }
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// True if the next batch is the deliberate resend of the one just
    /// returned (the sender pairs them, so the resend follows the original).
    pub fn next_is_duplicate(&self) -> bool {
        self.out.front().is_some_and(|b| b.duplicate)
    }

    /// The next batch in send order. `None` means finished, or the simulation
    /// has caught up with `now_ms` (see [`Traffic::is_finished`]).
    pub fn next_batch(&mut self) -> Option<PlannedBatch> {
        loop {
            if let Some(b) = self.out.pop_front() {
                return Some(b);
            }
            if self.finished {
                return None;
            }
            if self.budget.is_some_and(|n| self.generated >= n) {
                self.flush_all();
                continue;
            }
            match self.heap.peek() {
                Some(Reverse((t, _, _))) if *t <= self.now_ms => {}
                _ => return None,
            }
            let Reverse((t, _, action)) = self.heap.pop()?;
            self.clock = self.clock.max(t);
            match action {
                Action::Arrival => self.arrive(t),
                Action::Step(key) => self.step(key, t),
                Action::Deadline(key, no) => {
                    if let Some(mut s) = self.sessions.remove(&key) {
                        if s.open_no == no {
                            self.close_batch(&mut s, t);
                        }
                        self.sessions.insert(key, s);
                    }
                }
                Action::Release(v) => self.release(v, t, false),
            }
        }
    }

    /// Events per finished session so far, the model's mean, and sessions.
    #[cfg(test)]
    pub(super) fn mean_events_per_session(&self) -> (f64, f64, u64) {
        (self.done_session_events as f64 / self.done_sessions.max(1) as f64, self.mean_events, self.done_sessions)
    }

    /// Stops generating: closes every open batch and releases every held-back
    /// event, returning all batches not handed out yet.
    pub fn finish(&mut self) -> Vec<PlannedBatch> {
        if !self.finished {
            self.flush_all();
        }
        self.out.drain(..).collect()
    }

    // ---- scheduling -------------------------------------------------------

    fn schedule(&mut self, at: i64, action: Action) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, action)));
    }

    fn flush_all(&mut self) {
        let at = self.clock.min(self.now_ms);
        let keys: Vec<u64> = self.sessions.keys().copied().collect();
        for key in keys {
            if let Some(mut s) = self.sessions.remove(&key) {
                self.close_batch(&mut s, at);
                if let Some(v) = self.visitors.get_mut(&s.visitor) {
                    v.in_session = false;
                }
            }
        }
        let with_late: Vec<u64> = self.visitors.iter().filter(|(_, v)| !v.late.is_empty()).map(|(k, _)| *k).collect();
        for v in with_late {
            self.release(v, at, true);
        }
        self.heap.clear();
        self.finished = true;
    }
}

impl Iterator for Traffic {
    type Item = PlannedBatch;
    fn next(&mut self) -> Option<PlannedBatch> {
        self.next_batch()
    }
}

/// A copy of a random element (for tables of references).
fn pick_one<T: Copy, R: Rng>(rng: &mut R, items: &[T]) -> T {
    *pick(rng, items)
}

fn log_uniform<R: Rng>(rng: &mut R, lo: i64, hi: i64) -> i64 {
    let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
    (a + rng.gen::<f64>() * (b - a)).exp() as i64
}
