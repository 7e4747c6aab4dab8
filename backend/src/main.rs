//! `clickstream`: the backend binary. Each subcommand is thin: it resolves
//! its settings (`clickstream_backend::settings`), then calls the library.

use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use clickstream_backend::aggregate::Aggregator;
use clickstream_backend::clock::SystemClock;
use clickstream_backend::metrics::Metrics;
use clickstream_backend::serve::{open_log, open_stream, serve, stop_on_signal};
use clickstream_backend::server::auth::{parse_token, token_hash_line};
use clickstream_backend::settings::{defaults, process_env, CommandFlags, CommonFlags, Flags, ServeFlags, Settings};
use clickstream_backend::{bench, demo, generate, query};

// Polars and the JSON decoding of stream records allocate many small
// buffers; glibc's malloc dominated the aggregator's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "clickstream",
    version,
    about = "Real-time clickstream analytics: collect, stream, refine to Parquet."
)]
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
    Generate(generate::GenerateArgs),
    /// Run the whole pipeline locally with traffic flowing, and print where to look.
    Demo(DemoArgs),
    /// Run SQL over the tables (Silver, rejects, every Gold table).
    Query(query::QueryArgs),
    /// Rebuild Silver and Gold from Bronze (after a rule change); resumable.
    Replay(ReplayArgs),
    /// Merge the final partitions of Bronze, Silver and rejects into one file
    /// each (`serve` and `aggregate` also do it every `maintenance_every_minutes`).
    Compact(ReplayArgs),
    /// Remove the days each layer no longer keeps (`[retention]`) and trim the
    /// embedded log below every consumer's committed position.
    Expire(ReplayArgs),
    /// Remove one person's data (GDPR/CCPA deletion request): their rows in
    /// Bronze, Silver and rejects, their records in the embedded log, and
    /// what they contributed to Gold. Stop `serve`/`aggregate` first.
    Forget(ForgetArgs),
    /// Measure throughput and peak memory.
    Bench(bench::BenchArgs),
    /// Set up a Fluvio cluster for the backend.
    #[command(subcommand)]
    Fluvio(FluvioCommand),
    /// API tokens for the dashboard, `/api/*` and `/metrics`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Exit 0 when a running `serve` answers `/health` (the container's
    /// HEALTHCHECK: the image has no curl).
    Health(HealthArgs),
}

#[derive(Args)]
struct HealthArgs {
    /// The URL to ask [default: http://127.0.0.1:$CLICKSTREAM_PORT/health, port 8080 when unset]
    #[arg(long)]
    url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout_seconds: u64,
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
        #[arg(long, env = "CLICKSTREAM_FLUVIO_SC", default_value = defaults::FLUVIO_SC)]
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

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten)]
    serve: ServeFlags,
}

#[derive(Args, Clone)]
struct AggregateArgs {
    #[command(flatten)]
    common: CommonFlags,
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
    common: CommonFlags,
    /// Fold in what the consumers committed, and exit.
    #[arg(long)]
    once: bool,
    /// Build Gold from the whole of Silver in a scratch directory, compare
    /// it with the live Gold table by table, row by row, and exit non-zero
    /// if any differs (run it once the pipeline has drained).
    #[arg(long, conflicts_with = "once")]
    rebuild: bool,
    /// Where `--rebuild` builds (default DATA_DIR/_state/gold-rebuild).
    #[arg(long, requires = "rebuild")]
    into: Option<std::path::PathBuf>,
    /// Keep the rebuilt data directory instead of removing it.
    #[arg(long, requires = "rebuild")]
    keep: bool,
    /// Compute these window tables again from all of Silver with the
    /// config's goals and props, e.g. `goals_1h,custom_events_1h` after
    /// adding a goal; other tables are left alone. Stop `serve`/`aggregate`
    /// first.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["once", "rebuild"])]
    recompute: Vec<String>,
}

#[derive(Args, Clone)]
struct ReplayArgs {
    #[command(flatten)]
    common: CommonFlags,
}

#[derive(Args, Clone)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["visitor", "user"])))]
struct ForgetArgs {
    #[command(flatten)]
    common: CommonFlags,
    /// The site whose data the person asks to be removed from.
    #[arg(long)]
    site: String,
    /// The visitor's anonymous id (the tracker's `anonymous_id`).
    #[arg(long)]
    visitor: Option<String>,
    /// The site's user id (`user_id`) of a signed-in person.
    #[arg(long)]
    user: Option<String>,
}

