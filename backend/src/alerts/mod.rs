//! Alerts: rules from the config file ([`config`]) checked every few
//! seconds against the published tables ([`rules`]), each new alert posted
//! as JSON to its webhooks with retries and logged ([`deliver`]). An alert
//! is keyed by its rule and window, and a key is handled once: at most one
//! alert per rule and window, across restarts too ([`sent`]). Events come
//! from visitors, so what they control is escaped in the message
//! ([`slack`]) and each rule posts at most so many alerts an hour, the
//! rest summed up ([`limit`]).

pub mod config;
pub mod deliver;
pub mod limit;
pub mod rules;
pub mod sent;
pub mod slack;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

pub use config::{AlertRule, AlertingConfig, Condition};
pub use deliver::Delivery;
pub use rules::Alert;

use crate::api::iso;
use crate::clock::Clock;
use crate::metrics::Metrics;
use clickstream_schema::time::HOUR_MS;
use limit::{Decision, HourlyLimit};
use sent::SentKeys;

/// The `when` of the message summing up the alerts a rule's limit
/// suppressed in an hour.
pub const SUMMARY: &str = "summary";

pub struct Alerts {
    rules: Vec<AlertRule>,
    config: AlertingConfig,
    data_dir: PathBuf,
    log: PathBuf,
    sent: SentKeys,
    limit: HourlyLimit,
    /// How far back keys are remembered and the log is read at start.
    keep_ms: i64,
    /// Whether the log was read: at the first check, which brings the time.
    read_log: bool,
    /// Or why there is none (the deliveries fail with that).
    client: Result<reqwest::Client, String>,
    metrics: Arc<Metrics>,
}

impl Alerts {
    pub fn new(rules: Vec<AlertRule>, config: AlertingConfig, data_dir: PathBuf, metrics: Arc<Metrics>) -> Alerts {
        let log = deliver::log_path(&data_dir);
        // Twice the longest a rule can raise a key again, and never less
        // than two hours, which the rate limit reads back after a restart:
        // room for a late check or a clock that jumps.
        let longest = rules.iter().map(|r| rules::repeats_for_ms(&r.condition)).max().unwrap_or(0);
        let keep_ms = 2 * longest.max(HOUR_MS);
        let client = deliver::client().map_err(|e| {
            tracing::error!(error = %e, "no HTTP client for the alert webhooks; every delivery will fail");
            format!("no HTTP client: {e}")
        });
        Alerts {
            rules,
            config,
            data_dir,
            log,
            sent: SentKeys::new(keep_ms, sent::MAX_KEYS),
            limit: HourlyLimit::default(),
            keep_ms,
            read_log: false,
            client,
            metrics,
        }
    }

