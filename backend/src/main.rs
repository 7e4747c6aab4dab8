//! `clickstream`: the backend binary. Each subcommand is thin: it resolves
//! flags, environment and the config file, then calls the library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use clickstream_backend::aggregate::{AggregateConfig, Aggregator};
use clickstream_backend::clock::SystemClock;
use clickstream_backend::config::{default_site_dir, default_tracker_dir, FileConfig};
use clickstream_backend::metrics::Metrics;
use clickstream_backend::serve::{open_log, open_stream, serve, stop_on_signal, ServeSettings};
use clickstream_backend::stream::FluvioSettings;
use clickstream_backend::secrets::Redacted;
use clickstream_backend::server::auth::{parse_token, token_hash_line};
use clickstream_backend::server::{CollectGuard, IngestAuth, TrustedProxies};
use clickstream_backend::{bench, demo, generate, query};

// Polars and the JSON decoding of stream records allocate many small
// buffers; glibc's malloc dominated the aggregator's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "clickstream", version, about = "Real-time clickstream analytics: collect, stream, refine to Parquet.")]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "CLICKSTREAM_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (collect, ingest, health, metrics, demo site) and the aggregator.
    Serve(ServeArgs),
    /// Run the aggregator alone: stream → Bronze, Silver, rejects (and Gold,
    /// unless it owns only some partitions).
    Aggregate(AggregateArgs),
    /// Keep Gold for partition consumers (`aggregate --partitions`) writing
    /// into the same data directory.
    Gold(GoldArgs),
    /// Send realistic synthetic shop traffic, as the tracker would.
    Generate(GenerateArgs),
    /// Run the whole pipeline locally with traffic flowing, and print where to look.
    Demo(DemoArgs),
    /// Run SQL over the tables (Silver, rejects, every Gold table).
    Query(query::QueryArgs),
    /// Rebuild Silver and Gold from Bronze (after a rule change); resumable.
    Replay(ReplayArgs),
    /// Measure throughput and peak memory.
    Bench(bench::BenchArgs),
    /// Set up a Fluvio cluster for the backend.
    #[command(subcommand)]
    Fluvio(FluvioCommand),
    /// API tokens for the dashboard, `/api/*` and `/metrics`.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new random token, and the line the config file keeps of it.
    New,
    /// Read a token on standard input; print the line the config file keeps.
    Hash,
}

#[derive(Subcommand)]
enum FluvioCommand {
    /// Register an SPU with an SC started with `fluvio-run sc --local`, which
    /// accepts only SPUs it knows. A no-op when the id is registered.
    RegisterSpu {
        #[arg(long, env = "CLICKSTREAM_FLUVIO_SC", default_value = "127.0.0.1:9003")]
        fluvio_sc: String,
        #[arg(long, default_value_t = 5001)]
        id: i32,
        /// Where clients reach the SPU, HOST:PORT.
        #[arg(long)]
        public: String,
        /// Where the SC reaches the SPU, HOST:PORT.
        #[arg(long)]
        private: String,
    },
}

fn host_port(addr: &str) -> anyhow::Result<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':').with_context(|| format!("{addr:?} is not HOST:PORT"))?;
    Ok((host, port.parse().with_context(|| format!("{addr:?}: bad port"))?))
}

#[derive(Args, Clone)]
struct Common {
    /// Data directory (log, Parquet tables, state).
    #[arg(long, env = "CLICKSTREAM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Optional TOML config file; flags and environment override it.
    #[arg(long, env = "CLICKSTREAM_CONFIG")]
    config: Option<PathBuf>,
    /// The stream: `embedded` (the durable log in the data directory) or `fluvio`.
    #[arg(long, env = "CLICKSTREAM_STREAM", value_parser = ["embedded", "fluvio"])]
    stream: Option<String>,
    /// The Fluvio SC's address, HOST:PORT (implies --stream fluvio).
    #[arg(long, env = "CLICKSTREAM_FLUVIO_SC")]
    fluvio_sc: Option<String>,
}

