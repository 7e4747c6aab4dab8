//! The shop's pages: where a visit lands (by traffic source) and the
//! pages a visitor or a crawler moves between.

use rand::Rng;

use super::{pick_one, Traffic};
use crate::generate::catalog::{self, pick, Product, Source, CATEGORIES, PRODUCTS, SHOP_ORIGIN};

#[derive(Clone, Debug)]
pub(super) enum PageKind {
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
pub(super) struct Page {
    pub(super) kind: PageKind,
    pub(super) url: String,
    pub(super) path: String,
    pub(super) title: String,
}

impl Traffic {
    pub(super) fn landing_page(&mut self, source: &Source) -> Page {
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
        if let Some(id) = source.click_id {
            p.url.push(if p.url.contains('?') { '&' } else { '?' });
            p.url.push_str(&format!("{id}={:016x}", self.rng.gen::<u64>()));
        }
        p
    }

    pub(super) fn product_page(&mut self) -> Page {
        product_page(pick(&mut self.rng, PRODUCTS))
    }

    pub(super) fn category_page(&mut self, not: Option<&str>) -> Page {
        loop {
            let c = *pick(&mut self.rng, &CATEGORIES);
            if Some(c) != not {
                return category_page(c);
            }
        }
    }

    /// Another product, mostly from the same category.
    pub(super) fn related(&mut self, p: &'static Product) -> Page {
        if self.rng.gen_bool(0.7) {
            let same: Vec<&'static Product> = catalog::products_in(p.category).filter(|q| q.n != p.n).collect();
            product_page(pick_one(&mut self.rng, &same))
        } else {
            self.product_page()
        }
    }

    pub(super) fn any_page(&mut self) -> Page {
        match self.rng.gen_range(0..10) {
            0 => home_page(),
            1..=3 => self.category_page(None),
            _ => self.product_page(),
        }
    }
}

pub(super) fn url(path_and_query: &str) -> String {
    format!("{SHOP_ORIGIN}{path_and_query}")
}

pub(super) fn page(kind: PageKind, path: &str, title: &str) -> Page {
    Page { kind, url: url(path), path: path.to_string(), title: title.to_string() }
}

pub(super) fn home_page() -> Page {
    page(PageKind::Home, "/", "Shop Example – Everyday things, well made")
}

pub(super) fn cart_page() -> Page {
    page(PageKind::Cart, "/cart", "Your cart | Shop Example")
}

pub(super) fn checkout_page() -> Page {
    page(PageKind::Checkout, "/checkout", "Checkout | Shop Example")
}

pub(super) fn category_page(c: &'static str) -> Page {
    page(PageKind::Category(c), &format!("/c/{c}"), &format!("{} | Shop Example", capitalize(c)))
}

pub(super) fn product_page(p: &'static Product) -> Page {
    page(PageKind::Product(p), &format!("/p/{}", p.n), &format!("{} | Shop Example", p.name))
}

pub(super) fn search_page(q: &'static str) -> Page {
    Page {
        kind: PageKind::Search(q),
        url: url(&format!("/search?q={}", q.replace(' ', "+"))),
        path: "/search".to_string(),
        title: format!("Search: {q} | Shop Example"),
    }
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
