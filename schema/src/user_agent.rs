//! User agent → browser, operating system, device type, and bot signatures.
//!
//! A short ordered rule list, written by hand on purpose, rather than a
//! user-agent crate: the product needs only the families analysts segment
//! by, and these rules run in the Cloudflare Worker for every event, where
//! the script's size and each request's CPU time are capped. The parsers on
//! crates.io bring a regex engine and a pattern list (uap-core's has
//! hundreds), compiled at start-up: a larger Worker, and a cold start's CPU
//! spent compiling patterns for families nobody segments by.
//! Order matters because user agents lie by imitation (every Chromium
//! browser says "Safari", Edge says "Chrome").

/// What a user agent says about the visitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAgentInfo {
    pub browser: &'static str,
    pub os: &'static str,
    /// `desktop`, `mobile`, `tablet`, `bot` or `unknown` (no user agent).
    pub device_type: &'static str,
    /// The matched bot signature, if the user agent is a known bot,
    /// crawler, HTTP library or headless browser.
    pub bot: Option<&'static str>,
}

/// Case-insensitive substrings that mark automated clients, with the name
/// reported for them. Checked in order; the first match wins.
const BOT_SIGNATURES: &[(&str, &str)] = &[
    ("googlebot", "Googlebot"),
    ("bingbot", "Bingbot"),
    ("yandexbot", "YandexBot"),
    ("baiduspider", "Baiduspider"),
    ("duckduckbot", "DuckDuckBot"),
    ("applebot", "Applebot"),
    ("ahrefsbot", "AhrefsBot"),
    ("semrushbot", "SemrushBot"),
    ("mj12bot", "MJ12bot"),
    ("petalbot", "PetalBot"),
    ("gptbot", "GPTBot"),
    ("facebookexternalhit", "Facebook crawler"),
    ("slurp", "Yahoo Slurp"),
    ("headlesschrome", "Headless Chrome"),
    ("phantomjs", "PhantomJS"),
    ("puppeteer", "Puppeteer"),
    ("selenium", "Selenium"),
    ("lighthouse", "Lighthouse"),
    ("python-requests", "python-requests"),
    ("python-urllib", "python-urllib"),
    ("aiohttp", "aiohttp"),
    ("go-http-client", "Go HTTP client"),
    ("okhttp", "OkHttp"),
    ("java/", "Java HTTP client"),
    ("curl/", "curl"),
    ("wget/", "Wget"),
    ("scrapy", "Scrapy"),
    ("httpclient", "HTTP client"),
    ("crawler", "crawler"),
    ("spider", "spider"),
    ("bot/", "bot"),
    ("bot;", "bot"),
    ("+http", "bot"),
];

/// Parses a user agent. An absent or empty user agent counts as a bot:
/// every browser sends one.
pub fn parse_user_agent(user_agent: Option<&str>) -> UserAgentInfo {
    let ua = user_agent.unwrap_or("").trim();
    if ua.is_empty() {
        return UserAgentInfo { browser: "Other", os: "Other", device_type: "unknown", bot: Some("no user agent") };
    }
    let lower = ua.to_ascii_lowercase();
    let bot = BOT_SIGNATURES.iter().find(|(needle, _)| lower.contains(needle)).map(|(_, name)| *name);
    let has = |needle: &str| ua.contains(needle);

    let browser = if has("Edg/") || has("EdgA/") || has("EdgiOS/") {
        "Edge"
    } else if has("OPR/") || has("Opera") {
        "Opera"
    } else if has("SamsungBrowser/") {
        "Samsung Internet"
    } else if has("Firefox/") || has("FxiOS/") {
        "Firefox"
    } else if has("HeadlessChrome") {
        "Headless Chrome"
    } else if has("CriOS/") || has("Chrome/") || has("Chromium/") {
        "Chrome"
    } else if has("Safari/") && has("Version/") {
        "Safari"
    } else {
        bot.unwrap_or("Other")
    };

    let os = if has("Windows NT") || has("Windows Phone") {
        "Windows"
    } else if has("iPhone") || has("iPad") || has("iPod") {
        "iOS"
    } else if has("Android") {
        "Android"
    } else if has("CrOS") {
        "ChromeOS"
    } else if has("Mac OS X") || has("Macintosh") {
        "macOS"
    } else if has("Linux") || has("X11") {
        "Linux"
    } else {
        "Other"
    };

    let device_type = if bot.is_some() {
        "bot"
    } else if has("iPad") || has("Tablet") || (has("Android") && !has("Mobile")) {
        "tablet"
    } else if has("Mobi") || has("iPhone") || has("iPod") || has("Android") {
        "mobile"
    } else {
        "desktop"
    };

    UserAgentInfo { browser, os, device_type, bot }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ua: &str) -> (&'static str, &'static str, &'static str, Option<&'static str>) {
        let i = parse_user_agent(Some(ua));
        (i.browser, i.os, i.device_type, i.bot)
    }

    #[test]
    fn desktop_browsers() {
        assert_eq!(
            info("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
            ("Chrome", "Windows", "desktop", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70"),
            ("Edge", "Windows", "desktop", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"),
            ("Safari", "macOS", "desktop", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
            ("Firefox", "Linux", "desktop", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
            ("Chrome", "ChromeOS", "desktop", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0"),
            ("Opera", "Windows", "desktop", None)
        );
    }

    #[test]
    fn phones_and_tablets() {
        assert_eq!(
            info("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"),
            ("Safari", "iOS", "mobile", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"),
            ("Chrome", "iOS", "tablet", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"),
            ("Samsung Internet", "Android", "mobile", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
            ("Chrome", "Android", "tablet", None)
        );
        assert_eq!(
            info("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"),
            ("Firefox", "Android", "mobile", None)
        );
    }

    #[test]
    fn crawlers_headless_browsers_and_libraries_are_bots() {
        assert_eq!(
            info("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
            ("Googlebot", "Other", "bot", Some("Googlebot"))
        );
        assert_eq!(info("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)").3, Some("Bingbot"));
        assert_eq!(info("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)").3, Some("AhrefsBot"));
        let headless = info("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36");
        assert_eq!(headless, ("Headless Chrome", "Linux", "bot", Some("Headless Chrome")));
        assert_eq!(info("python-requests/2.32.3").3, Some("python-requests"));
        assert_eq!(info("curl/8.5.0").3, Some("curl"));
        assert_eq!(info("Go-http-client/1.1").3, Some("Go HTTP client"));
        assert_eq!(info("SomeCrawler 1.0").3, Some("crawler"));
    }

    #[test]
    fn missing_user_agent_is_a_bot() {
        let none = parse_user_agent(None);
        assert_eq!(none.device_type, "unknown");
        assert_eq!(none.bot, Some("no user agent"));
        assert_eq!(parse_user_agent(Some("  ")).bot, Some("no user agent"));
    }

    #[test]
    fn unknown_but_human_user_agent() {
        assert_eq!(info("Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet)"), ("Other", "Other", "desktop", None));
    }
}
