//! The collect core's speed: validate + enrich, events per second on one
//! core, over batches the tracker sends (20 events) and the largest a batch
//! may be (500). `cargo bench -p edge-worker`; criterion prints the
//! throughput in elements (events) per second.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use clickstream_schema::RequestMeta;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edge_worker::{collect, CollectConfig};
use serde_json::json;

const NOW: i64 = 1_732_262_400_000;

/// A shop visit's mix: page views, product views, clicks, cart events.
fn batch(events: usize) -> Vec<u8> {
    let events: Vec<_> = (0..events)
        .map(|i| {
            let (event_type, props) = match i % 4 {
                0 => ("page_view", json!({})),
                1 => ("page_view", json!({"product_id": format!("p-{}", i % 50), "category": "shoes"})),
                2 => ("click", json!({"tag": "button", "text": "Add to cart", "href": null})),
                _ => ("add_to_cart", json!({"product_id": format!("p-{}", i % 50), "price": 89.9, "quantity": 1, "currency": "EUR"})),
            };
            json!({
                "event_id": format!("0193a6f2-7c1e-7d3a-9b1e-{i:012}"), "event_type": event_type, "ts": NOW - 2_000 + i as i64,
                "anonymous_id": "5b3f2c1e-8d4a-4e7b-9f1a-2c3d4e5f6a7b", "session_id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
                "page": {"url": format!("https://shop.example/p/{}?utm_source=news&utm_medium=email", i % 50),
                         "path": format!("/p/{}", i % 50), "referrer": "https://www.google.com/", "title": "Trail Runner 2 | Shop Example"},
                "props": props,
                "context": {"screen": "1920x1080", "lang": "en-GB", "tz": "Europe/London"}
            })
        })
        .collect();
    json!({"v": 1, "site_id": "shop-1", "sent_at": NOW - 1_000, "events": events}).to_string().into_bytes()
}

fn collect_core(c: &mut Criterion) {
    let config = CollectConfig::new("ip-salt-secret", "edge");
    let meta = RequestMeta {
        received_at: NOW,
        user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into()),
        ip: Some("198.51.100.4".into()),
        country: Some("NL".into()),
        colo: Some("AMS".into()),
        asn: Some(1136),
        tls_version: Some("TLSv1.3".into()),
    };
    let mut group = c.benchmark_group("collect");
    for events in [20, 500] {
        let body = batch(events);
        let out = collect(&body, &meta, &config).unwrap();
        assert_eq!(out.accepted.len(), events, "every event of the bench batch is valid");
        group.throughput(Throughput::Elements(events as u64));
        group.bench_function(format!("validate+enrich, {events} events per batch"), |b| {
            b.iter(|| collect(black_box(&body), &meta, &config).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, collect_core);
criterion_main!(benches);
