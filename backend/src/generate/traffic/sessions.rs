//! Visitors and their sessions: who arrives when (new, returning or a
//! bot), and the loop that plays a session's steps until it ends.

use std::collections::VecDeque;

use rand::Rng;

use super::journey::Step;
use super::pages::Page;
use super::{log_uniform, Action, PlannedEvent, Traffic, VisitorKind, DAY, MINUTE, SECOND};
use crate::generate::catalog::{self, pick, Device, Product, BOT_UAS, BROWSER_UAS, COUNTRIES};

/// Server-side sessions split after this much inactivity; returning visits
/// start only after it, so a client session is also a server session.
const SESSION_GAP_MS: i64 = 30 * MINUTE;
/// Returning visitors are drawn from a bounded pool, so an endless run does
/// not grow without limit.
const VISITOR_POOL_CAP: usize = 50_000;
const RETURNING_SHARE: f64 = 0.3;
/// Share of new human visitors that already have an account (and may log in).
const ACCOUNT_SHARE: f64 = 0.3;
/// Time constant of the arrival-rate correction.
const CORRECTION_MS: i64 = 10 * MINUTE;

pub(super) struct Visitor {
    pub(super) anonymous_id: String,
    pub(super) kind: VisitorKind,
    pub(super) user_agent: &'static str,
    pub(super) screen: &'static str,
    pub(super) country: &'static str,
    pub(super) lang: &'static str,
    pub(super) tz: &'static str,
    pub(super) ip: String,
    /// The user id once the visitor has an account.
    pub(super) account: Option<String>,
    /// The tracker keeps the identified user id across sessions.
    pub(super) logged_in: bool,
    pub(super) last_seen: i64,
    pub(super) in_session: bool,
    /// Still in the returning-visitor pool.
    pub(super) retained: bool,
    pub(super) late: Vec<(i64, PlannedEvent)>,
}

pub(super) struct Session {
    pub(super) key: u64,
    pub(super) visitor: u64,
    pub(super) id: String,
    pub(super) kind: VisitorKind,
    pub(super) page: Page,
    pub(super) referrer: String,
    pub(super) cart: Vec<(&'static Product, u32)>,
    pub(super) just_added: bool,
    pub(super) login_offered: bool,
    pub(super) steps: u32,
    /// Bots: events left to fire.
    pub(super) remaining: u32,
    /// Burst clients: max gap between events.
    pub(super) gap_ms: i64,
    pub(super) queue: VecDeque<(i64, Step)>,
    pub(super) open: Vec<PlannedEvent>,
    pub(super) open_no: u64,
    pub(super) events: u64,
    /// When the page the visitor is on was viewed (0: none, or left).
    pub(super) viewed_at: i64,
}

impl Traffic {
    pub(super) fn arrive(&mut self, t: i64) {
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

    pub(super) fn forget_if_idle(&mut self, key: u64) {
        if self.visitors.get(&key).is_some_and(|v| !v.retained && !v.in_session && v.late.is_empty()) {
            self.visitors.remove(&key);
        }
    }

    fn next_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    pub(super) fn new_user_id(&mut self) -> String {
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
            viewed_at: 0,
        };
        s.queue.push_back((0, Step::View(page, Some(referrer))));
        self.sessions.insert(key, s);
        self.schedule(t, Action::Step(key));
    }

    pub(super) fn step(&mut self, key: u64, t: i64) {
        let Some(mut s) = self.sessions.remove(&key) else {
            return;
        };
        let mut left = false;
        if let Some((_, step)) = s.queue.pop_front() {
            left = matches!(step, Step::Leave);
            self.emit_step(&mut s, step, t);
        }
        // After the last page was left, the visit is over.
        if s.queue.is_empty() && !left {
            match s.kind {
                VisitorKind::Human => self.plan_human(&mut s),
                VisitorKind::Crawler => self.plan_crawler(&mut s),
                VisitorKind::Burst => self.plan_burst(&mut s),
            }
            if s.queue.is_empty() && s.kind == VisitorKind::Human && s.viewed_at > 0 {
                // The visit is over: the last page is read a while, then
                // left (the tab closed).
                let read = log_uniform(&mut self.rng, 2 * SECOND, 2 * MINUTE);
                s.queue.push_back((read, Step::Leave));
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
}
