//! Bots: crawlers fetching page after page, and burst clients firing more
//! than a human could within a minute.

use rand::Rng;

use super::journey::Step;
use super::sessions::Session;
use super::{pick_one, Traffic};
use crate::generate::catalog::CUSTOM_EVENTS;

impl Traffic {
    pub(super) fn plan_crawler(&mut self, s: &mut Session) {
        if s.remaining == 0 {
            return;
        }
        s.remaining -= 1;
        let delay = self.rng.gen_range(500..4000);
        let page = self.any_page();
        s.queue.push_back((delay, Step::View(page, None)));
    }

    pub(super) fn plan_burst(&mut self, s: &mut Session) {
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
}