    /// Checks every rule at `now`, posts the alerts not handled before (to
    /// all their webhooks at once) as far as each rule's hourly limit
    /// allows, logs the others as suppressed, posts the summary of each
    /// ended hour that suppressed some, and returns what was posted with
    /// how each delivery ended.
    pub async fn check(&mut self, now: i64) -> Vec<(Alert, Vec<Delivery>)> {
        if !self.read_log {
            self.read_log(now);
        }
        self.sent.forget_old(now);
        let (rules, data_dir) = (self.rules.clone(), self.data_dir.clone());
        let checked = tokio::task::spawn_blocking(move || {
            rules.iter().map(|rule| (rule.clone(), rules::check(rule, &data_dir, now))).collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut to_post = Vec::new();
        let mut suppressed = Vec::new();
        for (rule, result) in checked {
            match result {
                Ok(alerts) => {
                    for mut alert in alerts {
                        // Marked before it is sent: a failed delivery is
                        // retried within its attempts, never twice over.
                        if !self.sent.insert(&alert.key, now) {
                            continue;
                        }
                        match self.limit.decide(&rule.name, rule.max_notifications_per_hour, now) {
                            Decision::Post { last } => {
                                if last {
                                    alert.text.push_str(&format!(
                                        "; the limit of {} alert(s) an hour is reached: more are counted and summed up when the hour ends",
                                        rule.max_notifications_per_hour
                                    ));
                                }
                                to_post.push((alert, rule.webhooks.clone()));
                            }
                            Decision::Suppress => suppressed.push(alert),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(rule = %rule.name, error = %e, "could not check the alert rule; trying again at the next check");
                }
            }
            for (hour, count) in self.limit.ended_hours(&rule.name, now) {
                let summary = summary(&rule, hour, count);
                if self.sent.insert(&summary.key, now) {
                    to_post.push((summary, rule.webhooks.clone()));
                }
            }
        }
        if !suppressed.is_empty() {
            tracing::warn!(alerts = suppressed.len(), "alerts over their rule's hourly limit; logged, not posted");
        }
        for alert in &suppressed {
            self.metrics.alert_suppressed(&alert.rule);
        }
        if let Err(e) = deliver::record_suppressed(&self.log, now, &suppressed) {
            tracing::warn!(log = %self.log.display(), error = %e, "could not write the alert log");
        }
        let pending: Vec<_> = to_post
            .into_iter()
            .map(|(alert, webhooks)| {
                let body = alert.body();
                let posts: Vec<_> = webhooks
                    .into_iter()
                    .map(|hook| {
                        let (client, body, config) = (self.client.clone(), body.clone(), self.config.clone());
                        tokio::spawn(async move {
                            match client {
                                Ok(client) => deliver::post(&client, &hook, &body, &config).await,
                                Err(why) => Delivery::not_tried(&hook, &why),
                            }
                        })
                    })
                    .collect();
                (alert, posts)
            })
            .collect();
        let mut done = Vec::new();
        for (alert, posts) in pending {
            let mut deliveries = Vec::new();
            for post in posts {
                if let Ok(d) = post.await {
                    deliveries.push(d);
                }
            }
            // `d.webhook` is redacted: the path is the webhook's secret.
            for d in &deliveries {
                if d.delivered {
                    tracing::info!(rule = %alert.rule, key = %alert.key, webhook = %d.webhook, attempts = d.attempts, "alert sent");
                } else {
                    self.metrics.alert_delivery_failed();
                    tracing::warn!(rule = %alert.rule, key = %alert.key, webhook = %d.webhook, attempts = d.attempts, error = ?d.error, "alert not delivered; giving up");
                }
            }
            if alert.when != SUMMARY {
                self.metrics.alert_fired(&alert.rule);
            }
            if let Err(e) = deliver::record(&self.log, now, &alert, &deliveries) {
                tracing::warn!(log = %self.log.display(), error = %e, "could not write the alert log");
            }
            done.push((alert, deliveries));
        }
        done
    }

    /// Reads back the recent part of the log: the keys handled, and what
    /// each rule posted and suppressed, so a restart neither sends again
    /// nor starts its rate limits afresh.
    fn read_log(&mut self, now: i64) {
        self.read_log = true;
        for entry in deliver::entries_since(&self.log, now - self.keep_ms) {
            // One line per webhook: the first of a key counts.
            if !self.sent.insert(&entry.key, entry.at)
                || entry.when == SUMMARY
                || !self.rules.iter().any(|r| r.name == entry.rule)
            {
                continue;
            }
            if entry.outcome == deliver::SUPPRESSED {
                self.limit.suppressed(&entry.rule, entry.at);
            } else {
                self.limit.posted(&entry.rule, entry.at);
            }
        }
    }

    /// Checks every `check_seconds` until `stop` turns true.
    pub async fn run(mut self, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_secs(self.config.check_seconds.max(1));
        tracing::info!(rules = self.rules.len(), log = %self.log.display(), "alerts on");
        loop {
            self.check(clock.now_ms()).await;
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// The one message for the alerts of `rule` its limit suppressed in the
/// hour from `hour`.
fn summary(rule: &AlertRule, hour: i64, count: u64) -> Alert {
    Alert {
        rule: rule.name.clone(),
        when: SUMMARY,
        key: format!("{}|{SUMMARY}|{}", rule.name, iso(hour)),
        text: format!(
            "{count} more alert(s) of \"{}\" were suppressed in the hour from {} to {}, over its limit of {} an hour; each is in the alert log",
            rule.name,
            iso(hour),
            iso(hour + HOUR_MS),
            rule.max_notifications_per_hour
        ),
        details: json!({
            "suppressed": count,
            "hour_start": iso(hour),
            "condition": rule.condition.name(),
            "max_notifications_per_hour": rule.max_notifications_per_hour,
        }),
    }
}
