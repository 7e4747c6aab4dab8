//! `clickstream serve`: the HTTP server with the aggregator in the same
//! process, stopped cleanly: stop accepting, finish in-flight requests,
//! then drain and commit everything the stream acknowledged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clickstream_schema::{DailySalt, Limits};
use edge_worker::CollectConfig;
use tokio::sync::{oneshot, watch};

use crate::aggregate::{AggregateConfig, Aggregator};
use crate::alerts::{AlertRule, AlertingConfig, Alerts};
use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::server::{app, AppState, ClientIp, IngestAuth};
use crate::stream::{EmbeddedLog, EventStream, FluvioSettings, FluvioStream};

#[derive(Clone, Debug)]
pub struct ServeSettings {
    pub data_dir: PathBuf,
    pub bind: String,
    pub port: u16,
    pub partitions: u32,
    /// Run on this Fluvio cluster instead of the embedded log.
    pub fluvio: Option<FluvioSettings>,
    pub limits: Limits,
    pub ip_salt_secret: Vec<u8>,
    pub ingest_auth: IngestAuth,
    pub client_ip: ClientIp,
    pub country_header: Option<String>,
    pub site_dir: Option<PathBuf>,
    /// The built tracker's folder and the URL path it is served at.
    pub tracker: Option<(PathBuf, String)>,
    /// Another path for the collect route (first-party naming).
    pub collect_path: Option<String>,
    /// `None` runs without the aggregator (`--no-aggregate`).
    pub aggregate: Option<AggregateConfig>,
    /// The currency the dashboard shows revenue in.
    pub currency: String,
    pub alerts: Vec<AlertRule>,
    pub alerting: AlertingConfig,
}

impl ServeSettings {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        ServeSettings {
            aggregate: Some(AggregateConfig::new(&data_dir)),
            data_dir,
            bind: "127.0.0.1".into(),
            port: 8080,
            partitions: 4,
            fluvio: None,
            limits: Limits::default(),
            ip_salt_secret: b"change-me".to_vec(),
            ingest_auth: IngestAuth::Disabled,
            client_ip: ClientIp::Peer,
            country_header: Some("cf-ipcountry".into()),
            site_dir: None,
            tracker: None,
            collect_path: None,
            currency: "EUR".into(),
            alerts: Vec::new(),
            alerting: AlertingConfig::default(),
        }
    }
}

/// Opens the embedded log of a data directory, with a clear message when
/// another process holds it.
pub fn open_log(data_dir: &std::path::Path, partitions: u32) -> anyhow::Result<Arc<dyn EventStream>> {
    let dir = data_dir.join("log");
    let log = EmbeddedLog::open(&dir, partitions).with_context(|| {
        format!(
            "cannot open the embedded log in {} (is another `clickstream serve` or `aggregate` using this data directory?)",
            dir.display()
        )
    })?;
    Ok(Arc::new(log))
}

/// The stream: the Fluvio cluster when one is configured, else the data
/// directory's embedded log.
pub async fn open_stream(
    data_dir: &std::path::Path,
    partitions: u32,
    fluvio: Option<FluvioSettings>,
) -> anyhow::Result<Arc<dyn EventStream>> {
    match fluvio {
        Some(settings) => {
            let sc = settings.sc_addr.clone();
            let stream = FluvioStream::connect(settings)
                .await
                .with_context(|| format!("cannot use the Fluvio cluster at {sc} (is it running? check --fluvio-sc)"))?;
            Ok(Arc::new(stream))
        }
        None => open_log(data_dir, partitions),
    }
}

/// Runs the server until `stop` turns true. `ready` receives the bound
/// address (useful with port 0).
pub async fn serve(
    settings: ServeSettings,
    stop: watch::Receiver<bool>,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
    let stream = open_stream(&settings.data_dir, settings.partitions, settings.fluvio.clone()).await?;
    let metrics = Arc::new(Metrics::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let collect = CollectConfig {
        limits: settings.limits.clone(),
        ip_salt: DailySalt::new(settings.ip_salt_secret.clone()),
        source: "backend",
    };
    let mut state = AppState::new(stream.clone(), collect, metrics.clone(), clock.clone());
    state.ingest_auth = settings.ingest_auth.clone();
    state.client_ip = settings.client_ip.clone();
    state.country_header = settings.country_header.clone();
    state.site_dir = settings.site_dir.clone();
    state.tracker = settings.tracker.clone();
    state.collect_path = settings.collect_path.clone();
    state.data_dir = Some(settings.data_dir.clone());
    state.currency = settings.currency.clone();
    let router = app(Arc::new(state));

    let (agg_stop_tx, agg_stop_rx) = watch::channel(false);
    let aggregator = match settings.aggregate.clone() {
        Some(config) => {
            let agg = Aggregator::open(stream.clone(), config, metrics.clone(), clock.clone()).await?;
            Some(tokio::spawn(agg.run(agg_stop_rx)))
        }
        None => None,
    };

    let alerts = (!settings.alerts.is_empty()).then(|| {
        let alerts = Alerts::new(settings.alerts.clone(), settings.alerting.clone(), settings.data_dir.clone(), metrics.clone());
        tokio::spawn(alerts.run(clock.clone(), stop.clone()))
    });

    let addr = format!("{}:{}", settings.bind, settings.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is the port in use? try --port)"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, data_dir = %settings.data_dir.display(), "serving");
    if let Some(ready) = ready {
        let _ = ready.send(local);
    }

    let mut stop_server = stop.clone();
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = stop_server.wait_for(|s| *s).await;
        })
        .await
        .context("HTTP server failed")?;

    // Every acknowledged request is in the log now; commit it all.
    let _ = agg_stop_tx.send(true);
    if let Some(handle) = alerts {
        let _ = handle.await;
    }
    if let Some(handle) = aggregator {
        handle.await.context("aggregator task panicked")??;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// A watch channel that turns true on Ctrl-C or SIGTERM.
pub fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stop requested; finishing in-flight work");
        let _ = tx.send(true);
    });
    rx
}
