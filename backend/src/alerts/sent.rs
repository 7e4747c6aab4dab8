//! The keys of the alerts already handled (sent, given up on, or
//! suppressed by the rate limit), so that none is handled twice. Each key is kept
//! with the time it was recorded and forgotten once its rule can no longer
//! raise it, so memory follows the rules' lookback, not the whole history;
//! a cap on the count is the backstop against a flood of distinct keys.

use std::collections::{HashMap, VecDeque};

/// At most this many keys are remembered. Past it the oldest are forgotten
/// first: one of them raised again is suppressed by the rule's rate limit
/// like any other alert, so the cap can cost a recount, never a flood.
pub const MAX_KEYS: usize = 100_000;

pub struct SentKeys {
    at: HashMap<String, i64>,
    /// The keys in the order they were recorded, oldest first.
    order: VecDeque<(i64, String)>,
    keep_ms: i64,
    max_keys: usize,
}

impl SentKeys {
    /// Keys are remembered for `keep_ms` after they were recorded, and at
    /// most `max_keys` of them.
    pub fn new(keep_ms: i64, max_keys: usize) -> SentKeys {
        SentKeys { at: HashMap::new(), order: VecDeque::new(), keep_ms, max_keys: max_keys.max(1) }
    }

    /// Records `key` as handled at `at`; false if it already was.
    pub fn insert(&mut self, key: &str, at: i64) -> bool {
        if self.at.contains_key(key) {
            return false;
        }
        self.at.insert(key.to_string(), at);
        self.order.push_back((at, key.to_string()));
        while self.order.len() > self.max_keys {
            self.forget_oldest();
        }
        true
    }

    /// Forgets the keys recorded more than `keep_ms` before `now`.
    pub fn forget_old(&mut self, now: i64) {
        while self.order.front().is_some_and(|(at, _)| *at < now - self.keep_ms) {
            self.forget_oldest();
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.at.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front() {
            self.at.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_handled_once_until_it_is_forgotten() {
        let mut sent = SentKeys::new(1_000, MAX_KEYS);
        assert!(sent.insert("a", 0));
        assert!(!sent.insert("a", 500), "the same key again");
        assert!(sent.insert("b", 600));
        sent.forget_old(1_000);
        assert!(sent.contains("a"), "exactly keep_ms old is still kept");
        sent.forget_old(1_001);
        assert!(!sent.contains("a") && sent.contains("b"));
        assert_eq!(sent.len(), 1);
        assert!(sent.insert("a", 1_001), "forgotten, so new again");
    }

    #[test]
    fn past_the_cap_the_oldest_keys_go_first() {
        let mut sent = SentKeys::new(i64::MAX / 2, 3);
        for (i, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            sent.insert(key, i as i64);
        }
        assert_eq!(sent.len(), 3);
        assert!(!sent.contains("a") && !sent.contains("b"));
        assert!(sent.contains("c") && sent.contains("d") && sent.contains("e"));
        assert_eq!(sent.order.len(), 3, "the order list is bounded too");
    }
}
