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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::catalog::{
    self, pick, Device, Product, Source, BOT_UAS, BROWSER_UAS, CATEGORIES, COUNTRIES, CURRENCY,
    CUSTOM_EVENTS, PRODUCTS, SEARCHES, SHOP_ORIGIN,
};
use super::config::GenerateOptions;

/// `expect` of an event the server must accept.
pub const ACCEPTED: &str = "accepted";
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// What `navigator.sendBeacon` sends for a string body.
pub const CONTENT_TYPE_BEACON: &str = "text/plain;charset=UTF-8";

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The tracker flushes a batch at most this long after its first event.
const BATCH_WINDOW_MS: i64 = 5 * SECOND;
/// Server-side sessions split after this much inactivity; returning visits
/// start only after it, so a client session is also a server session.
const SESSION_GAP_MS: i64 = 30 * MINUTE;
/// Fast mode replays a history at this density, so a 20,000-event run spans
/// about 8 hours of event time (hourly tables, returning visitors and hours-
/// late events all get exercised).
const FAST_EVENTS_PER_MIN: f64 = 40.0;
const FAST_MAX_HISTORY_MS: i64 = 3 * DAY;
/// History replayed by an open-ended fast run before it goes live.
const FAST_OPEN_ENDED_HISTORY_MS: i64 = HOUR;
/// No valid event is older than this relative to `now_ms` (the server's
/// horizon is a week); explicit `start_ms` values are clamped to respect it.
const MAX_AGE_MS: i64 = 6 * DAY;
const LATE_MIN_MS: i64 = 2 * MINUTE;
const LATE_MAX_MS: i64 = 3 * HOUR;
/// Returning visitors are drawn from a bounded pool, so an endless run does
/// not grow without limit.
const VISITOR_POOL_CAP: usize = 50_000;
const RETURNING_SHARE: f64 = 0.3;
/// Share of new human visitors that already have an account (and may log in).
const ACCOUNT_SHARE: f64 = 0.3;
/// Hidden warm-up before `start_ms`: at most this long / this many events.
const WARMUP_MS: i64 = 15 * MINUTE;
const WARMUP_MAX_EVENTS: f64 = 10_000.0;
/// Events per session of the behaviour model, measured from the model itself
/// (a test keeps them honest): humans, bots, and the share of sessions that
/// come from new visitors (only those can be bots).
const HUMAN_EVENTS_PER_SESSION: f64 = 3.75;
const BOT_EVENTS_PER_SESSION: f64 = 62.0;
const NEW_VISITOR_SESSION_SHARE: f64 = 0.67;
/// Time constant of the arrival-rate correction.
const CORRECTION_MS: i64 = 10 * MINUTE;
/// Share of batches sent by `sendBeacon` (page hide) rather than `fetch`.
const BEACON_SHARE: f64 = 0.2;

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

struct Visitor {
    anonymous_id: String,
    kind: VisitorKind,
    user_agent: &'static str,
    screen: &'static str,
    country: &'static str,
    lang: &'static str,
    tz: &'static str,
    ip: String,
    /// The user id once the visitor has an account.
    account: Option<String>,
    /// The tracker keeps the identified user id across sessions.
    logged_in: bool,
    last_seen: i64,
    in_session: bool,
    /// Still in the returning-visitor pool.
    retained: bool,
    late: Vec<(i64, PlannedEvent)>,
}

