//! The shop journey of a human visitor: what they do next on each kind of
//! page (browse, search, cart, sign in, checkout, purchase), with think times.

use rand::Rng;

use super::pages::{
    capitalize, cart_page, category_page, checkout_page, home_page, page, product_page, search_page, url, Page,
    PageKind,
};
use super::sessions::Session;
use super::{log_uniform, pick_one, Traffic, MINUTE, SECOND};
use crate::generate::catalog::{self, pick, Product, SEARCHES};

pub(super) enum Step {
    /// Navigate and fire `page_view`; an explicit referrer marks a landing.
    View(Page, Option<String>),
    Click {
        tag: &'static str,
        text: String,
        href: Option<String>,
    },
    Search(&'static str),
    Add(&'static Product, u32),
    Remove(&'static Product, u32),
    BeginCheckout {
        cents: u64,
    },
    PurchaseLine {
        order_id: String,
        product: &'static Product,
        quantity: u32,
    },
    Identify,
    Custom(&'static str),
    /// The end of the visit: the page the visitor is on is left.
    Leave,
}

impl Traffic {
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

    pub(super) fn plan_human(&mut self, s: &mut Session) {
        s.steps += 1;
        // Fatigue: every step makes leaving a little likelier.
        let fatigue = (f64::from(s.steps) * 0.012).min(0.5);
        if s.steps > 45 || self.rng.gen_bool(fatigue) {
            return;
        }
        let r: f64 = self.rng.gen();
        let (logged_in, has_account) =
            self.visitors.get(&s.visitor).map_or((false, false), |v| (v.logged_in, v.account.is_some()));
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
                } else if r < 0.69 {
                    // The shop's social profile: an outbound link, and gone.
                    let profile = ["https://www.instagram.com/shop.example", "https://www.pinterest.com/shopexample/"]
                        [usize::from(r >= 0.675)];
                    let think = self.think();
                    s.queue.push_back((
                        think,
                        Step::Click { tag: "a", text: "Follow us".into(), href: Some(profile.into()) },
                    ));
                    s.steps = u32::MAX / 2;
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
                } else if r < 0.55 {
                    // The category's size guide, a file download; the visit goes on.
                    let think = self.think();
                    let guide = url(&format!("/files/size-guide-{}.pdf", p.category));
                    s.queue.push_back((
                        think,
                        Step::Click { tag: "a", text: "Size guide (PDF)".into(), href: Some(guide) },
                    ));
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
                    s.queue.push_back((
                        think,
                        Step::Click { tag: "button", text: "Checkout".into(), href: Some(url("/checkout")) },
                    ));
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
                    s.queue.push_back((
                        delay,
                        Step::View(page(PageKind::ThankYou, "/thank-you", "Thank you | Shop Example"), None),
                    ));
                    let order_id = format!("o-{:012x}", self.rng.gen::<u64>() >> 16);
                    for (product, quantity) in std::mem::take(&mut s.cart) {
                        let delay = self.rng.gen_range(5..40);
                        s.queue
                            .push_back((delay, Step::PurchaseLine { order_id: order_id.clone(), product, quantity }));
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

    fn search(&mut self, s: &mut Session) {
        let (q, _) = *pick(&mut self.rng, SEARCHES);
        let think = self.think();
        s.queue.push_back((think, Step::View(search_page(q), None)));
        let delay = self.rng.gen_range(50..400);
        s.queue.push_back((delay, Step::Search(q)));
    }
}

fn cart_cents(cart: &[(&'static Product, u32)]) -> u64 {
    cart.iter().map(|(p, q)| p.cents * u64::from(*q)).sum()
}
