//! Counters, gauges and histograms, rendered as Prometheus text at
//! `GET /metrics`.
//!
//! prometheus-client keeps the values and writes the exposition; its
//! Prometheus text encoder (format 0.0.4) is the one used, so the names,
//! labels and content type are what scrapers already read (its OpenMetrics
//! encoder would also have needed the `application/openmetrics-text`
//! content type). Counters are registered without `_total`: the encoder
//! adds it, as it adds the full stop that ends each help text.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the latency histograms (commits, API requests).
const COMMIT_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

pub struct Metrics {
    pub batches_received: Count,
    pub events_accepted: Count,
    /// Whole batches refused, by reason code.
    batches_refused: Family<Reason, Counter>,
    /// Events refused inside valid batches, by reason code.
    events_rejected: Family<Reason, Counter>,
    /// Requests answered 503 because the stream could not take them.
    pub stream_unavailable: Count,
    pub silver_rows: Count,
    pub bronze_rows: Count,
    pub duplicates_dropped: Count,
    /// Log records that failed their checksum, quarantined as bad rows.
    pub corrupt_records: Count,
    /// Commits so far; not exposed (the latency histogram's count says it).
    pub commits: AtomicU64,
    pub commit_failures: Count,
    commit_latency: Histogram,
    /// Time to answer each dashboard API endpoint.
    api_latency: Family<Endpoint, Histogram, fn() -> Histogram>,
    /// Alerts raised, by rule.
    alerts_fired: Family<Rule, Counter>,
    alerts_suppressed: Family<Rule, Counter>,
    pub alert_deliveries_failed: Count,
    /// Unread records per (topic, partition).
    log_lag: Family<Partition, Gauge<u64, AtomicU64>>,
    /// Every metric above but `commits`, in the order `/metrics` lists them.
    registry: Registry,
}

/// A counter that callers bump and read the way they would an `AtomicU64`
/// (which it holds), registered with prometheus-client.
#[derive(Clone, Debug, Default)]
pub struct Count(Counter);

impl Count {
    pub fn fetch_add(&self, n: u64, order: Ordering) -> u64 {
        self.0.inner().fetch_add(n, order)
    }

