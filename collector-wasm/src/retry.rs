//! Delivery outcomes and backoff. A batch the collector could not take for
//! now (network down, 408, 429, 5xx) is retried with exponential backoff and
//! jitter, never sooner than a `Retry-After` asks; a batch it refused for
//! good (any other 4xx) is dropped, since resending it would fail again.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry,
    Refused,
}

/// What an HTTP status means for a batch; 0 stands for a network error.
pub fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        0 | 408 | 425 | 429 | 500..=599 => Outcome::Retry,
        _ => Outcome::Refused,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// Failures in a row.
    pub attempts: u32,
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { attempts: 0, base_ms: 1_000, max_ms: 5 * 60 * 1000 }
    }
}

impl Backoff {
    /// The wait before the next attempt after one more failure: base × 2^n,
    /// capped, of which the upper half is random (`jitter` in [0, 1)) so
    /// that visitors cut off by one outage do not all come back at once;
    /// and at least what the server asked for.
    pub fn fail(&mut self, jitter: f64, retry_after_ms: Option<u64>) -> u64 {
        let exp = self.base_ms.saturating_mul(1u64 << self.attempts.min(20)).min(self.max_ms);
        self.attempts = self.attempts.saturating_add(1);
        let jittered = exp / 2 + (exp as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as u64;
        // A server may ask for a long pause, but not for longer than an hour.
        jittered.max(retry_after_ms.unwrap_or(0).min(60 * 60 * 1000))
    }

    pub fn succeed(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::both! {
        fn statuses_map_to_outcomes() {
            assert_eq!(outcome(200), Outcome::Delivered);
            assert_eq!(outcome(202), Outcome::Delivered);
            for retry in [0, 408, 429, 500, 502, 503, 504] {
                assert_eq!(outcome(retry), Outcome::Retry, "{retry}");
            }
            for refused in [400, 401, 403, 404, 413, 422] {
                assert_eq!(outcome(refused), Outcome::Refused, "{refused}");
            }
        }

        fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
            let mut b = Backoff::default();
            assert_eq!(b.fail(0.0, None), 500);
            assert_eq!(b.fail(0.0, None), 1_000);
            assert_eq!(b.fail(0.999_999, None), 3_999);
            for _ in 0..30 {
                b.fail(0.5, None);
            }
            assert_eq!(b.fail(1.0, None), 5 * 60 * 1000);
            b.succeed();
            assert_eq!(b.fail(0.0, None), 500);
        }

        fn retry_after_is_a_floor_capped_at_an_hour() {
            let mut b = Backoff::default();
            assert_eq!(b.fail(0.0, Some(30_000)), 30_000);
            assert_eq!(b.fail(0.0, Some(86_400_000)), 3_600_000);
            assert_eq!(b.fail(0.0, Some(1)), 2_000, "a short Retry-After does not shorten the backoff");
        }
    }
}
