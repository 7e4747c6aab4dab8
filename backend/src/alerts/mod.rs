//! Alerts: rules from the config file ([`config`]) checked every few
//! seconds against the published tables ([`rules`]), each new alert posted
//! as JSON to its webhooks with retries and logged ([`deliver`]). An alert
//! is keyed by its rule and window, and a key is sent once: at most one
//! alert per rule and window, across restarts too.

pub mod config;
pub mod deliver;
pub mod rules;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use config::{AlertRule, AlertingConfig, Condition};
pub use deliver::Delivery;
pub use rules::Alert;

use crate::clock::Clock;
use crate::metrics::Metrics;

pub struct Alerts {
    rules: Vec<AlertRule>,
    config: AlertingConfig,
    data_dir: PathBuf,
    log: PathBuf,
    sent: HashSet<String>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl Alerts {
    pub fn new(rules: Vec<AlertRule>, config: AlertingConfig, data_dir: PathBuf, metrics: Arc<Metrics>) -> Alerts {
        let log = deliver::log_path(&data_dir);
        let sent = deliver::sent_keys(&log);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Alerts { rules, config, data_dir, log, sent, client, metrics }
    }

    /// Checks every rule at `now`, sends the alerts not sent before (to
    /// all their webhooks at once) and returns them with how each
    /// delivery ended.
    pub async fn check(&mut self, now: i64) -> Vec<(Alert, Vec<Delivery>)> {
        let (rules, data_dir) = (self.rules.clone(), self.data_dir.clone());
        let checked = tokio::task::spawn_blocking(move || {
            rules.iter().map(|rule| (rule.clone(), rules::check(rule, &data_dir, now))).collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut pending = Vec::new();
        for (rule, result) in checked {
            match result {
                Ok(alerts) => {
                    for alert in alerts {
                        // Marked before it is sent: a failed delivery is
                        // retried within its attempts, never twice over.
                        if !self.sent.insert(alert.key.clone()) {
                            continue;
                        }
                        let body = alert.body();
                        let posts: Vec<_> = rule
                            .webhooks
                            .iter()
                            .map(|hook| {
                                let (client, hook, body, config) = (self.client.clone(), hook.clone(), body.clone(), self.config.clone());
                                tokio::spawn(async move { deliver::post(&client, &hook, &body, &config).await })
                            })
                            .collect();
                        pending.push((alert, posts));
                    }
                }
                Err(e) => tracing::warn!(rule = %rule.name, error = %e, "could not check the alert rule; trying again at the next check"),
            }
        }
        let mut done = Vec::new();
        for (alert, posts) in pending {
            let mut deliveries = Vec::new();
            for post in posts {
                if let Ok(d) = post.await {
                    deliveries.push(d);
                }
            }
            for d in &deliveries {
                if d.delivered {
                    tracing::info!(rule = %alert.rule, key = %alert.key, webhook = %d.webhook, attempts = d.attempts, "alert sent");
                } else {
                    self.metrics.alert_delivery_failed();
                    tracing::warn!(rule = %alert.rule, key = %alert.key, webhook = %d.webhook, attempts = d.attempts, error = ?d.error, "alert not delivered; giving up");
                }
            }
            self.metrics.alert_fired(&alert.rule);
            if let Err(e) = deliver::record(&self.log, now, &alert, &deliveries) {
                tracing::warn!(log = %self.log.display(), error = %e, "could not write the alert log");
            }
            done.push((alert, deliveries));
        }
        done
    }

    /// Checks every `check_seconds` until `stop` turns true.
    pub async fn run(mut self, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_secs(self.config.check_seconds.max(1));
        tracing::info!(rules = self.rules.len(), log = %self.log.display(), "alerts on");
        loop {
            self.check(clock.now_ms()).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