#[derive(Args, Clone)]
struct DemoArgs {
    #[command(flatten)]
    common: CommonFlags,
    /// Port to listen on (default 8080; 0 picks a free one) [env: CLICKSTREAM_PORT]
    #[arg(long)]
    port: Option<u16>,
    /// Synthetic events per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    // mimalloc asks the kernel for transparent huge pages on its arenas, so
    // each first touch of memory zeroes 2 MiB. Polars' buffers come and go
    // by the hundred MiB per micro-batch, and zeroing pages was a quarter
    // of the CPU of log → Silver (perf); without huge pages the same bench
    // used 5.7-5.8 CPU-seconds instead of 6.5-6.8, and less memory.
    // (mimalloc's own switch is read before main runs; this one applies to
    // every later fault.)
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("note: could not turn transparent huge pages off ({e}); carrying on");
    }
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let settings = settings(args.common, CommandFlags::Serve(args.serve))?;
                settings.require_local("serve")?;
                settings.create_data_dir()?;
                serve(settings.into_server()?, stop_on_signal(), None).await
            }
            Command::Aggregate(args) => {
                let settings = settings(args.common, CommandFlags::Aggregate { partitions: args.partitions })?;
                run_aggregate(settings, args.once).await
            }
            Command::Gold(args) if args.rebuild => {
                let settings = settings(args.common, CommandFlags::Gold)?;
                settings.require_local("gold --rebuild")?;
                run_gold_rebuild(settings, args.into, args.keep).await
            }
            Command::Gold(args) if !args.recompute.is_empty() => {
                run_gold_recompute(settings(args.common, CommandFlags::Gold)?, &args.recompute).await
            }
            Command::Gold(args) => run_gold(settings(args.common, CommandFlags::Gold)?, args.once).await,
            Command::Generate(args) => run_generate(args.into()).await,
            Command::Demo(args) => {
                let settings = settings(args.common, CommandFlags::Demo { port: args.port })?;
                settings.require_local("demo")?;
                settings.create_data_dir()?;
                demo::run(settings.into_server()?, args.rate, args.seed, stop_on_signal()).await
            }
            Command::Query(args) => {
                let mut df = query::run(&args.data_dir, &args.sql)?;
                query::write(&mut df, args.format, args.output.as_deref())?;
                Ok(())
            }
            Command::Replay(args) => {
                let settings = settings(args.common, CommandFlags::Replay)?;
                settings.require_local("replay")?;
                run_replay(settings).await
            }
            Command::Compact(args) => {
                let settings = settings(args.common, CommandFlags::Compact)?;
                settings.require_local("compact")?;
                run_compact(settings).await
            }
            Command::Expire(args) => {
                let settings = settings(args.common, CommandFlags::Compact)?;
                settings.require_local("expire")?;
                run_expire(settings).await
            }
            Command::Forget(args) => {
                use clickstream_backend::forget::{ForgetRequest, Subject};
                let subject = match (args.visitor, args.user) {
                    (Some(visitor), None) => Subject::Visitor(visitor),
                    (None, Some(user)) => Subject::User(user),
                    _ => anyhow::bail!("give one of --visitor and --user"),
                };
                let request = ForgetRequest { site_id: args.site, subject };
                let settings = settings(args.common, CommandFlags::Compact)?;
                settings.require_local("forget")?;
                run_forget(settings, request).await
            }
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
            Command::Health(args) => check_health(args).await,
            Command::Fluvio(FluvioCommand::RegisterSpu { fluvio_sc, id, public, private }) => {
                let created = clickstream_backend::stream::register_spu(
                    &fluvio_sc,
                    id,
                    host_port(&public)?,
                    host_port(&private)?,
                )
                .await?;
                println!(
                    "SPU {id} {} at {fluvio_sc} (public {public}, private {private})",
                    if created { "registered" } else { "was already registered" }
                );
                Ok(())
            }
        }
    })
}

/// The command's settings from its flags, the process environment and the config file.
fn settings(common: CommonFlags, command: CommandFlags) -> anyhow::Result<Settings> {
    Settings::load(&Flags { common, command }, &process_env)
}

fn host_port(addr: &str) -> anyhow::Result<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':').with_context(|| format!("{addr:?} is not HOST:PORT"))?;
    Ok((host, port.parse().with_context(|| format!("{addr:?}: bad port"))?))
}

