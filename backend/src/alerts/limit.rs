//! The per-rule limit on notifications. Events come from visitors, so an
//! attacker can make a rule fire as often as they like (a purchase flood of
//! distinct orders); the limit keeps that from becoming webhook spam. At
//! most `max_notifications_per_hour` alerts of a rule are posted in any 60
//! minutes; the others are suppressed (logged, not posted) and counted by
//! clock hour, and each hour that suppressed some is summed up in one
//! message once it has ended.

use std::collections::{BTreeMap, HashMap, VecDeque};

use clickstream_schema::time::HOUR_MS;

/// What to do with one new alert of a rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Post it; `last` when it is the last one the limit allows for now.
    Post { last: bool },
    /// Suppress it: log it and count it for the hour's summary.
    Suppress,
}

/// The notifications of every rule, by rule name.
#[derive(Default)]
pub struct HourlyLimit {
    rules: HashMap<String, RuleCount>,
}

#[derive(Default)]
struct RuleCount {
    /// When its alerts were posted, oldest first, within the last hour
    /// (older ones are dropped as the hour moves on).
    posted: VecDeque<i64>,
    /// Alerts suppressed, by the start of the clock hour they were in.
    suppressed: BTreeMap<i64, u64>,
}

impl HourlyLimit {
    /// Decides about a new alert of `rule` at `now`, and counts it.
    pub fn decide(&mut self, rule: &str, max_per_hour: u32, now: i64) -> Decision {
        let count = self.rules.entry(rule.to_string()).or_default();
        while count.posted.front().is_some_and(|at| *at <= now - HOUR_MS) {
            count.posted.pop_front();
        }
        if count.posted.len() < max_per_hour as usize {
            count.posted.push_back(now);
            Decision::Post { last: count.posted.len() == max_per_hour as usize }
        } else {
            *count.suppressed.entry(hour_of(now)).or_default() += 1;
            Decision::Suppress
        }
    }

    /// Counts an alert the log says was posted at `at` (read back after a
    /// restart, so the limit holds across restarts too).
    pub fn posted(&mut self, rule: &str, at: i64) {
        self.rules.entry(rule.to_string()).or_default().posted.push_back(at);
    }

    /// Counts an alert the log says was suppressed at `at`.
    pub fn suppressed(&mut self, rule: &str, at: i64) {
        *self.rules.entry(rule.to_string()).or_default().suppressed.entry(hour_of(at)).or_default() += 1;
    }

    /// The hours that ended by `now` and suppressed alerts of `rule`, each
    /// with how many: taken, so each hour is summed up once.
    pub fn ended_hours(&mut self, rule: &str, now: i64) -> Vec<(i64, u64)> {
        let Some(count) = self.rules.get_mut(rule) else { return Vec::new() };
        let current = count.suppressed.split_off(&hour_of(now));
        std::mem::replace(&mut count.suppressed, current).into_iter().collect()
    }
}

/// The start of the clock hour `at` is in.
pub fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR_MS) * HOUR_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MS;
    const M: i64 = 60_000;

    #[test]
    fn at_most_the_limit_is_posted_in_any_sixty_minutes() {
        let mut limit = HourlyLimit::default();
        let t = 100 * H + 50 * M; // 10 minutes before the clock hour ends
        assert_eq!(limit.decide("r", 2, t), Decision::Post { last: false });
        assert_eq!(limit.decide("r", 2, t + M), Decision::Post { last: true });
        assert_eq!(limit.decide("r", 2, t + 2 * M), Decision::Suppress);
        // A new clock hour does not reset the limit: it is the last 60
        // minutes that count.
        assert_eq!(limit.decide("r", 2, t + 15 * M), Decision::Suppress);
        assert_eq!(limit.decide("r", 2, t + H - 1), Decision::Suppress);
        assert_eq!(
            limit.decide("r", 2, t + H),
            Decision::Post { last: true },
            "the first post is 60 minutes old: room for one"
        );
        assert_eq!(limit.decide("r", 2, t + H + 1), Decision::Suppress);
        // Each rule has its own count.
        assert_eq!(limit.decide("other", 2, t + 2 * M), Decision::Post { last: false });
    }

    #[test]
    fn each_ended_hour_is_summed_up_once() {
        let mut limit = HourlyLimit::default();
        let t = 100 * H;
        assert_eq!(limit.decide("r", 1, t + 30 * M), Decision::Post { last: true });
        for i in 1..=3 {
            assert_eq!(limit.decide("r", 1, t + 30 * M + i * M), Decision::Suppress);
        }
        assert!(limit.ended_hours("r", t + 59 * M).is_empty(), "the hour has not ended");
        assert_eq!(limit.decide("r", 1, t + H + M), Decision::Suppress, "the :30 post is still within 60 minutes");
        assert_eq!(limit.ended_hours("r", t + H + M), [(t, 3)], "only the hour that ended");
        assert!(limit.ended_hours("r", t + H + 2 * M).is_empty(), "taken once");
        assert_eq!(limit.ended_hours("r", t + 2 * H), [(t + H, 1)]);
        assert!(limit.ended_hours("unknown", t + 2 * H).is_empty());
    }

    #[test]
    fn the_log_read_back_counts_as_posted_and_suppressed() {
        let mut limit = HourlyLimit::default();
        let t = 100 * H;
        limit.posted("r", t);
        limit.posted("r", t + M);
        limit.suppressed("r", t + 2 * M);
        assert_eq!(
            limit.decide("r", 2, t + 3 * M),
            Decision::Suppress,
            "two posted in the last hour before the restart"
        );
        assert_eq!(limit.ended_hours("r", t + H), [(t, 2)]);
    }
}
