//! Posting alerts to their webhooks, with retries, and the log of what was
//! done with each alert (`DATA_DIR/_state/alerts.log`, one JSON object per
//! line), which is also how a restarted server knows what it already sent
//! and how much of each rule's hourly limit it used.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::config::AlertingConfig;
use super::rules::Alert;
use crate::api::iso;

/// Where the alert log lives in a data directory.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("_state/alerts.log")
}

/// A webhook as logs show it: scheme, host and port only. The path and
/// query are the secret (Slack's `/services/T…/B…/…` lets anyone post to
/// the channel), and so is a user and password in the URL.
pub fn redact_webhook(webhook: &str) -> String {
    let Ok(url) = reqwest::Url::parse(webhook) else { return "(not a URL)".into() };
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}/…", url.scheme()),
        (Some(host), None) => format!("{}://{host}/…", url.scheme()),
        (None, _) => format!("{}:…", url.scheme()),
    }
}

/// The client alerts are posted with. Redirects are not followed: a
/// webhook that redirects is misconfigured or hijacked, and following it
/// would send the alert (and its data) to a place nobody configured.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).redirect(reqwest::redirect::Policy::none()).build()
}

/// How one webhook's delivery ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The webhook, redacted ([`redact_webhook`]): deliveries are logged.
    pub webhook: String,
    pub delivered: bool,
    pub attempts: u32,
    /// The last HTTP status, if the receiver answered.
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl Delivery {
    /// A delivery that did not start (no HTTP client).
    pub fn not_tried(webhook: &str, why: &str) -> Delivery {
        Delivery {
            webhook: redact_webhook(webhook),
            delivered: false,
            attempts: 0,
            status: None,
            error: Some(why.to_string()),
        }
    }
}

/// Posts the alert to one webhook: retried on network errors, 429 and 5xx
/// with doubling waits; any other answer is final, a redirect too.
pub async fn post(client: &reqwest::Client, webhook: &str, body: &Value, config: &AlertingConfig) -> Delivery {
    let mut delivery =
        Delivery { webhook: redact_webhook(webhook), delivered: false, attempts: 0, status: None, error: None };
    let mut wait = Duration::from_millis(config.backoff_ms);
    while delivery.attempts < config.attempts.max(1) {
        if delivery.attempts > 0 {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        delivery.attempts += 1;
        match client.post(webhook).json(body).send().await {
            Ok(response) => {
                let status = response.status();
                delivery.status = Some(status.as_u16());
                if status.is_success() {
                    delivery.delivered = true;
                    delivery.error = None;
                    return delivery;
                }
                delivery.error = Some(if status.is_redirection() {
                    format!("answered {status}; redirects are not followed")
                } else {
                    format!("answered {status}")
                });
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return delivery;
                }
            }
            Err(e) => delivery.error = Some(format!("unreachable: {}", without_secret(e, webhook))),
        }
    }
    delivery
}

/// A request error and its causes, without the webhook's secret: reqwest
/// names the whole URL in its message.
fn without_secret(e: reqwest::Error, webhook: &str) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    // In case a cause names it after all.
    let mut secrets = vec![webhook.to_string()];
    if let Ok(url) = reqwest::Url::parse(webhook) {
        secrets.extend([url.path().to_string(), url.query().unwrap_or_default().to_string()]);
    }
    for secret in secrets.iter().filter(|s| s.len() > 1) {
        text = text.replace(secret.as_str(), "…");
    }
    text
}

/// Appends one line per delivery of a posted alert to the log.
pub fn record(log: &Path, now: i64, alert: &Alert, deliveries: &[Delivery]) -> std::io::Result<()> {
    append(
        log,
        deliveries.iter().map(|d| {
            json!({
                "at": iso(now),
                "rule": alert.rule,
                "when": alert.when,
                "key": alert.key,
                "webhook": d.webhook,
                "outcome": if d.delivered { "sent" } else { "failed" },
                "attempts": d.attempts,
                "status": d.status,
                "error": d.error,
                "text": alert.text,
            })
        }),
    )
}

/// Appends one line per alert suppressed by its rule's rate limit, with
/// one sync for them all (a flood suppresses thousands at once).
pub fn record_suppressed(log: &Path, now: i64, alerts: &[Alert]) -> std::io::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    append(
        log,
        alerts.iter().map(|alert| {
            json!({
                "at": iso(now),
                "rule": alert.rule,
                "when": alert.when,
                "key": alert.key,
                "outcome": SUPPRESSED,
                "text": alert.text,
            })
        }),
    )
}

/// The `outcome` of an alert suppressed by its rule's rate limit.
pub const SUPPRESSED: &str = "suppressed";

fn append(log: &Path, entries: impl Iterator<Item = Value>) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut out = std::io::BufWriter::new(file);
    for entry in entries {
        writeln!(out, "{entry}")?;
    }
    out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_data()
}

/// One line of the alert log, as far as a restart needs it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LogEntry {
    /// ms; written as an ISO time.
    #[serde(deserialize_with = "from_iso")]
    pub at: i64,
    pub rule: String,
    pub when: String,
    pub key: String,
    /// `sent`, `failed` or `suppressed`.
    pub outcome: String,
}

/// The log's entries written at `since` or later, in the order written.
/// The log is read a line at a time, so a long history costs reading time
/// at start, not memory.
pub fn entries_since(log: &Path, since: i64) -> Vec<LogEntry> {
    let Ok(file) = std::fs::File::open(log) else { return Vec::new() };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<LogEntry>(&line).ok())
        .filter(|entry| entry.at >= since)
        .collect()
}

fn from_iso<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = String::deserialize(d)?;
    parse_iso(&text).ok_or_else(|| serde::de::Error::custom(format!("not an ISO time: {text:?}")))
}

/// The inverse of [`iso`]: `2026-11-22T09:30:00Z` to ms.
fn parse_iso(text: &str) -> Option<i64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let mut t = time.splitn(3, ':');
    let (h, min, s): (i64, i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    let days = clickstream_schema::time::days_from_civil(y, m, day);
    Some(days * clickstream_schema::time::DAY_MS + ((h * 60 + min) * 60 + s) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_webhook_hides_its_secret() {
        let slack = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
        assert_eq!(redact_webhook(slack), "https://hooks.slack.com/…");
        assert_eq!(redact_webhook("http://user:pw@127.0.0.1:9000/hook?token=SECRET#x"), "http://127.0.0.1:9000/…");
        for hook in [slack, "http://user:pw@127.0.0.1:9000/hook?token=SECRET", "not a url SECRET"] {
            let shown = redact_webhook(hook);
            for secret in ["SECRET", "T000", "services", "token", "user", "pw"] {
                assert!(!shown.contains(secret), "{hook} shown as {shown}");
            }
        }
    }

    #[test]
    fn iso_times_read_back() {
        for ms in [0, 1_795_305_600_000, 1_795_305_600_000 + 9 * 3_600_000 + 30 * 60_000 + 59_000, 951_868_799_000] {
            assert_eq!(parse_iso(&iso(ms)), Some(ms), "{}", iso(ms));
        }
        for bad in
            ["", "2026-11-22", "2026-11-22T09:30:00", "2026-13-22T09:30:00Z", "2026-11-22T24:00:00Z", "x-y-zTa:b:cZ"]
        {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }
}