impl Common {
    /// The Fluvio settings when the stream is Fluvio, `None` for the embedded log.
    fn fluvio(&self, file: &FileConfig) -> anyhow::Result<Option<FluvioSettings>> {
        let kind = self.stream.clone().or(file.stream.clone());
        let fluvio = match kind.as_deref() {
            Some("fluvio") => true,
            Some("embedded") => false,
            Some(other) => anyhow::bail!("stream must be \"embedded\" or \"fluvio\", got {other:?}"),
            None => self.fluvio_sc.is_some(),
        };
        if !fluvio {
            return Ok(None);
        }
        let partitions = file.partitions.unwrap_or(4);
        Ok(Some(file.fluvio.clone().unwrap_or_default().settings(self.fluvio_sc.clone(), partitions)?))
    }
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Port to listen on (default 8080; 0 picks a free one).
    #[arg(long, env = "CLICKSTREAM_PORT")]
    port: Option<u16>,
    /// Address to listen on (default 127.0.0.1).
    #[arg(long, env = "CLICKSTREAM_BIND")]
    bind: Option<String>,
    /// Do not run the aggregator in this process.
    #[arg(long)]
    no_aggregate: bool,
    /// Shared secret for signed `/ingest` requests from the edge Worker.
    #[arg(long, env = "CLICKSTREAM_INGEST_SECRET", hide_env_values = true)]
    ingest_secret: Option<String>,
    /// Accept unsigned `/ingest` requests (local use only).
    #[arg(long)]
    allow_unsigned_ingest: bool,
    /// The header trusted proxies give the client IP in (e.g. x-forwarded-for).
    #[arg(long, env = "CLICKSTREAM_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// Serve `/metrics` and `/health` on this address too, e.g. 10.0.0.5:9100.
    #[arg(long, env = "CLICKSTREAM_ADMIN_BIND")]
    admin_bind: Option<String>,
    /// Largest accepted batch body, bytes (default 1 MiB).
    #[arg(long)]
    max_body_bytes: Option<usize>,
}

#[derive(Args, Clone)]
struct AggregateArgs {
    #[command(flatten)]
    common: Common,
    /// Drain what the log holds, commit, and exit.
    #[arg(long)]
    once: bool,
    /// Own only these partitions, e.g. `0,2` (default: all). Each partition
    /// has one consumer; run `clickstream gold` beside them for Gold.
    #[arg(long, value_delimiter = ',')]
    partitions: Option<Vec<u32>>,
}

#[derive(Args, Clone)]
struct GoldArgs {
    #[command(flatten)]
    common: Common,
    /// Fold in what the consumers committed, and exit.
    #[arg(long)]
    once: bool,
}

#[derive(Args, Clone)]
struct ReplayArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Clone)]
struct GenerateArgs {
    /// Collector base URL (…/v1/batch is appended) or full endpoint URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Events per second; as fast as possible when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many events (default: until Ctrl-C).
    #[arg(long)]
    events: Option<u64>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write every event sent as NDJSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value = "shop-1")]
    site_id: String,
    /// Events per batch (the tracker sends at most 20).
    #[arg(long, default_value_t = 20)]
    batch_size: usize,
    /// Concurrent HTTP senders.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Share of events deliberately malformed.
    #[arg(long, default_value_t = 0.01)]
    malformed_share: f64,
    /// Share of batches sent twice (a retry after a lost response).
    #[arg(long, default_value_t = 0.02)]
    duplicate_share: f64,
}

#[derive(Args, Clone)]
struct DemoArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "CLICKSTREAM_PORT")]
    port: Option<u16>,
    /// Synthetic events per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let settings = serve_settings(&args)?;
                serve(settings, stop_on_signal(), None).await
            }
            Command::Aggregate(args) => run_aggregate(args).await,
            Command::Gold(args) => run_gold(args).await,
            Command::Generate(args) => run_generate(args).await,
            Command::Demo(args) => {
                let serve_args = ServeArgs {
                    common: args.common.clone(),
                    port: args.port,
                    bind: None,
                    no_aggregate: false,
                    ingest_secret: None,
                    allow_unsigned_ingest: false,
                    client_ip_header: None,
                    admin_bind: None,
                    max_body_bytes: None,
                };
                let mut settings = serve_settings(&serve_args)?;
                // The demo is for one person on their own machine: open,
                // with its shop, and its generator unthrottled.
                settings.open_access = true;
                settings.guard = CollectGuard { origins: settings.guard.origins.clone(), ..CollectGuard::unlimited() };
                settings.site_dir = settings.site_dir.or_else(default_site_dir);
                demo::run(settings, args.rate, args.seed, stop_on_signal()).await
            }
            Command::Query(args) => {
                let mut df = query::run(&args.data_dir, &args.sql)?;
                query::write(&mut df, args.format, args.output.as_deref())?;
                Ok(())
            }
            Command::Replay(args) => run_replay(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Token(TokenCommand::New) => {
                let token = clickstream_backend::secrets::random_token();
                println!("token:       {token}\nconfig line: api_tokens = [\"{}\"]", token_hash_line(&token));
                Ok(())
            }
            Command::Token(TokenCommand::Hash) => {
                let mut token = String::new();
                std::io::stdin().read_line(&mut token).context("reading the token from standard input")?;
                parse_token(token.trim()).map_err(anyhow::Error::msg)?;
                println!("{}", token_hash_line(token.trim()));
                Ok(())
            }
            Command::Fluvio(FluvioCommand::RegisterSpu { fluvio_sc, id, public, private }) => {
                let created =
                    clickstream_backend::stream::register_spu(&fluvio_sc, id, host_port(&public)?, host_port(&private)?).await?;
                println!("SPU {id} {} at {fluvio_sc} (public {public}, private {private})", if created { "registered" } else { "was already registered" });
                Ok(())
            }
        }
    })
}

