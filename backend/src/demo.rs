//! `clickstream demo`: the whole pipeline on one machine with synthetic
//! traffic flowing, and where to look.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::{oneshot, watch};

use crate::clock::{Clock, SystemClock};
use crate::generate::{self, GenerateOptions};
use crate::serve::{serve, ServeSettings};
use crate::settings::defaults::DEMO_HISTORY_DAYS;
use crate::storage::Manifest;

/// Events per day of the backfilled history: a small shop's day.
const HISTORY_EVENTS_PER_DAY: u64 = 1_000;

pub async fn run(settings: ServeSettings, rate: f64, seed: u64, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let data_dir = settings.data_dir.clone();
    let horizon_ms = settings.limits.horizon_ms;
    let (ready_tx, ready_rx) = oneshot::channel();
    let (server_stop_tx, server_stop_rx) = watch::channel(false);
    let mut server = tokio::spawn(serve(settings, server_stop_rx, Some(ready_tx)));
    let addr = tokio::select! {
        addr = ready_rx => addr.context("the server stopped before it was ready")?,
        result = &mut server => {
            result.context("server task panicked")??;
            anyhow::bail!("the server stopped before it was ready");
        }
    };
    let base = format!("http://{addr}");
    let abs = std::fs::canonicalize(&data_dir).unwrap_or(data_dir.clone());
    println!(
        "\nclickstream demo is running\n\
         \x20 demo shop      {base}/\n\
         \x20 dashboard      {base}/dashboard\n\
         \x20 collect        POST {base}/v1/batch\n\
         \x20 health         {base}/health\n\
         \x20 metrics        {base}/metrics\n\
         \x20 data           {dir}/{{bronze,silver}}/events, {dir}/rejects, {dir}/gold/<table>\n\
         \x20 synthetic traffic at {rate} events/s (seed {seed}), after weeks of thinner history\n\n\
         Load it in Python:\n\
         \x20 import polars as pl\n\
         \x20 pl.scan_parquet(\"{dir}/silver/events/**/*.parquet\", hive_partitioning=True).collect()\n\
         \x20 pl.scan_parquet(\"{dir}/gold/traffic_1m/**/*.parquet\", hive_partitioning=True).collect()\n\n\
         Or ask SQL from another terminal:\n\
         \x20 clickstream query \"SELECT * FROM funnel_1h\" --data-dir {dir}\n\n\
         Press Ctrl-C to stop (everything acknowledged is committed first).\n",
        dir = abs.display()
    );

    let (gen_stop_tx, gen_stop_rx) = watch::channel(false);
    // Weeks of thin history first (as fast as the server takes it), so the
    // retention heatmap has cohorts to compare; as far back as the
    // horizon allows.
    let day = 24 * 3_600_000;
    let days = (horizon_ms / day - 2).min(DEMO_HISTORY_DAYS);
    if days >= 2 {
        let history = GenerateOptions {
            target: base.clone(),
            events: Some(HISTORY_EVENTS_PER_DAY * days as u64),
            seed: seed.wrapping_add(1),
            start_ms: Some(SystemClock.now_ms() - days * day),
            horizon_ms,
            ..GenerateOptions::default()
        };
        tokio::select! {
            done = generate::run(history, gen_stop_rx.clone()) => match done {
                Ok(r) => println!("  backfilled {days} days of history: {} events", r.events),
                Err(e) => println!("  could not backfill history ({e:#}); going on with live traffic"),
            },
            // Ctrl-C while backfilling: the loop below sees it at once.
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    let options = GenerateOptions { target: base, rate: Some(rate), seed, ..GenerateOptions::default() };
    let generator = tokio::spawn(generate::run(options, gen_stop_rx));

    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = ticker.tick() => {
                if let Ok(m) = Manifest::load(&data_dir) {
                    println!(
                        "  committed: {} Silver rows, {} rejects, {} duplicates dropped (commit #{})",
                        m.totals.silver_rows, m.totals.reject_rows, m.totals.duplicates, m.seq
                    );
                }
            }
        }
    }

    let _ = gen_stop_tx.send(true);
    let report = generator.await.context("generator task panicked")??;
    let _ = server_stop_tx.send(true);
    server.await.context("server task panicked")??;
    let m = Manifest::load(&data_dir)?;
    println!(
        "stopped: generator sent {} events ({} distinct valid, {} malformed); Silver holds {} rows, rejects {}",
        report.events, report.valid_distinct, report.malformed, m.totals.silver_rows, m.totals.reject_rows
    );
    Ok(())
}
