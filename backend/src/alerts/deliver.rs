//! Posting alerts to their webhooks, with retries, and the log of what was
//! sent (`DATA_DIR/_state/alerts.log`, one JSON object per line), which is
//! also how a restarted server knows what it already sent.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::config::AlertingConfig;
use super::rules::Alert;
use crate::api::iso;

/// Where the sent log lives in a data directory.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("_state/alerts.log")
}

/// The keys of the alerts the log says were sent (or given up on): none
/// of them is sent again.
pub fn sent_keys(log: &Path) -> HashSet<String> {
    let Ok(text) = std::fs::read_to_string(log) else { return HashSet::new() };
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|entry| entry["key"].as_str().map(str::to_string))
        .collect()
}

/// How one webhook's delivery ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub webhook: String,
    pub delivered: bool,
    pub attempts: u32,
    /// The last HTTP status, if the receiver answered.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// Posts the alert to one webhook: retried on network errors, 429 and 5xx
/// with doubling waits; any other answer is final.
pub async fn post(client: &reqwest::Client, webhook: &str, body: &Value, config: &AlertingConfig) -> Delivery {
    let mut delivery = Delivery { webhook: webhook.to_string(), delivered: false, attempts: 0, status: None, error: None };
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
                delivery.error = Some(format!("answered {status}"));
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return delivery;
                }
            }
            Err(e) => delivery.error = Some(format!("unreachable: {e}")),
        }
    }
    delivery
}

/// Appends one line per delivery to the sent log.
pub fn record(log: &Path, now: i64, alert: &Alert, deliveries: &[Delivery]) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    for d in deliveries {
        let entry = json!({
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
        });
        writeln!(file, "{entry}")?;
    }
    file.sync_data()
}
