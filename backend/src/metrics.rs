//! Counters and gauges, rendered as Prometheus text at `GET /metrics`.
//!
//! A handful of atomics and small maps rather than a metrics framework:
//! the set is fixed and small, and the text format is simple.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histograms (commits, API requests).
const COMMIT_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct Metrics {
    pub batches_received: AtomicU64,
    pub events_accepted: AtomicU64,
    /// Whole batches refused, by reason code.
    batches_refused: Mutex<BTreeMap<String, u64>>,
    /// Events refused inside valid batches, by reason code.
    events_rejected: Mutex<BTreeMap<String, u64>>,
    /// Requests answered 503 because the stream could not take them.
    pub stream_unavailable: AtomicU64,
    pub silver_rows: AtomicU64,
    pub bronze_rows: AtomicU64,
    pub duplicates_dropped: AtomicU64,
    pub commits: AtomicU64,
    pub commit_failures: AtomicU64,
    commit_latency: Mutex<Histogram>,
    /// Time to answer each dashboard API endpoint.
    api_latency: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Alerts raised, by rule.
    alerts_fired: Mutex<BTreeMap<String, u64>>,
    alerts_suppressed: Mutex<BTreeMap<String, u64>>,
    pub alert_deliveries_failed: AtomicU64,
    /// Unread records per (topic, partition).
    log_lag: Mutex<BTreeMap<(String, u32), u64>>,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; COMMIT_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    pub fn batch_refused(&self, reason: &str) {
        *lock(&self.batches_refused).entry(reason.to_string()).or_default() += 1;
    }

    pub fn event_rejected(&self, reason: &str, n: u64) {
        *lock(&self.events_rejected).entry(reason.to_string()).or_default() += n;
    }

    pub fn rejected_by_reason(&self) -> BTreeMap<String, u64> {
        lock(&self.events_rejected).clone()
    }

    pub fn observe_commit(&self, seconds: f64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        lock(&self.commit_latency).observe(seconds);
    }

    pub fn alert_fired(&self, rule: &str) {
        *lock(&self.alerts_fired).entry(rule.to_string()).or_default() += 1;
    }

    /// An alert over its rule's hourly limit: logged, not posted.
    pub fn alert_suppressed(&self, rule: &str) {
        *lock(&self.alerts_suppressed).entry(rule.to_string()).or_default() += 1;
    }

    pub fn alert_delivery_failed(&self) {
        self.alert_deliveries_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_api(&self, endpoint: &'static str, seconds: f64) {
        lock(&self.api_latency).entry(endpoint).or_default().observe(seconds);
    }

    pub fn set_log_lag(&self, topic: &str, partition: u32, lag: u64) {
        lock(&self.log_lag).insert((topic.to_string(), partition), lag);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter(&mut out, "clickstream_batches_received_total", "Batches received at /v1/batch and /ingest.", self.batches_received.load(Ordering::Relaxed));
        counter(&mut out, "clickstream_events_accepted_total", "Valid events durably appended to the stream.", self.events_accepted.load(Ordering::Relaxed));

        let _ = writeln!(out, "# HELP clickstream_events_rejected_total Events refused inside valid batches, by reason.\n# TYPE clickstream_events_rejected_total counter");
        for (reason, n) in lock(&self.events_rejected).iter() {
            let _ = writeln!(out, "clickstream_events_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP clickstream_batches_refused_total Whole batches refused, by reason.\n# TYPE clickstream_batches_refused_total counter");
        for (reason, n) in lock(&self.batches_refused).iter() {
            let _ = writeln!(out, "clickstream_batches_refused_total{{reason=\"{reason}\"}} {n}");
        }
        counter(&mut out, "clickstream_stream_unavailable_total", "Requests answered 503 because the stream was unavailable.", self.stream_unavailable.load(Ordering::Relaxed));
        counter(&mut out, "clickstream_bronze_rows_total", "Rows written to Bronze.", self.bronze_rows.load(Ordering::Relaxed));
        counter(&mut out, "clickstream_silver_rows_total", "Rows written to Silver.", self.silver_rows.load(Ordering::Relaxed));
        counter(&mut out, "clickstream_duplicates_dropped_total", "Events not written to Silver because their event id was already there.", self.duplicates_dropped.load(Ordering::Relaxed));
        counter(&mut out, "clickstream_commit_failures_total", "Micro-batch commits that failed and will be retried.", self.commit_failures.load(Ordering::Relaxed));

        by_rule(&mut out, "clickstream_alerts_fired_total", "Alerts raised (each sent to all its webhooks), by rule.", &lock(&self.alerts_fired));
        by_rule(&mut out, "clickstream_alerts_suppressed_total", "Alerts over their rule's hourly limit, logged and not posted, by rule.", &lock(&self.alerts_suppressed));
        counter(&mut out, "clickstream_alert_deliveries_failed_total", "Webhook deliveries given up after their retries.", self.alert_deliveries_failed.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP clickstream_log_lag_records Records in the stream not yet committed to Parquet.\n# TYPE clickstream_log_lag_records gauge");
        for ((topic, partition), lag) in lock(&self.log_lag).iter() {
            let _ = writeln!(out, "clickstream_log_lag_records{{topic=\"{topic}\",partition=\"{partition}\"}} {lag}");
        }

        let name = "clickstream_commit_latency_seconds";
        let _ = writeln!(out, "# HELP {name} Time to write and atomically commit one micro-batch.\n# TYPE {name} histogram");
        lock(&self.commit_latency).render(&mut out, name, "");
        let name = "clickstream_api_latency_seconds";
        let _ = writeln!(out, "# HELP {name} Time to answer a dashboard API request, by endpoint.\n# TYPE {name} histogram");
        for (endpoint, h) in lock(&self.api_latency).iter() {
            h.render(&mut out, name, &format!("endpoint=\"{endpoint}\","));
        }
        out
    }
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in COMMIT_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// The series of one histogram; `labels` is empty or ends with a comma.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, n) in COMMIT_BUCKETS.iter().zip(self.buckets.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let bare = labels.trim_end_matches(',');
        let braces = if bare.is_empty() { String::new() } else { format!("{{{bare}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// A counter per alert rule, the rule's name escaped as a label value.
fn by_rule(out: &mut String, name: &str, help: &str, counts: &BTreeMap<String, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (rule, n) in counts {
        let _ = writeln!(out, "{name}{{rule=\"{}\"}} {n}", rule.replace('\\', "\\\\").replace('"', "\\\""));
    }
}

/// A poisoned metrics lock only means a panic elsewhere; the numbers are
/// still worth showing.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.events_accepted.fetch_add(5, Ordering::Relaxed);
        m.event_rejected("missing_prop", 2);
        m.event_rejected("missing_prop", 1);
        m.set_log_lag("clickstream-events", 3, 17);
        m.observe_commit(0.02);
        m.observe_api("/api/summary", 0.003);
        let text = m.render();
        assert!(text.contains("clickstream_api_latency_seconds_bucket{endpoint=\"/api/summary\",le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("clickstream_api_latency_seconds_count{endpoint=\"/api/summary\"} 1\n"));
        assert!(text.contains("clickstream_events_accepted_total 5\n"));
        assert!(text.contains("clickstream_events_rejected_total{reason=\"missing_prop\"} 3\n"));
        assert!(text.contains("clickstream_log_lag_records{topic=\"clickstream-events\",partition=\"3\"} 17\n"));
        assert!(text.contains("clickstream_commit_latency_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("clickstream_commit_latency_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("clickstream_commit_latency_seconds_count 1\n"));
    }
}