#[derive(Clone, Debug)]
enum PageKind {
    Home,
    Category(&'static str),
    Product(&'static Product),
    Search(&'static str),
    Cart,
    Checkout,
    ThankYou,
    Login,
}

#[derive(Clone, Debug)]
struct Page {
    kind: PageKind,
    url: String,
    path: String,
    title: String,
}

enum Step {
    /// Navigate and fire `page_view`; an explicit referrer marks a landing.
    View(Page, Option<String>),
    Click { tag: &'static str, text: String, href: Option<String> },
    Search(&'static str),
    Add(&'static Product, u32),
    Remove(&'static Product, u32),
    BeginCheckout { cents: u64 },
    PurchaseLine { order_id: String, product: &'static Product, quantity: u32 },
    Identify,
    Custom(&'static str),
}

struct Session {
    key: u64,
    visitor: u64,
    id: String,
    kind: VisitorKind,
    page: Page,
    referrer: String,
    cart: Vec<(&'static Product, u32)>,
    just_added: bool,
    login_offered: bool,
    steps: u32,
    /// Bots: events left to fire.
    remaining: u32,
    /// Burst clients: max gap between events.
    gap_ms: i64,
    queue: VecDeque<(i64, Step)>,
    open: Vec<PlannedEvent>,
    open_no: u64,
    events: u64,
}

impl Traffic {
    /// Plans traffic for `opts` as seen at wall-clock time `now_ms`.
    pub fn new(opts: &GenerateOptions, now_ms: i64) -> Self {
        let share = |x: f64| if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 };
        let realtime = opts.rate.is_some_and(|r| r.is_finite() && r > 0.0);
        // Leave room for late events (≤ 3 h after their ts) inside the age limit.
        let earliest = now_ms - MAX_AGE_MS + LATE_MAX_MS + HOUR;
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
                (n as f64 / (now_ms - start_ms) as f64 * margin).max(default_rate / 10.0)
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
                + NEW_VISITOR_SESSION_SHARE * share(opts.bot_share) * (BOT_EVENTS_PER_SESSION - HUMAN_EVENTS_PER_SESSION),
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
        let with_late: Vec<u64> =
            self.visitors.iter().filter(|(_, v)| !v.late.is_empty()).map(|(k, _)| *k).collect();
        for v in with_late {
            self.release(v, at, true);
        }
        self.heap.clear();
        self.finished = true;
    }

    /// A new session: a returning visitor or a new one (possibly a bot).
    fn arrive(&mut self, t: i64) {
        // Poisson arrivals at rate / (events per session), with the model's
        // calibrated mean (a running mean would start biased low: short
        // sessions finish first), plus a slow integral correction that pulls
        // the cumulative count back to the target so a fast run ends near now.
        let factor = if t < self.start_ms {
            1.0
        } else {
            let behind = self.rate_per_ms * (t - self.start_ms) as f64 - self.generated as f64;
            (1.0 + behind / (self.rate_per_ms * CORRECTION_MS as f64)).clamp(0.5, 2.0)
        };
        let per_ms = self.rate_per_ms / self.mean_events * factor;
        let mut gap = -(1.0 - self.rng.gen::<f64>()).ln() / per_ms;
        if self.catch_up_at.is_some_and(|at| t >= at) {
            gap = gap.min(50.0);
        }
        self.schedule(t + (gap as i64).clamp(1, 30 * DAY), Action::Arrival);

        let mut returning = None;
        if !self.pool.is_empty() && self.rng.gen_bool(RETURNING_SHARE) {
            let key = self.pool[self.rng.gen_range(0..self.pool.len())];
            if let Some(v) = self.visitors.get(&key) {
                if !v.in_session && t - v.last_seen > SESSION_GAP_MS {
                    returning = Some(key);
                }
            }
        }
        let visitor = match returning {
            Some(k) => k,
            None => {
                let kind = if self.rng.gen_bool(self.bot_share) {
                    if self.rng.gen_bool(0.3) {
                        VisitorKind::Burst
                    } else {
                        VisitorKind::Crawler
                    }
                } else {
                    VisitorKind::Human
                };
                self.new_visitor(kind)
            }
        };
        self.start_session(visitor, t);
    }

    fn new_visitor(&mut self, kind: VisitorKind) -> u64 {
        let key = self.next_key();
        let anonymous_id = format!("a-{:016x}", self.rng.gen::<u64>());
        let rng = &mut self.rng;
        let (user_agent, device, country, lang, tz) = match kind {
            VisitorKind::Crawler => (*pick(rng, BOT_UAS), Device::Desktop, "US", "en-US", "UTC"),
            _ => {
                let b = &BROWSER_UAS[catalog::pick_browser(rng)];
                let c = &COUNTRIES[catalog::pick_country(rng)];
                (b.ua, b.device, c.code, c.lang, c.tz)
            }
        };
        let screen = *pick(rng, catalog::screens(device));
        let ip = catalog::pick_ip(rng);
        let account = (kind == VisitorKind::Human && self.rng.gen_bool(ACCOUNT_SHARE)).then(|| self.new_user_id());
        let retained = kind == VisitorKind::Human;
        self.visitors.insert(
            key,
            Visitor {
                anonymous_id,
                kind,
                user_agent,
                screen,
                country,
                lang,
                tz,
                ip,
                account,
                logged_in: false,
                last_seen: 0,
                in_session: false,
                retained,
                late: Vec::new(),
            },
        );
        if retained {
            self.pool.push(key);
            if self.pool.len() > VISITOR_POOL_CAP {
                let i = self.rng.gen_range(0..self.pool.len());
                let evicted = self.pool.swap_remove(i);
                if let Some(v) = self.visitors.get_mut(&evicted) {
                    v.retained = false;
                }
                self.forget_if_idle(evicted);
            }
        }
        key
    }

    fn forget_if_idle(&mut self, key: u64) {
        if self.visitors.get(&key).is_some_and(|v| !v.retained && !v.in_session && v.late.is_empty()) {
            self.visitors.remove(&key);
        }
    }

    fn next_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    fn new_user_id(&mut self) -> String {
        self.next_user += 1 + self.rng.gen_range(0..7);
        format!("u-{}", self.next_user)
    }

    fn start_session(&mut self, visitor: u64, t: i64) {
        let key = self.next_key();
        let id = format!("s-{:016x}", self.rng.gen::<u64>());
        let kind = match self.visitors.get_mut(&visitor) {
            Some(v) => {
                v.in_session = true;
                v.kind
            }
            None => return,
        };
        let (page, referrer, remaining, gap_ms) = match kind {
            VisitorKind::Human => {
                let source = catalog::pick_source(&mut self.rng);
                let page = self.landing_page(&source);
                (page, source.referrer.to_string(), 0, 0)
            }
            VisitorKind::Crawler => (self.any_page(), String::new(), self.rng.gen_range(15..80), 0),
            VisitorKind::Burst => {
                // Spread n events over at most ~50 s: > 50 events in a minute.
                let n = self.rng.gen_range(60..=120);
                (self.product_page(), String::new(), n, 50 * SECOND / i64::from(n))
            }
        };
        let mut s = Session {
            key,
            visitor,
            id,
            kind,
            page: page.clone(),
            referrer: String::new(),
            cart: Vec::new(),
            just_added: false,
            login_offered: false,
            steps: 0,
            remaining,
            gap_ms,
            queue: VecDeque::new(),
            open: Vec::new(),
            open_no: 0,
            events: 0,
        };
        s.queue.push_back((0, Step::View(page, Some(referrer))));
        self.sessions.insert(key, s);
        self.schedule(t, Action::Step(key));
    }

    fn step(&mut self, key: u64, t: i64) {
        let Some(mut s) = self.sessions.remove(&key) else { return };
        if let Some((_, step)) = s.queue.pop_front() {
            self.emit_step(&mut s, step, t);
        }
        if s.queue.is_empty() {
            match s.kind {
                VisitorKind::Human => self.plan_human(&mut s),
                VisitorKind::Crawler => self.plan_crawler(&mut s),
                VisitorKind::Burst => self.plan_burst(&mut s),
            }
        }
        match s.queue.front() {
            Some((delay, _)) => {
                let at = t + (*delay).max(1);
                self.sessions.insert(key, s);
                self.schedule(at, Action::Step(key));
            }
            None => self.end_session(s, t),
        }
    }

    fn end_session(&mut self, mut s: Session, t: i64) {
        self.close_batch(&mut s, t);
        self.done_sessions += 1;
        self.done_session_events += s.events;
        if let Some(v) = self.visitors.get_mut(&s.visitor) {
            v.in_session = false;
            v.last_seen = t;
        }
        self.forget_if_idle(s.visitor);
    }

    // ---- behaviour --------------------------------------------------------

    /// Reading time before the next action: log-uniform 3 s … 3 min, so most
    /// gaps are short and none split a session.
    fn think(&mut self) -> i64 {
        log_uniform(&mut self.rng, 3 * SECOND, 3 * MINUTE)
    }

    /// Navigate to `page`, usually by clicking a link on the current one.
    fn go(&mut self, s: &mut Session, page: Page, click_share: f64) {
        let think = self.think();
        if self.rng.gen_bool(click_share) {
            let text = match &page.kind {
                PageKind::Product(p) => p.name.to_string(),
                PageKind::Category(c) => capitalize(c),
                PageKind::Cart => "Cart".to_string(),
                PageKind::Home => "Shop Example".to_string(),
                _ => page.title.clone(),
            };
            s.queue.push_back((think, Step::Click { tag: "a", text, href: Some(page.url.clone()) }));
            let delay = self.rng.gen_range(150..900);
            s.queue.push_back((delay, Step::View(page, None)));
        } else {
            s.queue.push_back((think, Step::View(page, None)));
        }
    }

    /// A click on a button of the current page, then what it triggers.
    fn press(&mut self, s: &mut Session, text: &str, then: Step) {
        let think = self.think();
        s.queue.push_back((think, Step::Click { tag: "button", text: text.to_string(), href: None }));
        let delay = self.rng.gen_range(20..200);
        s.queue.push_back((delay, then));
    }

    fn plan_human(&mut self, s: &mut Session) {
        s.steps += 1;
        // Fatigue: every step makes leaving a little likelier.
        let fatigue = (f64::from(s.steps) * 0.012).min(0.5);
        if s.steps > 45 || self.rng.gen_bool(fatigue) {
            return;
        }
        let r: f64 = self.rng.gen();
        let (logged_in, has_account) = self
            .visitors
            .get(&s.visitor)
            .map_or((false, false), |v| (v.logged_in, v.account.is_some()));
        let just_added = std::mem::take(&mut s.just_added);
        match s.page.kind.clone() {
            PageKind::Home => {
                if r < 0.32 {
                    let p = self.category_page(None);
                    self.go(s, p, 0.7);
                } else if r < 0.46 {
                    let p = self.product_page();
                    self.go(s, p, 0.8);
                } else if r < 0.58 {
                    self.search(s);
                } else if r < 0.61 {
                    self.press(s, "Subscribe", Step::Custom("newsletter_signup"));
                } else if r < 0.66 && has_account && !logged_in {
                    self.go(s, page(PageKind::Login, "/login", "Sign in | Shop Example"), 0.9);
                }
            }
            PageKind::Login => {
                self.press(s, "Sign in", Step::Identify);
                let delay = self.rng.gen_range(300..1200);
                s.queue.push_back((delay, Step::View(home_page(), None)));
            }
            PageKind::Category(c) => {
                if r < 0.46 {
                    let p = product_page(pick_one(&mut self.rng, &catalog::products_in(c).collect::<Vec<_>>()));
                    self.go(s, p, 0.85);
                } else if r < 0.56 {
                    let p = self.category_page(Some(c));
                    self.go(s, p, 0.7);
                } else if r < 0.63 {
                    self.search(s);
                } else if r < 0.67 {
                    self.press(s, "Apply filters", Step::Custom("filter_used"));
                }
            }
            PageKind::Product(p) if just_added => {
                if r < 0.55 {
                    self.go(s, cart_page(), 0.9);
                } else if r < 0.80 {
                    let next = if self.rng.gen_bool(0.5) { self.related(p) } else { category_page(p.category) };
                    self.go(s, next, 0.8);
                }
            }
            PageKind::Product(p) => {
                if r < 0.09 {
                    let quantity = match self.rng.gen_range(0..100) {
                        0..=79 => 1,
                        80..=94 => 2,
                        _ => 3,
                    };
                    match s.cart.iter_mut().find(|(q, _)| q.n == p.n) {
                        Some(line) => line.1 += quantity,
                        None => s.cart.push((p, quantity)),
                    }
                    s.just_added = true;
                    self.press(s, "Add to cart", Step::Add(p, quantity));
                } else if r < 0.27 {
                    let next = self.related(p);
                    self.go(s, next, 0.85);
                } else if r < 0.38 {
                    self.go(s, category_page(p.category), 0.6);
                } else if r < 0.44 {
                    self.search(s);
                } else if r < 0.50 && !s.cart.is_empty() {
                    self.go(s, cart_page(), 0.9);
                } else if r < 0.53 {
                    let name = *pick(&mut self.rng, &["image_zoom", "size_guide_opened", "video_play", "wishlist_add"]);
                    self.press(s, "More", Step::Custom(name));
                }
            }
            PageKind::Search(q) => {
                let cat = SEARCHES.iter().find(|(t, _)| *t == q).map_or("home", |(_, c)| *c);
                if r < 0.55 {
                    let p = product_page(pick_one(&mut self.rng, &catalog::products_in(cat).collect::<Vec<_>>()));
                    self.go(s, p, 0.95);
                } else if r < 0.65 {
                    self.search(s);
                }
            }
            PageKind::Cart => {
                if s.cart.is_empty() {
                    if r < 0.5 {
                        self.go(s, home_page(), 0.8);
                    }
                } else if r < 0.65 {
                    let cents = cart_cents(&s.cart);
                    let think = self.think();
                    s.queue.push_back((think, Step::Click { tag: "button", text: "Checkout".into(), href: Some(url("/checkout")) }));
                    let delay = self.rng.gen_range(200..900);
                    s.queue.push_back((delay, Step::View(checkout_page(), None)));
                    let delay = self.rng.gen_range(50..300);
                    s.queue.push_back((delay, Step::BeginCheckout { cents }));
                } else if r < 0.73 {
                    let i = self.rng.gen_range(0..s.cart.len());
                    let (p, quantity) = s.cart.remove(i);
                    self.press(s, "Remove", Step::Remove(p, quantity));
                } else if r < 0.85 {
                    let p = self.category_page(None);
                    self.go(s, p, 0.7);
                }
            }
            PageKind::Checkout => {
                if s.cart.is_empty() {
                    return;
                }
                if !logged_in && !s.login_offered {
                    // Sign in (or register) at checkout, then decide again.
                    s.login_offered = true;
                    if self.rng.gen_bool(0.45) {
                        self.press(s, "Sign in", Step::Identify);
                        return;
                    }
                }
                if r < 0.70 {
                    // Filling in the form takes a while.
                    let fill = log_uniform(&mut self.rng, 20 * SECOND, 4 * MINUTE);
                    s.queue.push_back((fill, Step::Click { tag: "button", text: "Place order".into(), href: None }));
                    let delay = self.rng.gen_range(800..3000);
                    s.queue.push_back((delay, Step::View(page(PageKind::ThankYou, "/thank-you", "Thank you | Shop Example"), None)));
                    let order_id = format!("o-{:012x}", self.rng.gen::<u64>() >> 16);
                    for (product, quantity) in std::mem::take(&mut s.cart) {
                        let delay = self.rng.gen_range(5..40);
                        s.queue.push_back((delay, Step::PurchaseLine { order_id: order_id.clone(), product, quantity }));
                    }
                } else if r < 0.78 {
                    self.go(s, cart_page(), 0.9);
                }
            }
            PageKind::ThankYou => {
                if r < 0.25 {
                    self.go(s, home_page(), 0.8);
                } else if r < 0.32 {
                    self.press(s, "Subscribe", Step::Custom("newsletter_signup"));
                }
            }
        }
    }

    fn plan_crawler(&mut self, s: &mut Session) {
        if s.remaining == 0 {
            return;
        }
        s.remaining -= 1;
        let delay = self.rng.gen_range(500..4000);
        let page = self.any_page();
        s.queue.push_back((delay, Step::View(page, None)));
    }

    fn plan_burst(&mut self, s: &mut Session) {
        if s.remaining == 0 {
            return;
        }
        s.remaining -= 1;
        let delay = self.rng.gen_range(s.gap_ms / 2..=s.gap_ms);
        let step = if self.rng.gen_bool(0.5) {
            let p = self.product_page();
            Step::Click { tag: "a", text: p.title.clone(), href: Some(p.url) }
        } else if self.rng.gen_bool(0.1) {
            Step::Custom(pick_one(&mut self.rng, CUSTOM_EVENTS))
        } else {
            Step::View(self.product_page(), None)
        };
        s.queue.push_back((delay, step));
    }

    fn search(&mut self, s: &mut Session) {
        let (q, _) = *pick(&mut self.rng, SEARCHES);
        let think = self.think();
        s.queue.push_back((think, Step::View(search_page(q), None)));
        let delay = self.rng.gen_range(50..400);
        s.queue.push_back((delay, Step::Search(q)));
    }

    fn landing_page(&mut self, source: &Source) -> Page {
        // Search and ads land deep (product pages); direct visits at home.
        let (home, category) = match (source.utm, source.referrer.is_empty()) {
            (None, false) => (0.2, 0.35),
            (None, true) => (0.7, 0.15),
            (Some((_, "cpc", _)), _) => (0.1, 0.3),
            (Some((_, "email", _)), _) => (0.3, 0.4),
            (Some(_), _) => (0.3, 0.2),
        };
        let r: f64 = self.rng.gen();
        let mut p = if r < home {
            home_page()
        } else if r < home + category {
            self.category_page(None)
        } else {
            self.product_page()
        };
        if let Some((src, medium, campaign)) = source.utm {
            let mut q = format!("utm_source={src}&utm_medium={medium}");
            if !campaign.is_empty() {
                q.push_str("&utm_campaign=");
                q.push_str(campaign);
            }
            p.url.push(if p.url.contains('?') { '&' } else { '?' });
            p.url.push_str(&q);
        }
        p
    }

    fn product_page(&mut self) -> Page {
        product_page(pick(&mut self.rng, PRODUCTS))
    }

    fn category_page(&mut self, not: Option<&str>) -> Page {
        loop {
            let c = *pick(&mut self.rng, &CATEGORIES);
            if Some(c) != not {
                return category_page(c);
            }
        }
    }

    /// Another product, mostly from the same category.
    fn related(&mut self, p: &'static Product) -> Page {
        if self.rng.gen_bool(0.7) {
            let same: Vec<&'static Product> = catalog::products_in(p.category).filter(|q| q.n != p.n).collect();
            product_page(pick_one(&mut self.rng, &same))
        } else {
            self.product_page()
        }
    }

    fn any_page(&mut self) -> Page {
        match self.rng.gen_range(0..10) {
            0 => home_page(),
            1..=3 => self.category_page(None),
            _ => self.product_page(),
        }
    }

    // ---- events and batches ----------------------------------------------

    fn emit_step(&mut self, s: &mut Session, step: Step, ts: i64) {
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
            Step::BeginCheckout { cents } => {
                ("begin_checkout", json!({"currency": CURRENCY, "revenue": cents as f64 / 100.0}))
            }
            Step::PurchaseLine { order_id, product, quantity } => (
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
                let needs_account = self.visitors.get(&s.visitor).is_some_and(|v| v.account.is_none());
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
        let Some(v) = self.visitors.get(&s.visitor) else { return };
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

    /// Breaks a valid event in one of the ways the server must catch.
    fn corrupt(&mut self, mut event: Value) -> PlannedEvent {
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

    fn close_batch(&mut self, s: &mut Session, at: i64) {
        if s.open.is_empty() {
            return;
        }
        s.open_no += 1;
        let events = std::mem::take(&mut s.open);
        self.push_batch(s.visitor, events, at);
    }

    /// Sends the visitor's held-back events that are due (all if `all`).
    fn release(&mut self, key: u64, at: i64, all: bool) {
        let Some(v) = self.visitors.get_mut(&key) else { return };
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut v.late).into_iter().partition(|(r, _)| all || *r <= at);
        v.late = keep;
        let due: Vec<PlannedEvent> = due.into_iter().map(|(_, e)| e).collect();
        for chunk in due.chunks(self.batch_size) {
            self.push_batch(key, chunk.to_vec(), at);
        }
        self.forget_if_idle(key);
    }

    fn push_batch(&mut self, visitor: u64, events: Vec<PlannedEvent>, at: i64) {
        let Some(v) = self.visitors.get(&visitor) else { return };
        let send_at_ms = at.min(self.now_ms);
        let body = json!({
            "v": 1,
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

impl Iterator for Traffic {
    type Item = PlannedBatch;
    fn next(&mut self) -> Option<PlannedBatch> {
        self.next_batch()
    }
}

fn props_mut(obj: &mut serde_json::Map<String, Value>) -> &mut serde_json::Map<String, Value> {
    obj.entry("props").or_insert_with(|| json!({})).as_object_mut().expect("props is an object")
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

fn cart_cents(cart: &[(&'static Product, u32)]) -> u64 {
    cart.iter().map(|(p, q)| p.cents * u64::from(*q)).sum()
}

fn url(path_and_query: &str) -> String {
    format!("{SHOP_ORIGIN}{path_and_query}")
}

fn page(kind: PageKind, path: &str, title: &str) -> Page {
    Page { kind, url: url(path), path: path.to_string(), title: title.to_string() }
}

fn home_page() -> Page {
    page(PageKind::Home, "/", "Shop Example – Everyday things, well made")
}

fn cart_page() -> Page {
    page(PageKind::Cart, "/cart", "Your cart | Shop Example")
}

fn checkout_page() -> Page {
    page(PageKind::Checkout, "/checkout", "Checkout | Shop Example")
}

fn category_page(c: &'static str) -> Page {
    page(PageKind::Category(c), &format!("/c/{c}"), &format!("{} | Shop Example", capitalize(c)))
}

fn product_page(p: &'static Product) -> Page {
    page(PageKind::Product(p), &format!("/p/{}", p.n), &format!("{} | Shop Example", p.name))
}

fn search_page(q: &'static str) -> Page {
    Page {
        kind: PageKind::Search(q),
        url: url(&format!("/search?q={}", q.replace(' ', "+"))),
        path: "/search".to_string(),
        title: format!("Search: {q} | Shop Example"),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
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

/// A ULID (Crockford base32, 26 chars): 48-bit ms time + 80 bits from the
/// seeded RNG, so ids sort by time, are unique, and are reproducible.
fn ulid<R: Rng>(ts: i64, rng: &mut R) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let time = (ts.max(0) as u128) & ((1 << 48) - 1);
    let random = ((rng.gen::<u64>() as u128) << 16) | (rng.gen::<u16>() as u128);
    let value = (time << 80) | random;
    (0..26).map(|i| ALPHABET[((value >> (125 - 5 * i)) & 31) as usize] as char).collect()
}
