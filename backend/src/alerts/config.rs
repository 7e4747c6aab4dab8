//! Alert rules as the config file writes them:
//!
//! ```toml
//! [[alerts]]
//! name = "big order"
//! when = "purchase_over"     # an order whose purchase lines sum above `amount`
//! amount = 500.0
//! webhooks = ["https://hooks.slack.com/services/T000/B000/XXXX"]
//! max_notifications_per_hour = 10   # optional; more are summed up hourly
//!
//! [[alerts]]
//! name = "bots"
//! when = "bot_anomaly"       # a minute with visitors over the bot threshold
//! webhooks = ["http://127.0.0.1:9000/hook"]
//!
//! [[alerts]]
//! name = "rejects spike"
//! when = "rejects_spike"     # more than `count` bad rows in `window_minutes`
//! count = 50
//! window_minutes = 5
//! webhooks = ["http://127.0.0.1:9000/hook"]
//!
//! [[alerts]]
//! name = "traffic drop"
//! when = "traffic_below"     # fewer human events per minute than this,
//! events_per_minute = 10.0   # on average over `window_minutes`
//! window_minutes = 10
//! webhooks = ["http://127.0.0.1:9000/hook"]
//! ```

use serde::Deserialize;

use super::deliver::redact_webhook;

/// One rule: a name (in the message and the dedup key), a condition, and
/// where to post. Read through [`RuleFile`], so that each condition's
/// settings are checked by name: a setting of another condition, or a
/// missing one, is an error at start rather than a rule that never fires.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "RuleFile")]
pub struct AlertRule {
    pub name: String,
    pub condition: Condition,
    /// URLs the alert is POSTed to as JSON (Slack-compatible `text`).
    pub webhooks: Vec<String>,
    /// At most this many alerts of the rule are posted in any 60 minutes;
    /// see [`super::limit`].
    pub max_notifications_per_hour: u32,
}

/// What makes a rule fire, and the window it fires at most once in.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// An order (its purchase lines, by `order_id`) worth more than
    /// `amount`: once per order.
    PurchaseOver { amount: f64 },
    /// Visitors with more events in a minute than the bot threshold: once
    /// per minute.
    BotAnomaly,
    /// More than `count` bad rows arrived in a window of `window_minutes`
    /// (aligned to the clock): once per window.
    RejectsSpike { count: u64, window_minutes: i64 },
    /// Fewer human events per minute than `events_per_minute`, on average
    /// over a window of `window_minutes`: once per window.
    TrafficBelow { events_per_minute: f64, window_minutes: i64 },
}

impl Condition {
    /// The `when` the config file names it by.
    pub fn name(&self) -> &'static str {
        match self {
            Condition::PurchaseOver { .. } => "purchase_over",
            Condition::BotAnomaly => "bot_anomaly",
            Condition::RejectsSpike { .. } => "rejects_spike",
            Condition::TrafficBelow { .. } => "traffic_below",
        }
    }
}

/// A rule as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    name: String,
    /// `purchase_over`, `bot_anomaly`, `rejects_spike` or `traffic_below`.
    when: String,
    webhooks: Vec<String>,
    /// At most this many alerts of the rule are posted in any 60 minutes;
    /// the others are logged as suppressed and counted, and one message per
    /// clock hour that suppressed some says how many. Visitors can make a
    /// rule fire (a flood of orders), so this keeps them from spamming the
    /// channel. 1 or more; default 10.
    #[serde(default = "default_max_notifications_per_hour")]
    max_notifications_per_hour: u32,
    amount: Option<f64>,
    count: Option<u64>,
    events_per_minute: Option<f64>,
    /// Default 5.
    window_minutes: Option<i64>,
}

impl TryFrom<RuleFile> for AlertRule {
    type Error = String;