fn init_logging(json: bool) {
    // The Fluvio client logs every stream it opens at info.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,fluvio=warn,fluvio_socket=warn,fluvio_future=warn,fluvio_protocol=warn",
        )
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn check_health(args: HealthArgs) -> anyhow::Result<()> {
    let url = match args.url {
        Some(url) => url,
        None => {
            let port = std::env::var("CLICKSTREAM_PORT").ok().filter(|p| !p.is_empty());
            format!("http://127.0.0.1:{}/health", port.as_deref().unwrap_or("8080"))
        }
    };
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(args.timeout_seconds)).build()?;
    let response = client.get(&url).send().await.with_context(|| format!("no answer from {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
    println!("{url}: {status} {body}");
    Ok(())
}

async fn run_aggregate(settings: Settings, once: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.fluvio.is_some() || !clickstream_backend::storage::lake::is_remote(&settings.data_dir),
        "an s3:// data directory needs a stream every consumer reaches (stream = \"fluvio\"): the embedded log \
         is a file of one machine's data directory"
    );
    settings.create_data_dir()?;
    let stream = open_stream(&settings.data_dir, settings.partitions, settings.fluvio).await?;
    let metrics = Arc::new(Metrics::new());
    let mut agg = Aggregator::open(stream, settings.aggregate, metrics, Arc::new(SystemClock)).await?;
    if once {
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

async fn run_gold(settings: Settings, once: bool) -> anyhow::Result<()> {
    use clickstream_backend::gold::follow::GoldFollower;
    settings.create_data_dir()?;
    let gold = settings.aggregate.gold.unwrap_or_default();
    let mut follower = GoldFollower::open(&settings.data_dir, gold, Arc::new(SystemClock))?;
    if once {
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
    follower.run(settings.aggregate.poll_interval, stop_on_signal()).await?;
    Ok(())
}

async fn run_gold_rebuild(settings: Settings, into: Option<std::path::PathBuf>, keep: bool) -> anyhow::Result<()> {
    use clickstream_backend::gold::rebuild::{default_scratch, rebuild_and_compare};

    let data_dir = settings.data_dir.clone();
    anyhow::ensure!(data_dir.exists(), "no data directory at {}", data_dir.display());
    let scratch = into.unwrap_or_else(|| default_scratch(&data_dir));
    let config = settings.aggregate.gold.unwrap_or_default();
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "rebuild Gold {bar:40} {pos}/{len} Silver hours, {elapsed} elapsed, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = tokio::task::spawn_blocking({
        let (bar, scratch) = (bar.clone(), scratch.clone());
        move || {
            rebuild_and_compare(&data_dir, &scratch, &config, &mut |done, all| {
                bar.set_length(all as u64);
                bar.set_position(done as u64);
            })
        }
    })
    .await?;
    bar.finish_and_clear();
    let cleanup = || {
        if !keep {
            let _ = std::fs::remove_dir_all(&scratch);
        }
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            cleanup();
            return Err(e.into());
        }
    };
    println!(
        "rebuilt Gold from {} Silver files ({} linked, {} copied): {} Gold files{}",
        report.silver_files,
        report.linked,
        report.copied,
        report.gold_files,
        if keep { format!(", kept in {}", scratch.display()) } else { String::new() }
    );
    for table in &report.tables {
        println!("{table}");
        for (side, sample) in [("live", &table.sample_live), ("rebuilt", &table.sample_rebuilt)] {
            if let Some(rows) = sample {
                println!("  some rows only {side}:\n{rows}");
            }
        }
    }
    cleanup();
    let differing = report.differing_tables();
    anyhow::ensure!(differing == 0, "{differing} Gold tables differ from a rebuild from Silver");
    println!("every Gold table equals its rebuild from Silver");
    Ok(())
}

