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
use crate::salts::SaltStore;
use crate::server::listen::{serve_router, ConnectionLimits};
use crate::server::{admin_app, app, Access, AppState, CollectGuard, IngestAuth, SeenSignatures, Tokens};
use crate::settings::defaults;
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
    /// Derive the IP salts from this secret instead of keeping random
    /// daily salts (for replicas that share no data directory).
    pub ip_salt_secret: Option<crate::secrets::Redacted<Vec<u8>>>,
    pub ingest_auth: IngestAuth,
    /// Hashes of the API tokens (dashboard, `/api/*`, `/metrics`); when
    /// empty, `serve` generates one and prints the dashboard link with it.
    pub api_tokens: Vec<[u8; 32]>,
    /// Hashes of tokens good for `/metrics` only.
    pub metrics_tokens: Vec<[u8; 32]>,
    /// Every route open to everyone: `clickstream demo` only.
    pub open_access: bool,
    /// A second listener for `/metrics` and `/health` (`--admin-bind`).
    pub admin_bind: Option<String>,
    /// Origins, site tokens, rate limits, time bounds, trusted proxies.
    pub guard: CollectGuard,
    pub connections: ConnectionLimits,
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
    /// The time zones the dashboard's days start in.
    pub zones: crate::api::Zones,
    pub alerts: Vec<AlertRule>,
    pub alerting: AlertingConfig,
}

impl ServeSettings {
    /// The defaults, on `data_dir`; [`crate::settings`] resolves the rest.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        ServeSettings {
            aggregate: Some(AggregateConfig::new(&data_dir)),
            data_dir,
            bind: defaults::BIND.into(),
            port: defaults::PORT,
            partitions: defaults::PARTITIONS,
            fluvio: None,
            limits: Limits::default(),
            ip_salt_secret: None,
            ingest_auth: IngestAuth::Disabled,
            api_tokens: Vec::new(),
            metrics_tokens: Vec::new(),
            open_access: false,
            admin_bind: None,
            guard: CollectGuard::default(),
            connections: ConnectionLimits::default(),
            country_header: Some(defaults::COUNTRY_HEADER.into()),
            site_dir: None,
            tracker: None,
            collect_path: None,
            currency: defaults::CURRENCY.into(),
            zones: crate::api::Zones::default(),
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

    let ip_salt = match &settings.ip_salt_secret {
        Some(secret) => {
            tracing::warn!("IP salts are derived from the configured ip_salt_secret: whoever holds it can recompute past days' IP hashes; leave it unset for random daily salts");
            DailySalt::new(secret.0.clone())
        }
        None => {
            let store = SaltStore::open(&settings.data_dir, clock.now_ms()).with_context(|| {
                format!("cannot keep IP salts in {}", settings.data_dir.join("_state/salts").display())
            })?;
            DailySalt::from_source(Arc::new(store))
        }
    };
    let collect = CollectConfig { limits: settings.limits.clone(), ip_salt, source: "backend" };
    let mut state = AppState::new(stream.clone(), collect, metrics.clone(), clock.clone());
    let mut tokens = Tokens::new(settings.api_tokens.clone(), settings.metrics_tokens.clone());
    let generated = (!settings.open_access && tokens.is_empty()).then(|| {
        let token = crate::secrets::random_token();
        tokens.add_api_token(&token);
        token
    });
    state.access = if settings.open_access { Access::Open } else { Access::Tokens(tokens) };
    state.guard = settings.guard.clone();
    state.seen_signatures = SeenSignatures::on_disk(&settings.data_dir);
    state.ingest_auth = settings.ingest_auth.clone();
    state.country_header = settings.country_header.clone();
    state.site_dir = settings.site_dir.clone();
    state.tracker = settings.tracker.clone();
    state.collect_path = settings.collect_path.clone();
    state.data_dir = Some(settings.data_dir.clone());
    state.currency = settings.currency.clone();
    state.zones = std::sync::Arc::new(settings.zones.clone());
    let state = Arc::new(state);
    let router = app(state.clone());

    let (agg_stop_tx, agg_stop_rx) = watch::channel(false);
    let aggregator = match settings.aggregate.clone() {
        Some(config) => {
            let agg = Aggregator::open(stream.clone(), config, metrics.clone(), clock.clone()).await?;
            Some(tokio::spawn(agg.run(agg_stop_rx)))
        }
        None => None,
    };

    let alerts = (!settings.alerts.is_empty()).then(|| {
        let alerts =
            Alerts::new(settings.alerts.clone(), settings.alerting.clone(), settings.data_dir.clone(), metrics.clone());
        tokio::spawn(alerts.run(clock.clone(), stop.clone()))
    });

    let addr = format!("{}:{}", settings.bind, settings.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is the port in use? try --port)"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, data_dir = %settings.data_dir.display(), "serving");
    let admin = match &settings.admin_bind {
        Some(admin_addr) => {
            let admin_listener = tokio::net::TcpListener::bind(admin_addr)
                .await
                .with_context(|| format!("cannot listen on {admin_addr} for --admin-bind"))?;
            tracing::info!(local = %admin_listener.local_addr()?, "admin listener (/metrics, /health)");
            Some(tokio::spawn(serve_router(
                admin_listener,
                admin_app(state.clone()),
                settings.connections,
                stop.clone(),
            )))
        }
        None => None,
    };
    if let Some(token) = generated {
        // On stdout, not in the log: the token is a secret, the link is
        // for the person who started the server (as Jupyter does).
        let host = match local.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        println!(
            "No API token is configured, so this run has its own. Open the dashboard:\n    http://{host}:{}/dashboard?token={token}\n\
             (for a lasting token: `clickstream token new`, then api_tokens in the config file)",
            local.port()
        );
    }
    if let Some(ready) = ready {
        let _ = ready.send(local);
    }

    serve_router(listener, router, settings.connections, stop.clone()).await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }

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
                () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stop requested; finishing in-flight work");
        let _ = tx.send(true);
    });
    rx
}
