//! Synthetic traffic and data directories for benches and tests: batch
//! bodies as a tracker sends them, run through the collect core into a
//! stream, and a day of shop traffic refined into Silver.
//!
//! Unlike `generate`, which simulates visitors, these are cheap and
//! regular, so a bench measures the pipeline and not the fixture.

use std::path::Path;
use std::sync::Arc;

use clickstream_schema::RequestMeta;
use edge_worker::{collect, CollectConfig};

use crate::aggregate::{AggregateConfig, Aggregator};
use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::serve::open_log;
use crate::stream::{records_of, EventStream};

/// A current desktop Chrome: parsed as a browser, never as a bot.
pub const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// An empty directory at `dir`, whatever was there before.
pub fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(dir)
}

/// The request facts of a browser in Germany sending at `now`.
pub fn browser_request(now: i64) -> RequestMeta {
    RequestMeta {
        received_at: now,
        user_agent: Some(CHROME.into()),
        ip: Some("203.0.113.9".into()),
        country: Some("DE".into()),
        ..RequestMeta::default()
    }
}

/// A realistic batch body of `n` events of one visitor.
pub fn synthetic_batch(batch_no: u64, n: usize, now: i64) -> String {
    let visitor = batch_no % 10_000;
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let product = (batch_no * 7 + i as u64) % 48;
        let event = match i % 5 {
            0 | 1 => format!(
                r#"{{"event_id":"b{batch_no}-{i}","event_type":"page_view","ts":{ts},"anonymous_id":"a-{visitor}","session_id":"s-{visitor}","page":{{"url":"https://shop.example/p/{product}?utm_source=newsletter&utm_medium=email","path":"/p/{product}","referrer":"https://www.google.com/","title":"Product {product}"}},"props":{{"product_id":"p-{product}","category":"shoes"}},"context":{{"screen":"1920x1080","lang":"en-US","tz":"Europe/Berlin"}}}}"#,
                ts = now - 1000 + i as i64
            ),
            2 => format!(
                r#"{{"event_id":"b{batch_no}-{i}","event_type":"click","ts":{ts},"anonymous_id":"a-{visitor}","session_id":"s-{visitor}","page":{{"url":"https://shop.example/c/shoes","path":"/c/shoes"}},"props":{{"tag":"a","text":"Running shoe","href":"/p/{product}"}}}}"#,
                ts = now - 1000 + i as i64
            ),
            3 => format!(
                r#"{{"event_id":"b{batch_no}-{i}","event_type":"add_to_cart","ts":{ts},"anonymous_id":"a-{visitor}","session_id":"s-{visitor}","page":{{"url":"https://shop.example/p/{product}","path":"/p/{product}"}},"props":{{"product_id":"p-{product}","category":"shoes","price":59.9,"quantity":1,"currency":"EUR"}}}}"#,
                ts = now - 1000 + i as i64
            ),
            _ => format!(
                r#"{{"event_id":"b{batch_no}-{i}","event_type":"search","ts":{ts},"anonymous_id":"a-{visitor}","session_id":"s-{visitor}","page":{{"url":"https://shop.example/search?q=red","path":"/search"}},"props":{{"query":"red shoes"}}}}"#,
                ts = now - 1000 + i as i64
            ),
        };
        events.push(event);
    }
    format!(r#"{{"v":1,"site_id":"shop-1","sent_at":{now},"events":[{}]}}"#, events.join(","))
}

/// Runs a batch body through the collect core, as the server would, and
/// produces its events to the stream. Synthetic batches must be all valid.
pub async fn collect_into(
    stream: &Arc<dyn EventStream>,
    body: &str,
    meta: &RequestMeta,
    config: &CollectConfig,
) -> anyhow::Result<()> {
    let out = collect(body.as_bytes(), meta, config).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(out.bad_rows.is_empty(), "synthetic events were rejected: {:?}", out.bad_rows.first());
    stream.produce(records_of(&out.accepted, &out.bad_rows)).await?;
    Ok(())
}

/// The shape of a day of shop traffic: event `k` of `total` happens at
/// `start + k * spacing`.
#[derive(Clone, Copy, Debug)]
pub struct ShopDay {
    pub start: i64,
    pub spacing: f64,
    pub total: u64,
}

impl ShopDay {
    /// `total` events spread over the day ending two minutes before `now`.
    pub fn ending_at(now: i64, total: u64) -> ShopDay {
        let day = 24 * 3_600_000;
        ShopDay { start: now - day - 120_000, spacing: day as f64 / total as f64, total }
    }