async fn run_gold_recompute(settings: Settings, names: &[String]) -> anyhow::Result<()> {
    use clickstream_backend::gold::refresh::{recompute, FROM_SESSIONS, RECOMPUTABLE};
    use clickstream_backend::gold::GoldTable;
    use clickstream_backend::storage::lock::Ownership;
    use clickstream_backend::storage::{Manifest, Role};

    let data_dir = settings.data_dir.clone();
    anyhow::ensure!(data_dir.exists(), "no data directory at {}", data_dir.display());
    let tables = names
        .iter()
        .map(|name| {
            let known = || RECOMPUTABLE.iter().chain(&FROM_SESSIONS).map(|t| t.name()).collect::<Vec<_>>().join(", ");
            match GoldTable::from_name(name.trim()) {
                Some(t) if RECOMPUTABLE.contains(&t) || FROM_SESSIONS.contains(&t) => Ok(t),
                Some(_) => Err(anyhow::anyhow!(
                    "--recompute: {name} depends on all of Silver, so it cannot be recomputed alone \
                     (`clickstream replay` rebuilds every table); these can: {}",
                    known()
                )),
                None => {
                    Err(anyhow::anyhow!("--recompute: no Gold table {name:?}; these can be recomputed: {}", known()))
                }
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let consumers = Role::consumers(&data_dir);
    anyhow::ensure!(
        consumers.is_empty(),
        "{} is written by partition consumers; --recompute updates the layout of one aggregator only",
        data_dir.display()
    );
    let partitions: Vec<u32> = (0..settings.partitions).collect();
    let _claim = Ownership::claim(&data_dir, &partitions, true)
        .map_err(|e| anyhow::anyhow!("{e}; stop `clickstream serve` / `aggregate` before recomputing Gold tables"))?;
    let (manifest, _) = Manifest::recover(&data_dir)?;
    let config = settings.aggregate.gold.unwrap_or_default();
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "recompute {bar:40} {pos}/{len} Silver hours, {elapsed} elapsed, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (result, bar) = tokio::task::spawn_blocking({
        let tables = tables.clone();
        move || {
            let result = recompute(&data_dir, manifest, &config, &tables, &mut |done, all| {
                bar.set_length(all as u64);
                bar.set_position(done as u64);
            });
            (result, bar)
        }
    })
    .await?;
    bar.finish_and_clear();
    let (manifest, files) = result?;
    let names: Vec<&str> = tables.iter().map(|t| t.name()).collect();
    println!("recomputed {} from Silver: {files} Gold files in commit #{}", names.join(", "), manifest.seq);
    Ok(())
}

async fn run_replay(settings: Settings) -> anyhow::Result<()> {
    let data_dir = &settings.data_dir;
    anyhow::ensure!(data_dir.exists(), "no data directory at {}", data_dir.display());
    let consumers = clickstream_backend::storage::Role::consumers(data_dir);
    anyhow::ensure!(
        consumers.is_empty(),
        "{} was written by partition consumers ({}); replay rebuilds the layout of one aggregator only",
        data_dir.display(),
        consumers.iter().map(clickstream_backend::storage::Role::tag).collect::<Vec<_>>().join(", ")
    );
    // Holding the log's lock proves no serve/aggregate is writing meanwhile.
    let _log = open_log(data_dir, settings.partitions).context(
        "could not open the embedded log: stop `clickstream serve` / `aggregate` on this data directory before replaying",
    )?;
    let config = settings.aggregate;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "replay {bar:40} {pos}/{len} Bronze files, {elapsed} elapsed, ETA {eta}",
        )
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

async fn run_compact(settings: Settings) -> anyhow::Result<()> {
    use clickstream_backend::storage::compact::{compact, Finality};
    use clickstream_backend::storage::lock::Ownership;
    use clickstream_backend::storage::{Manifest, Role};

    let data_dir = settings.data_dir.clone();
    anyhow::ensure!(data_dir.exists(), "no data directory at {}", data_dir.display());
    let consumers = Role::consumers(&data_dir);
    anyhow::ensure!(
        consumers.is_empty(),
        "{} is shared by partition consumers ({}): the Gold role follows their files by name, so it is not compacted",
        data_dir.display(),
        consumers.iter().map(Role::tag).collect::<Vec<_>>().join(", ")
    );
    // Compaction swaps whole partition directories: no aggregator may be
    // writing into them meanwhile.
    let partitions: Vec<u32> = (0..settings.partitions).collect();
    let _claim = Ownership::claim(&data_dir, &partitions, true).map_err(|e| {
        anyhow::anyhow!("{e}; `serve` and `aggregate` compact on their own every maintenance_every_minutes")
    })?;
    let (mut manifest, _) = Manifest::recover(&data_dir)?;
    clickstream_backend::storage::compact::recover(&data_dir)?;
    let lateness = settings.aggregate.gold.unwrap_or_default().allowed_lateness_ms;
    let finality = Finality {
        now_ms: clickstream_backend::clock::Clock::now_ms(&SystemClock),
        watermark_ms: manifest.max_event_ts.map(|t| t - lateness),
    };
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "compact {bar:40} {pos}/{len} partitions, {elapsed} elapsed, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = tokio::task::spawn_blocking({
        let bar = bar.clone();
        move || {
            compact(&data_dir, &mut manifest, finality, &mut |done, all| {
                bar.set_length(all as u64);
                bar.set_position(done as u64);
            })
        }
    })
    .await??;
    bar.finish_and_clear();
    println!("compacted {report}; {} partitions with several files are not final yet", report.skipped);
    Ok(())
}

