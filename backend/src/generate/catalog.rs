//! The fixed world the generator draws from: the shop's catalog, search
//! terms, traffic sources, user agents and countries. Static tables, so a
//! seed always means the same shop.

use rand::Rng;

pub const SHOP_ORIGIN: &str = "https://shop.example";
pub const CURRENCY: &str = "EUR";

pub const CATEGORIES: [&str; 6] = ["shoes", "apparel", "electronics", "home", "beauty", "sports"];

#[derive(Debug)]
pub struct Product {
    /// Numeric id: the page is `/p/<n>`, the product id `p-<n>`.
    pub n: u32,
    pub name: &'static str,
    pub category: &'static str,
    /// Price in cents, so revenue = price × quantity is exact.
    pub cents: u64,
}

impl Product {
    pub fn id(&self) -> String {
        format!("p-{}", self.n)
    }
    pub fn price(&self) -> f64 {
        self.cents as f64 / 100.0
    }
}

macro_rules! products {
    ($(($n:expr, $name:expr, $cat:expr, $cents:expr)),* $(,)?) => {
        &[$(Product { n: $n, name: $name, category: $cat, cents: $cents }),*]
    };
}

pub static PRODUCTS: &[Product] = products![
    (1, "Trail Runner 2", "shoes", 8990),
    (2, "City Sneaker", "shoes", 5990),
    (3, "Leather Chelsea Boot", "shoes", 12900),
    (4, "Canvas Low-Top", "shoes", 3990),
    (5, "Hiking Boot GTX", "shoes", 15990),
    (6, "Slide Sandal", "shoes", 2490),
    (7, "Road Racer Carbon", "shoes", 17990),
    (11, "Organic Cotton T-Shirt", "apparel", 1990),
    (12, "Merino Hoodie", "apparel", 8990),
    (13, "Rain Jacket", "apparel", 11990),
    (14, "Slim Chino", "apparel", 5990),
    (15, "Denim Jacket", "apparel", 7990),
    (16, "Wool Beanie", "apparel", 1990),
    (17, "Linen Shirt", "apparel", 4990),
    (21, "Wireless Headphones", "electronics", 14990),
    (22, "Bluetooth Speaker", "electronics", 6990),
    (23, "USB-C Charger 65W", "electronics", 3990),
    (24, "Smart Watch S", "electronics", 24900),
    (25, "E-Reader Paperlight", "electronics", 12990),
    (26, "Action Camera 4K", "electronics", 29900),
    (27, "Power Bank 20000", "electronics", 3490),
    (31, "Pour-Over Coffee Set", "home", 3990),
    (32, "Cast Iron Skillet", "home", 4490),
    (33, "Linen Bed Sheets", "home", 8990),
    (34, "Scented Candle Trio", "home", 2990),
    (35, "Desk Lamp Arc", "home", 6990),
    (36, "Ceramic Plant Pot", "home", 1890),
    (41, "Vitamin C Serum", "beauty", 2490),
    (42, "Daily Moisturizer", "beauty", 1990),
    (43, "Bamboo Toothbrush 4-Pack", "beauty", 990),
    (44, "Hair Dryer Compact", "beauty", 5990),
    (45, "Mineral Sunscreen SPF50", "beauty", 1690),
    (51, "Yoga Mat Pro", "sports", 4990),
    (52, "Adjustable Dumbbells", "sports", 19990),
    (53, "Insulated Bottle 750ml", "sports", 2490),
    (54, "Resistance Bands Set", "sports", 1990),
    (55, "Cycling Helmet", "sports", 7990),
    (56, "Running Belt", "sports", 1490),
    (57, "Tennis Racket Team", "sports", 9990),
];

pub fn products_in(category: &str) -> impl Iterator<Item = &'static Product> + '_ {
    PRODUCTS.iter().filter(move |p| p.category == category)
}

/// Search terms and the category whose products the results page lists.
pub static SEARCHES: &[(&str, &str)] = &[
    ("running shoes", "shoes"),
    ("boots", "shoes"),
    ("sneakers", "shoes"),
    ("hoodie", "apparel"),
    ("rain jacket", "apparel"),
    ("t-shirt", "apparel"),
    ("headphones", "electronics"),
    ("charger", "electronics"),
    ("smart watch", "electronics"),
    ("coffee", "home"),
    ("lamp", "home"),
    ("bed sheets", "home"),
    ("serum", "beauty"),
    ("sunscreen", "beauty"),
    ("yoga mat", "sports"),
    ("dumbbells", "sports"),
    ("bottle", "sports"),
    ("gift ideas", "home"),
];

/// Custom events the demo shop fires through the tracker's `track` API.
pub static CUSTOM_EVENTS: &[&str] =
    &["newsletter_signup", "filter_used", "image_zoom", "size_guide_opened", "video_play", "wishlist_add"];