    fn try_from(f: RuleFile) -> Result<AlertRule, String> {
        let name = f.name.clone();
        let fail = |why: String| Err(format!("alert {name:?}: {why}"));
        if f.name.trim().is_empty() {
            return Err("an alert needs a name".into());
        }
        // Which settings each condition takes.
        let (takes, condition): (&[&str], Option<Condition>) = match f.when.as_str() {
            "purchase_over" => (&["amount"], f.amount.map(|amount| Condition::PurchaseOver { amount })),
            "bot_anomaly" => (&[], Some(Condition::BotAnomaly)),
            "rejects_spike" => (
                &["count", "window_minutes"],
                f.count.map(|count| Condition::RejectsSpike { count, window_minutes: f.window_minutes.unwrap_or(5) }),
            ),
            "traffic_below" => (
                &["events_per_minute", "window_minutes"],
                f.events_per_minute.map(|events_per_minute| Condition::TrafficBelow {
                    events_per_minute,
                    window_minutes: f.window_minutes.unwrap_or(5),
                }),
            ),
            other => {
                return fail(format!(
                    "unknown when = {other:?}; one of purchase_over, bot_anomaly, rejects_spike, traffic_below"
                ))
            }
        };
        let given = [
            ("amount", f.amount.is_some()),
            ("count", f.count.is_some()),
            ("events_per_minute", f.events_per_minute.is_some()),
            ("window_minutes", f.window_minutes.is_some()),
        ];
        if let Some((setting, _)) = given.iter().find(|(s, set)| *set && !takes.contains(s)) {
            return fail(format!("{setting} does not apply to {}", f.when));
        }
        let Some(condition) = condition else {
            return fail(format!("{} needs {}", f.when, takes[0]));
        };
        if f.webhooks.is_empty() {
            return fail("no webhooks to post to".into());
        }
        // Named by scheme and host only: the path is the webhook's secret.
        if let Some(bad) = f.webhooks.iter().find(|w| !(w.starts_with("http://") || w.starts_with("https://"))) {
            return fail(format!("webhook {} is not an http(s) URL", redact_webhook(bad)));
        }
        if f.max_notifications_per_hour == 0 {
            return fail("max_notifications_per_hour must be at least 1".into());
        }
        match &condition {
            Condition::PurchaseOver { amount } if amount.is_nan() || *amount < 0.0 => {
                return fail(format!("amount must be at least 0, got {amount}"))
            }
            Condition::RejectsSpike { window_minutes, .. } | Condition::TrafficBelow { window_minutes, .. }
                if !(1..=1440).contains(window_minutes) =>
            {
                return fail(format!("window_minutes must be 1 to 1440, got {window_minutes}"))
            }
            _ => {}
        }
        Ok(AlertRule {
            name: f.name,
            condition,
            webhooks: f.webhooks,
            max_notifications_per_hour: f.max_notifications_per_hour,
        })
    }
}

/// How alerts are checked and delivered (`[alerting]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Seconds between checks. Default 5.
    #[serde(default = "default_check_seconds")]
    pub check_seconds: u64,
    /// Tries per webhook before giving up (the failure is logged). Default 5.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The wait before the first retry, doubled each time. Default 1000.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            check_seconds: default_check_seconds(),
            attempts: default_attempts(),
            backoff_ms: default_backoff_ms(),
        }
    }
}

fn default_max_notifications_per_hour() -> u32 {
    10
}
fn default_check_seconds() -> u64 {
    5
}
fn default_attempts() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        alerts: Vec<AlertRule>,
    }

    #[test]
    fn the_documented_example_reads() {
        let doc: String = include_str!("config.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("[[alerts]]"))
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        let file: File = toml::from_str(&doc).unwrap();
        let conditions: Vec<_> = file.alerts.iter().map(|r| r.condition.clone()).collect();
        assert_eq!(
            conditions,
            [
                Condition::PurchaseOver { amount: 500.0 },
                Condition::BotAnomaly,
                Condition::RejectsSpike { count: 50, window_minutes: 5 },
                Condition::TrafficBelow { events_per_minute: 10.0, window_minutes: 10 },
            ]
        );
        let limits: Vec<_> = file.alerts.iter().map(|r| r.max_notifications_per_hour).collect();
        assert_eq!(limits, [10, 10, 10, 10]);
    }

    #[test]
    fn mistakes_are_named() {
        let err =
            |rule: &str| toml::from_str::<File>(&format!("[[alerts]]\nname='x'\n{rule}")).unwrap_err().to_string();
        for (rule, message) in [
            ("when='purchase_above'\namount=1.0\nwebhooks=['http://h']", "unknown when = \"purchase_above\""),
            ("when='purchase_over'\nwebhooks=['http://h']", "purchase_over needs amount"),
            ("when='bot_anomaly'\ncount=3\nwebhooks=['http://h']", "count does not apply to bot_anomaly"),
            ("when='bot_anomaly'\nwebhooks=[]", "no webhooks"),
            ("when='bot_anomaly'\nwebhooks=['ftp://h/SECRET']", "webhook ftp://h/… is not an http(s) URL"),
            (
                "when='bot_anomaly'\nwebhooks=['http://h']\nmax_notifications_per_hour=0",
                "max_notifications_per_hour must be at least 1",
            ),
            (
                "when='traffic_below'\nevents_per_minute=1.0\nwindow_minutes=0\nwebhooks=['http://h']",
                "window_minutes must be 1 to 1440",
            ),
            ("when='bot_anomaly'\nwebhooks=['http://h']\nwebhook='typo'", "unknown field `webhook`"),
        ] {
            let got = err(rule);
            assert!(got.contains(message), "{rule}: {got}");
        }
        let rule: File =
            toml::from_str("[[alerts]]\nname='x'\nwhen='rejects_spike'\ncount=3\nwebhooks=['http://h']").unwrap();
        assert_eq!(
            rule.alerts[0].condition,
            Condition::RejectsSpike { count: 3, window_minutes: 5 },
            "window_minutes defaults to 5"
        );
        assert_eq!(rule.alerts[0].max_notifications_per_hour, 10, "max_notifications_per_hour defaults to 10");
        let rule: File = toml::from_str(
            "[[alerts]]\nname='x'\nwhen='bot_anomaly'\nmax_notifications_per_hour=3\nwebhooks=['http://h']",
        )
        .unwrap();
        assert_eq!(rule.alerts[0].max_notifications_per_hour, 3);
    }
}