async fn run_expire(settings: Settings) -> anyhow::Result<()> {
    use clickstream_backend::storage::lock::Ownership;
    use clickstream_backend::storage::retention::expire;

    let data_dir = settings.data_dir.clone();
    anyhow::ensure!(data_dir.exists(), "no data directory at {}", data_dir.display());
    let partitions: Vec<u32> = (0..settings.partitions).collect();
    let _claim = Ownership::claim(&data_dir, &partitions, true).map_err(|e| {
        anyhow::anyhow!("{e}; `serve` and `aggregate` expire on their own every maintenance_every_minutes")
    })?;
    let retention = settings.aggregate.retention;
    let now = clickstream_backend::clock::Clock::now_ms(&SystemClock);
    let report = tokio::task::spawn_blocking(move || expire(&data_dir, &retention, now)).await??;
    if retention.is_forever() {
        println!("no [retention] limits are set: every layer is kept forever");
    } else if report.days_removed.is_empty() {
        println!("no day is older than its layer keeps");
    } else {
        let list: Vec<String> = report.days_removed.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        println!(
            "removed {} expired days ({}), {:.1} MB; they stay readable under _state/compact for 10 minutes",
            report.total_days(),
            list.join(", "),
            report.bytes_removed as f64 / 1e6
        );
    }
    // With Fluvio there is no log here: the cluster keeps its own retention.
    if settings.data_dir.join("log").exists() {
        let log = clickstream_backend::stream::EmbeddedLog::open(&settings.data_dir.join("log"), settings.partitions)
            .context("cannot open the embedded log (is `clickstream serve` running on this data directory?)")?;
        let trimmed = tokio::task::spawn_blocking(move || log.trim_to_committed()).await??;
        println!("trimmed {trimmed} log records every consumer has committed past");
    }
    Ok(())
}

async fn run_forget(settings: Settings, request: clickstream_backend::forget::ForgetRequest) -> anyhow::Result<()> {
    use clickstream_backend::storage::lock::Ownership;

    let data_dir = settings.data_dir.clone();
    anyhow::ensure!(data_dir.exists(), "no data directory at {}", data_dir.display());
    let partitions: Vec<u32> = (0..settings.partitions).collect();
    // Rewriting files and the log under a running aggregator would race
    // its commits; the claim proves none runs.
    let _claim = Ownership::claim(&data_dir, &partitions, true)
        .map_err(|e| anyhow::anyhow!("{e}; stop `clickstream serve` / `aggregate` before forgetting anyone"))?;
    let spinner = indicatif::ProgressBar::new_spinner().with_message("forgetting: rewriting files, log and Gold");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let config = settings.aggregate;
    let now = clickstream_backend::clock::Clock::now_ms(&SystemClock);
    let report = tokio::task::spawn_blocking(move || clickstream_backend::forget::forget(&config, &request, now))
        .await?
        .context("the forget did not finish; running the same command again completes it")?;
    spinner.finish_and_clear();
    println!("{report}");
    if report.total_rows() == 0 && report.log_records_forgotten == 0 {
        println!("nothing of this person was found on site {}", report.site_id);
    }
    println!(
        "audit line appended to {} (request fingerprint {})",
        clickstream_backend::forget::audit_path(&data_dir).display(),
        report.fingerprint
    );
    if settings.fluvio.is_some() {
        println!(
            "note: records in the Fluvio topics cannot be edited; they stay until the topics' retention \
             expires them, and their event ids are kept as forgotten so they are never written again"
        );
    }
    Ok(())
}

async fn run_generate(options: generate::GenerateOptions) -> anyhow::Result<()> {
    let report = generate::run(options, stop_on_signal()).await?;
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