fn init_logging(json: bool) {
    // The Fluvio client logs every stream it opens at info.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,fluvio=warn,fluvio_socket=warn,fluvio_future=warn,fluvio_protocol=warn")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve_settings(args: &ServeArgs) -> anyhow::Result<ServeSettings> {
    let file = FileConfig::load(args.common.config.as_deref())?;
    let data_dir = args.common.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"));
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut s = ServeSettings::new(&data_dir);
    s.port = args.port.or(file.port).unwrap_or(8080);
    s.bind = args.bind.clone().or(file.bind.clone()).unwrap_or_else(|| "127.0.0.1".into());
    s.partitions = file.partitions.unwrap_or(4);
    s.fluvio = args.common.fluvio(&file)?;
    if let Some(n) = args.max_body_bytes.or(file.max_body_bytes) {
        s.limits.max_body_bytes = n;
    }
    if let Some(n) = file.max_events_per_batch {
        s.limits.max_events = n;
    }
    if let Some(h) = file.horizon_hours {
        s.limits.horizon_ms = h * 3_600_000;
    }
    s.ip_salt_secret = std::env::var("CLICKSTREAM_IP_SALT_SECRET")
        .ok()
        .or(file.ip_salt_secret.clone())
        .filter(|secret| !secret.is_empty())
        .map(|secret| Redacted(secret.into_bytes()));
    let mut secrets: Vec<Vec<u8>> = args.ingest_secret.iter().chain(&file.ingest_secret).cloned().map(String::into_bytes).collect();
    secrets.truncate(1); // the flag or environment wins over the file's
    let previous = std::env::var("CLICKSTREAM_INGEST_SECRET_PREVIOUS").ok();
    secrets.extend(file.ingest_secrets.iter().chain(&previous).cloned().map(String::into_bytes));
    secrets.retain(|s| !s.is_empty());
    s.ingest_auth = match (secrets.is_empty(), args.allow_unsigned_ingest || file.allow_unsigned_ingest.unwrap_or(false)) {
        (false, _) => IngestAuth::Signed(secrets.into_iter().map(Redacted).collect()),
        (true, true) => IngestAuth::Unsigned,
        (true, false) => IngestAuth::Disabled,
    };
    s.api_tokens = tokens("api_tokens", &file.api_tokens, "CLICKSTREAM_API_TOKENS")?;
    s.metrics_tokens = tokens("metrics_tokens", &file.metrics_tokens, "CLICKSTREAM_METRICS_TOKENS")?;
    s.admin_bind = args.admin_bind.clone().or(file.admin_bind.clone());
    s.guard = collect_guard(&file, args.client_ip_header.clone())?;
    let ms = |v: Option<u64>, default: std::time::Duration| v.map(std::time::Duration::from_millis).unwrap_or(default);
    s.connections.header_timeout = ms(file.header_timeout_ms, s.connections.header_timeout);
    s.connections.max_connections = file.max_connections.unwrap_or(s.connections.max_connections);
    s.country_header = Some(file.country_header.clone().unwrap_or_else(|| "cf-ipcountry".into()).to_ascii_lowercase());
    s.site_dir = file.site_dir.clone();
    let tracker_path = file.tracker_path.clone().unwrap_or_else(|| "/t".into());
    if !tracker_path.starts_with('/') || tracker_path.len() < 2 {
        anyhow::bail!("tracker_path must start with / and name a path, got {tracker_path:?}");
    }
    s.tracker = file.tracker_dir.clone().or_else(default_tracker_dir).map(|dir| (dir, tracker_path));
    if s.tracker.is_none() {
        tracing::info!("no built tracker (run scripts/build-tracker.sh); pages are served without it");
    }
    s.collect_path = file.collect_path.clone();
    if let Some(p) = s.collect_path.as_deref().filter(|p| !p.starts_with('/')) {
        anyhow::bail!("collect_path must start with /, got {p:?}");
    }
    s.aggregate = if args.no_aggregate { None } else { Some(aggregate_config(&data_dir, &file)) };
    s.alerts = file.alerts.clone();
    s.alerting = file.alerting.clone().unwrap_or_default();
    if let Some(currency) = file.currency.clone() {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            anyhow::bail!("currency must be an ISO 4217 code like \"EUR\", got {currency:?}");
        }
        s.currency = currency;
    }
    Ok(s)
}