/// The catalog as a JavaScript module, for the demo shop's pages
/// (`GET /demo/catalog.js`): real visitors then browse the same products,
/// at the same prices and URLs, as the synthetic ones.
pub fn shop_module() -> String {
    let products: Vec<_> = PRODUCTS
        .iter()
        .map(
            |p| serde_json::json!({"n": p.n, "id": p.id(), "name": p.name, "category": p.category, "price": p.price()}),
        )
        .collect();
    let searches: Vec<_> = SEARCHES.iter().map(|(term, category)| serde_json::json!([term, category])).collect();
    format!(
        "// The demo shop's catalog, from the traffic generator (backend/src/generate/catalog.rs).\n\
         export const CURRENCY = {};\nexport const CATEGORIES = {};\nexport const PRODUCTS = {};\nexport const SEARCHES = {};\n",
        serde_json::json!(CURRENCY),
        serde_json::json!(CATEGORIES),
        serde_json::Value::Array(products),
        serde_json::Value::Array(searches),
    )
}

/// Where a visit comes from. UTM parameters and click ids go on the
/// landing URL only.
#[derive(Clone, Debug)]
pub struct Source {
    pub referrer: &'static str,
    /// `(utm_source, utm_medium, utm_campaign)`; campaign may be empty.
    pub utm: Option<(&'static str, &'static str, &'static str)>,
    /// An ad platform's click id parameter (`gclid`, `fbclid`).
    pub click_id: Option<&'static str>,
}

/// Draws a traffic source with a realistic mix for a small shop: search
/// engines, social networks (tagged and not), newsletters and webmail,
/// paid search and social (tagged, or by click id only), referring sites,
/// an affiliate, and direct visits, so every channel of `sources_1h` has
/// sessions.
pub fn pick_source<R: Rng>(rng: &mut R) -> Source {
    let plain = |referrer| Source { referrer, utm: None, click_id: None };
    let roll = rng.gen_range(0..100);
    match roll {
        // Organic search.
        0..=24 => plain(*pick(
            rng,
            &["https://www.google.com/", "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"],
        )),
        // Social links without tags.
        25..=29 => plain(*pick(rng, &["https://t.co/", "https://www.reddit.com/", "https://news.ycombinator.com/"])),
        // Social, tagged by the shop's social posts.
        30..=44 => {
            let (src, referrer) = *pick(
                rng,
                &[
                    ("facebook", "https://l.facebook.com/"),
                    ("instagram", "https://l.instagram.com/"),
                    ("tiktok", "https://www.tiktok.com/"),
                ],
            );
            let campaign = *pick(rng, &["", "spring_drop", "creator_collab"]);
            Source { referrer, utm: Some((src, "social", campaign)), click_id: None }
        }
        // Newsletter: mail clients send no referrer.
        45..=51 => Source {
            referrer: "",
            utm: Some(("newsletter", "email", *pick(rng, &["weekly_picks", "summer_sale", "back_in_stock"]))),
            click_id: None,
        },
        // A link in a webmail, untagged.
        52..=54 => plain(*pick(rng, &["https://mail.google.com/", "https://outlook.live.com/"])),
        // Paid search, tagged.
        55..=59 => Source {
            referrer: "https://www.google.com/",
            utm: Some(("google", "cpc", *pick(rng, &["brand", "shoes_generic", "electronics_deals"]))),
            click_id: None,
        },
        // Paid search and paid social by auto-tagging: a click id only.
        60..=62 => Source { referrer: "https://www.google.com/", utm: None, click_id: Some("gclid") },
        63..=64 => Source { referrer: "https://l.facebook.com/", utm: None, click_id: Some("fbclid") },
        // Other sites linking to the shop.
        65..=67 => {
            plain(*pick(rng, &["https://blog.example.org/best-running-shoes", "https://forum.example.net/t/42"]))
        }
        // An affiliate partner.
        68 => Source {
            referrer: "https://deals.example.com/",
            utm: Some(("deals_site", "affiliate", "")),
            click_id: None,
        },
        // Direct / bookmarks.
        _ => plain(""),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
}

/// A browser user agent with how common it is (weights sum to 100).
pub struct BrowserUa {
    pub ua: &'static str,
    pub device: Device,
    pub weight: u32,
}

pub static BROWSER_UAS: &[BrowserUa] = &[
    BrowserUa { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", device: Device::Desktop, weight: 22 },
    BrowserUa { ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", device: Device::Desktop, weight: 8 },
    BrowserUa { ua: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", device: Device::Desktop, weight: 2 },
    BrowserUa { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", device: Device::Desktop, weight: 6 },
    BrowserUa { ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", device: Device::Desktop, weight: 4 },
    BrowserUa { ua: "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", device: Device::Desktop, weight: 2 },
    BrowserUa { ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", device: Device::Desktop, weight: 6 },
    BrowserUa { ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", device: Device::Mobile, weight: 18 },
    BrowserUa { ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", device: Device::Mobile, weight: 3 },
    BrowserUa { ua: "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", device: Device::Mobile, weight: 17 },
    BrowserUa { ua: "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", device: Device::Mobile, weight: 5 },
    BrowserUa { ua: "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", device: Device::Mobile, weight: 1 },
    BrowserUa { ua: "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", device: Device::Tablet, weight: 4 },
    BrowserUa { ua: "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", device: Device::Tablet, weight: 2 },
];

/// Crawler and automation user agents the edge's bot detection must catch.
pub static BOT_UAS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "python-requests/2.32.3",
];

pub fn screens(device: Device) -> &'static [&'static str] {
    match device {
        Device::Desktop => &["1920x1080", "1536x864", "1366x768", "2560x1440", "1440x900"],
        Device::Mobile => &["390x844", "393x873", "412x915", "375x667", "360x800"],
        Device::Tablet => &["820x1180", "768x1024", "800x1280"],
    }
}

/// A visitor country: ISO code (CF-IPCountry), browser language, time zone,
/// and weight (sum 100).
pub struct Country {
    pub code: &'static str,
    pub lang: &'static str,
    pub tz: &'static str,
    pub weight: u32,
}

pub static COUNTRIES: &[Country] = &[
    Country { code: "DE", lang: "de-DE", tz: "Europe/Berlin", weight: 30 },
    Country { code: "FR", lang: "fr-FR", tz: "Europe/Paris", weight: 11 },
    Country { code: "US", lang: "en-US", tz: "America/New_York", weight: 12 },
    Country { code: "GB", lang: "en-GB", tz: "Europe/London", weight: 9 },
    Country { code: "NL", lang: "nl-NL", tz: "Europe/Amsterdam", weight: 7 },
    Country { code: "ES", lang: "es-ES", tz: "Europe/Madrid", weight: 6 },
    Country { code: "IT", lang: "it-IT", tz: "Europe/Rome", weight: 6 },
    Country { code: "PL", lang: "pl-PL", tz: "Europe/Warsaw", weight: 5 },
    Country { code: "SE", lang: "sv-SE", tz: "Europe/Stockholm", weight: 4 },
    Country { code: "AT", lang: "de-AT", tz: "Europe/Vienna", weight: 4 },
    Country { code: "CH", lang: "de-CH", tz: "Europe/Zurich", weight: 3 },
    Country { code: "BE", lang: "nl-BE", tz: "Europe/Brussels", weight: 3 },
];

/// Index into `COUNTRIES`, weighted.
pub fn pick_country<R: Rng>(rng: &mut R) -> usize {
    weighted(rng, COUNTRIES.iter().map(|c| c.weight))
}

/// Index into `BROWSER_UAS`, weighted.
pub fn pick_browser<R: Rng>(rng: &mut R) -> usize {
    weighted(rng, BROWSER_UAS.iter().map(|u| u.weight))
}

/// A client IP from the documentation ranges (RFC 5737 / RFC 3849), so no
/// real address ever appears in test data. A tenth are IPv6.
pub fn pick_ip<R: Rng>(rng: &mut R) -> String {
    if rng.gen_bool(0.1) {
        return format!("2001:db8:{:x}:{:x}::{:x}", rng.gen::<u16>(), rng.gen::<u16>(), rng.gen_range(1..0xffffu32));
    }
    let net = *pick(rng, &["192.0.2", "198.51.100", "203.0.113"]);
    format!("{net}.{}", rng.gen_range(1..=254))
}

pub fn pick<'a, T, R: Rng>(rng: &mut R, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn weighted<R: Rng>(rng: &mut R, weights: impl Iterator<Item = u32> + Clone) -> usize {
    let total: u32 = weights.clone().sum();
    let mut roll = rng.gen_range(0..total);
    for (i, w) in weights.enumerate() {
        if roll < w {
            return i;
        }
        roll -= w;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_shaped_like_a_small_shop() {
        assert!((30..=50).contains(&PRODUCTS.len()));
        for c in CATEGORIES {
            assert!(products_in(c).count() >= 5, "{c}");
        }
        let mut ids: Vec<u32> = PRODUCTS.iter().map(|p| p.n).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), PRODUCTS.len());
        assert!(PRODUCTS.iter().all(|p| CATEGORIES.contains(&p.category) && p.cents > 0));
        assert!(SEARCHES.iter().all(|(_, c)| CATEGORIES.contains(c)));
        assert_eq!(COUNTRIES.iter().map(|c| c.weight).sum::<u32>(), 100);
        assert_eq!(BROWSER_UAS.iter().map(|u| u.weight).sum::<u32>(), 100);
    }
}