    /// Events `first..first + n` as one batch body: visits of 20 events
    /// about 30 s apart (ten minutes on the site), as many under way at
    /// once as the event rate needs, by visitors who come back about three
    /// times a day. Each visit walks the same path: page views, a page
    /// left (its engaged time and scroll depth), clicks,
    /// links out and to a file, cart adds, a checkout, a purchase, the
    /// thank-you page, a newsletter signup (a custom event; the demo shop's
    /// goals count the last three).
    pub fn batch(&self, first: u64, n: usize, sent_at: i64) -> String {
        const VISIT: u64 = 20;
        let concurrent = ((30_000.0 / self.spacing).round() as u64).max(1);
        let visitors = (self.total / (3 * VISIT)).max(1);
        let mut events = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let k = first + i;
            let ts = self.start + (k as f64 * self.spacing) as i64;
            let (slot, round) = (k % concurrent, k / concurrent);
            let visit = slot + concurrent * (round / VISIT);
            let visitor = (visit * 7919) % visitors;
            let product = (visit * 31) % 200;
            // A third of the visitors sign in at checkout (identity_map,
            // sessions.user_id).
            let user = if visitor.is_multiple_of(3) && round % VISIT >= 16 {
                format!(r#","user_id":"u{visitor}""#)
            } else {
                String::new()
            };
            let head =
                format!(r#""event_id":"g{k}","ts":{ts},"anonymous_id":"v{visitor}","session_id":"s{visit}"{user}"#);
            // Visits come from every kind of source (sources_1h): search,
            // social, webmail, a blog, direct, a newsletter, a paid click.
            const REFERRERS: [&str; 7] = [
                "https://www.google.com/",
                "",
                "https://t.co/",
                "https://mail.google.com/",
                "https://blog.example.org/",
                "https://www.bing.com/",
                "https://l.facebook.com/",
            ];
            let referrer = REFERRERS[(visit % 7) as usize];
            let query = ["?utm_source=search", "?utm_source=newsletter&utm_medium=email", "?gclid=x", "", ""]
                [(visit % 5) as usize];
            let page = format!(
                r#""page":{{"url":"https://shop.example/p/{product}{query}","path":"/p/{product}","referrer":"{referrer}"}}"#
            );
            let event = match round % VISIT {
                0..=8 => format!(r#"{{{head},"event_type":"page_view",{page},"props":{{"product_id":"p{product}"}}}}"#),
                // The product page left after a while (engagement_1h).
                9 => {
                    let (engaged, depth) = (5_000 + (k * 7_919) % 240_000, (k * 37) % 101);
                    format!(
                        r#"{{{head},"event_type":"page_leave",{page},"props":{{"engaged_ms":{engaged},"scroll_depth":{depth}}}}}"#
                    )
                }
                10 | 11 => {
                    format!(r#"{{{head},"event_type":"click",{page},"props":{{"tag":"button"}}}}"#)
                }
                // A link: to the shop's profile elsewhere (outbound), to a
                // file (a download), or within the shop (link_clicks_1h).
                12 => {
                    let href = [
                        "https://www.instagram.com/shop.example",
                        "https://shop.example/files/size-guide.pdf",
                        "/c/shoes",
                    ][(visit % 3) as usize];
                    format!(r#"{{{head},"event_type":"click",{page},"props":{{"tag":"a","href":"{href}"}}}}"#)
                }
                13..=15 => format!(
                    r#"{{{head},"event_type":"add_to_cart",{page},"props":{{"product_id":"p{product}","price":19.5,"quantity":1,"currency":"EUR"}}}}"#
                ),
                16 => format!(r#"{{{head},"event_type":"begin_checkout",{page}}}"#),
                17 => format!(
                    r#"{{{head},"event_type":"purchase",{page},"props":{{"order_id":"o{k}","product_id":"p{product}","price":19.5,"quantity":2,"revenue":39.0,"currency":"EUR"}}}}"#
                ),
                18 => format!(
                    r#"{{{head},"event_type":"page_view","page":{{"url":"https://shop.example/thank-you","path":"/thank-you"}}}}"#
                ),
                _ => {
                    let placement = if visit.is_multiple_of(2) { "home" } else { "footer" };
                    format!(
                        r#"{{{head},"event_type":"custom",{page},"props":{{"name":"newsletter_signup","placement":"{placement}"}}}}"#
                    )
                }
            };
            events.push(event);
        }
        format!(r#"{{"v":1,"site_id":"shop-1","sent_at":{sent_at},"events":[{}]}}"#, events.join(","))
    }

    /// Events `first..first + n` through the collect core into the stream,
    /// in batches of 500 sent at `now`.
    pub async fn fill(&self, stream: &Arc<dyn EventStream>, first: u64, n: u64, now: i64) -> anyhow::Result<()> {
        let config = CollectConfig::new("bench", "backend");
        let meta = browser_request(now);
        let mut k = first;
        while k < first + n {
            let m = 500usize.min((first + n - k) as usize);
            collect_into(stream, &self.batch(k, m, now), &meta, &config).await?;
            k += m as u64;
        }
        Ok(())
    }
}

/// A data directory holding the first `events` of a day of shop traffic
/// spread for `total`, through the collect core and the embedded log into
/// Silver (Gold off). Returns the log, the clock reading and the day.
pub async fn shop_day_in_silver(
    dir: &Path,
    events: u64,
    total: u64,
) -> anyhow::Result<(Arc<dyn EventStream>, i64, ShopDay)> {
    let stream = open_log(dir, 4)?;
    let now = SystemClock.now_ms();
    let day = ShopDay::ending_at(now, total);
    day.fill(&stream, 0, events, now).await?;
    let config = AggregateConfig { gold: None, ..AggregateConfig::new(dir) };
    let mut agg = Aggregator::open(stream.clone(), config, Arc::new(Metrics::new()), Arc::new(SystemClock)).await?;
    agg.drain().await?;
    Ok((stream, now, day))
}