/// Tokens from the config file and a comma-separated environment variable.
fn tokens(key: &str, file: &[String], env: &str) -> anyhow::Result<Vec<[u8; 32]>> {
    let from_env = std::env::var(env).unwrap_or_default();
    file.iter()
        .map(String::as_str)
        .chain(from_env.split(',').filter(|t| !t.trim().is_empty()))
        .map(|t| parse_token(t).map_err(|e| anyhow::anyhow!("{key} (or {env}): {e}")))
        .collect()
}

/// The collect routes' defences from the config file and environment.
fn collect_guard(file: &FileConfig, client_ip_header: Option<String>) -> anyhow::Result<CollectGuard> {
    let mut guard = CollectGuard::default();
    if let Ok(json) = std::env::var("CLICKSTREAM_ALLOWED_ORIGINS") {
        guard.origins = edge_worker::edge::AllowedOrigins::parse(&json).map_err(|e| anyhow::anyhow!("CLICKSTREAM_{e}"))?;
    } else if let Some(origins) = &file.allowed_origins {
        guard.origins = origins.clone();
    }
    for (site, site_tokens) in &file.site_tokens {
        let hashes = site_tokens
            .iter()
            .map(|t| parse_token(t).map_err(|e| anyhow::anyhow!("site_tokens.{site}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        guard.site_tokens.insert(site.clone(), hashes);
    }
    let proxies = std::env::var("CLICKSTREAM_TRUSTED_PROXIES")
        .ok()
        .map(|v| v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect::<Vec<_>>())
        .or(file.trusted_proxies.clone());
    let header = client_ip_header.or(file.client_ip_header.clone());
    guard.proxies = match proxies {
        Some(list) => TrustedProxies::parse(&list, header).map_err(anyhow::Error::msg)?,
        None => TrustedProxies::parse(&["127.0.0.0/8".into(), "::1".into()], header).map_err(anyhow::Error::msg)?,
    };
    guard.per_client_per_minute = file.rate_limit_per_minute.unwrap_or(guard.per_client_per_minute);
    guard.per_site_events_per_minute = file.site_events_per_minute.unwrap_or(guard.per_site_events_per_minute);
    if let Some(ms) = file.ack_timeout_ms {
        guard.ack_timeout = std::time::Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = file.body_timeout_ms {
        guard.body_timeout = std::time::Duration::from_millis(ms.max(1));
    }
    Ok(guard)
}

fn aggregate_config(data_dir: &std::path::Path, file: &FileConfig) -> AggregateConfig {
    let mut c = AggregateConfig::new(data_dir);
    if let Some(a) = &file.aggregate {
        if let Some(ms) = a.poll_interval_ms {
            c.poll_interval = std::time::Duration::from_millis(ms);
        }
        if let Some(n) = a.max_records_per_partition {
            c.max_records_per_partition = n;
        }
        if let Some(h) = a.dedup_retention_hours {
            c.dedup_retention_ms = h * 3_600_000;
        }
        if let Some(m) = a.session_gap_minutes {
            c.gold.get_or_insert_with(Default::default).session_gap_ms = m * 60_000;
        }
        if let Some(m) = a.allowed_lateness_minutes {
            c.gold.get_or_insert_with(Default::default).allowed_lateness_ms = m * 60_000;
        }
        if let Some(n) = a.bot_events_per_minute {
            c.gold.get_or_insert_with(Default::default).bot_events_per_minute = n;
        }
    }
    c
}

async fn run_aggregate(args: AggregateArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.common.config.as_deref())?;
    let data_dir = args.common.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"));
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let stream = open_stream(&data_dir, file.partitions.unwrap_or(4), args.common.fluvio(&file)?).await?;
    let metrics = Arc::new(Metrics::new());
    let mut config = aggregate_config(&data_dir, &file);
    config.partitions = args.partitions.clone();
    let mut agg = Aggregator::open(stream, config, metrics, Arc::new(SystemClock)).await?;
    if args.once {
        let r = agg.drain().await?;
        let t = &agg.manifest().totals;
        println!(
            "drained: {} events read, {} Silver rows, {} duplicates dropped, {} rejects, {} files (totals: Silver {}, rejects {})",
            r.events_read, r.silver_rows, r.duplicates, r.reject_rows, r.files, t.silver_rows, t.reject_rows
        );
        return Ok(());
    }
    agg.run(stop_on_signal()).await?;
    Ok(())
}

async fn run_gold(args: GoldArgs) -> anyhow::Result<()> {
    use clickstream_backend::gold::follow::GoldFollower;
    let file = FileConfig::load(args.common.config.as_deref())?;
    let data_dir = args.common.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"));
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let config = aggregate_config(&data_dir, &file);
    let gold = config.gold.unwrap_or_default();
    let mut follower = GoldFollower::open(&data_dir, gold, Arc::new(SystemClock))?;
    if args.once {
        let mut total = 0;
        loop {
            let r = tokio::task::block_in_place(|| follower.step())?;
            if r.commits == 0 {
                break;
            }
            total += r.silver_rows;
        }
        println!("Gold: folded in {total} Silver rows; consumers followed: {:?}", follower.manifest().gold_inputs);
        return Ok(());
    }
    follower.run(config.poll_interval, stop_on_signal()).await?;
    Ok(())
}

async fn run_replay(args: ReplayArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.common.config.as_deref())?;
    let data_dir = args.common.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"));
    anyhow::ensure!(data_dir.exists(), "no data directory at {}", data_dir.display());
    let consumers = clickstream_backend::storage::Role::consumers(&data_dir);
    anyhow::ensure!(
        consumers.is_empty(),
        "{} was written by partition consumers ({}); replay rebuilds the layout of one aggregator only",
        data_dir.display(),
        consumers.iter().map(|r| r.tag()).collect::<Vec<_>>().join(", ")
    );
    // Holding the log's lock proves no serve/aggregate is writing meanwhile.
    let _log = open_log(&data_dir, file.partitions.unwrap_or(4)).context(
        "could not open the embedded log: stop `clickstream serve` / `aggregate` on this data directory before replaying",
    )?;
    let config = aggregate_config(&data_dir, &file);
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("replay {bar:40} {pos}/{len} Bronze files, {elapsed} elapsed, ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = tokio::task::spawn_blocking({
        let bar = bar.clone();
        move || {
            clickstream_backend::replay::replay(&config, &mut |done, all| {
                bar.set_length(all as u64);
                bar.set_position(done as u64);
            })
        }
    })
    .await??;
    bar.finish_and_clear();
    println!(
        "replayed {} Bronze files ({} done before): {} Bronze rows → {} Silver rows ({} duplicates), {} Gold files written",
        report.bronze_files, report.resumed_after, report.bronze_rows, report.silver_rows, report.duplicates, report.gold_files
    );
    Ok(())
}

async fn run_generate(args: GenerateArgs) -> anyhow::Result<()> {
    let opts = generate::GenerateOptions {
        target: args.target,
        rate: args.rate,
        events: args.events,
        seed: args.seed,
        out: args.out,
        site_id: args.site_id,
        batch_size: args.batch_size,
        concurrency: args.concurrency,
        malformed_share: args.malformed_share,
        duplicate_share: args.duplicate_share,
        ..generate::GenerateOptions::default()
    };
    let report = generate::run(opts, stop_on_signal()).await?;
    println!(
        "sent {} events ({} distinct valid, {} malformed) in {} batches ({} sent twice, {} retries, {} failed) in {:.1}s",
        report.events,
        report.valid_distinct,
        report.malformed,
        report.batches,
        report.duplicate_batches,
        report.retries,
        report.failed_batches,
        report.elapsed.as_secs_f64()
    );
    if report.failed_batches > 0 {
        anyhow::bail!("{} batches were refused by the collector", report.failed_batches);
    }
    Ok(())
}