    pub fn load(&self, order: Ordering) -> u64 {
        self.0.inner().load(order)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rule {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Endpoint {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Partition {
    topic: String,
    partition: u32,
}

fn latency_histogram() -> Histogram {
    Histogram::new(COMMIT_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            batches_received: Count::default(),
            events_accepted: Count::default(),
            batches_refused: Family::default(),
            events_rejected: Family::default(),
            stream_unavailable: Count::default(),
            silver_rows: Count::default(),
            bronze_rows: Count::default(),
            duplicates_dropped: Count::default(),
            corrupt_records: Count::default(),
            commits: AtomicU64::new(0),
            commit_failures: Count::default(),
            commit_latency: latency_histogram(),
            api_latency: Family::new_with_constructor(latency_histogram),
            alerts_fired: Family::default(),
            alerts_suppressed: Family::default(),
            alert_deliveries_failed: Count::default(),
            log_lag: Family::default(),
            registry: Registry::default(),
        };
        // The metrics share their values with their clones, so the registry
        // holds clones and the fields stay where callers update them.
        let mut r = Registry::default();
        r.register(
            "clickstream_batches_received",
            "Batches received at /v1/batch and /ingest",
            m.batches_received.0.clone(),
        );
        r.register(
            "clickstream_events_accepted",
            "Valid events durably appended to the stream",
            m.events_accepted.0.clone(),
        );
        r.register(
            "clickstream_events_rejected",
            "Events refused inside valid batches, by reason",
            m.events_rejected.clone(),
        );
        r.register("clickstream_batches_refused", "Whole batches refused, by reason", m.batches_refused.clone());
        r.register(
            "clickstream_stream_unavailable",
            "Requests answered 503 because the stream was unavailable",
            m.stream_unavailable.0.clone(),
        );
        r.register("clickstream_bronze_rows", "Rows written to Bronze", m.bronze_rows.0.clone());
        r.register("clickstream_silver_rows", "Rows written to Silver", m.silver_rows.0.clone());
        r.register(
            "clickstream_duplicates_dropped",
            "Events not written to Silver because their event id was already there",
            m.duplicates_dropped.0.clone(),
        );
        r.register(
            "clickstream_corrupt_records",
            "Log records that failed their checksum and were quarantined in rejects",
            m.corrupt_records.0.clone(),
        );
        r.register(
            "clickstream_commit_failures",
            "Micro-batch commits that failed and will be retried",
            m.commit_failures.0.clone(),
        );
        r.register(
            "clickstream_alerts_fired",
            "Alerts raised (each sent to all its webhooks), by rule",
            m.alerts_fired.clone(),
        );
        r.register(
            "clickstream_alerts_suppressed",
            "Alerts over their rule's hourly limit, logged and not posted, by rule",
            m.alerts_suppressed.clone(),
        );
        r.register(
            "clickstream_alert_deliveries_failed",
            "Webhook deliveries given up after their retries",
            m.alert_deliveries_failed.0.clone(),
        );
        r.register(
            "clickstream_log_lag_records",
            "Records in the stream not yet committed to Parquet",
            m.log_lag.clone(),
        );
        r.register(
            "clickstream_commit_latency_seconds",
            "Time to write and atomically commit one micro-batch",
            m.commit_latency.clone(),
        );
        r.register(
            "clickstream_api_latency_seconds",
            "Time to answer a dashboard API request, by endpoint",
            m.api_latency.clone(),
        );
        Metrics { registry: r, ..m }
    }

    pub fn batch_refused(&self, reason: &str) {
        self.batches_refused.get_or_create(&Reason { reason: reason.to_string() }).inc();
    }

    pub fn event_rejected(&self, reason: &str, n: u64) {
        self.events_rejected.get_or_create(&Reason { reason: reason.to_string() }).inc_by(n);
    }

    pub fn observe_commit(&self, seconds: f64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_latency.observe(seconds);
    }

    pub fn alert_fired(&self, rule: &str) {
        self.alerts_fired.get_or_create(&Rule { rule: rule.to_string() }).inc();
    }

    /// An alert over its rule's hourly limit: logged, not posted.
    pub fn alert_suppressed(&self, rule: &str) {
        self.alerts_suppressed.get_or_create(&Rule { rule: rule.to_string() }).inc();
    }

    pub fn alert_delivery_failed(&self) {
        self.alert_deliveries_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_api(&self, endpoint: &'static str, seconds: f64) {
        self.api_latency.get_or_create(&Endpoint { endpoint }).observe(seconds);
    }

    pub fn set_log_lag(&self, topic: &str, partition: u32, lag: u64) {
        self.log_lag.get_or_create(&Partition { topic: topic.to_string(), partition }).set(lag);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail, and the label sets are plain strings and numbers");
        out
    }
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
        assert!(
            text.contains("clickstream_api_latency_seconds_bucket{endpoint=\"/api/summary\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("clickstream_api_latency_seconds_count{endpoint=\"/api/summary\"} 1\n"));
        assert!(text.contains("clickstream_events_accepted_total 5\n"));
        assert!(text.contains("clickstream_events_rejected_total{reason=\"missing_prop\"} 3\n"));
        assert!(text.contains("clickstream_log_lag_records{topic=\"clickstream-events\",partition=\"3\"} 17\n"));
        assert!(text.contains("clickstream_commit_latency_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("clickstream_commit_latency_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("clickstream_commit_latency_seconds_count 1\n"));
    }

    #[test]
    fn every_series_of_the_hand_written_exposition_is_still_there() {
        let m = Metrics::new();
        m.batch_refused("body_too_large");
        m.event_rejected("missing_prop", 1);
        m.alert_fired("big \"one\"");
        m.alert_suppressed("big");
        m.set_log_lag("clickstream-events", 0, 1);
        m.observe_commit(0.5);
        m.observe_api("/api/summary", 20.0);
        let text = m.render();
        for series in [
            "clickstream_batches_received_total 0\n",
            "clickstream_events_accepted_total 0\n",
            "clickstream_events_rejected_total{reason=\"missing_prop\"} 1\n",
            "clickstream_batches_refused_total{reason=\"body_too_large\"} 1\n",
            "clickstream_stream_unavailable_total 0\n",
            "clickstream_bronze_rows_total 0\n",
            "clickstream_silver_rows_total 0\n",
            "clickstream_duplicates_dropped_total 0\n",
            "clickstream_corrupt_records_total 0\n",
            "clickstream_commit_failures_total 0\n",
            "clickstream_alerts_fired_total{rule=\"big \\\"one\\\"\"} 1\n",
            "clickstream_alerts_suppressed_total{rule=\"big\"} 1\n",
            "clickstream_alert_deliveries_failed_total 0\n",
            "clickstream_log_lag_records{topic=\"clickstream-events\",partition=\"0\"} 1\n",
            "clickstream_commit_latency_seconds_bucket{le=\"0.25\"} 0\n",
            "clickstream_commit_latency_seconds_bucket{le=\"0.5\"} 1\n",
            "clickstream_commit_latency_seconds_bucket{le=\"+Inf\"} 1\n",
            "clickstream_commit_latency_seconds_sum 0.5\n",
            "clickstream_api_latency_seconds_bucket{endpoint=\"/api/summary\",le=\"10\"} 0\n",
            "clickstream_api_latency_seconds_bucket{endpoint=\"/api/summary\",le=\"+Inf\"} 1\n",
            "clickstream_api_latency_seconds_sum{endpoint=\"/api/summary\"} 20",
            "# HELP clickstream_batches_received_total Batches received at /v1/batch and /ingest.\n",
            "# TYPE clickstream_batches_received_total counter\n",
            "# TYPE clickstream_log_lag_records gauge\n",
            "# TYPE clickstream_api_latency_seconds histogram\n",
        ] {
            assert!(text.contains(series), "{series:?} missing from\n{text}");
        }
    }
}
