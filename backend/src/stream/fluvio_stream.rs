//! The stream on a Fluvio cluster, for deployments one machine cannot
//! carry: several ingest replicas produce, several aggregate consumers each
//! read their own partitions (see `storage::Role`).
//!
//! - Topics are created if missing, with the configured partitions and
//!   replication; an existing topic keeps its own partition count.
//! - Records are keyed by `anonymous_id` and placed by the same
//!   [`partition_for`] the embedded log uses (a custom Fluvio partitioner),
//!   so a visitor's partition does not depend on which stream runs.
//! - `produce` returns only when Fluvio acknowledged every record, within a
//!   deadline: the ingest answers 503 otherwise and the sender retries (the
//!   Silver layer drops the duplicates a retry can make).
//! - Consumers read a partition from an explicit offset: the Parquet
//!   manifest is the source of truth of where each consumer is, so files
//!   and offsets never disagree. `commit` is kept in this process only
//!   (for the lag metric); nothing is stored in Fluvio's consumer offsets.
//! - When the cluster goes away, every call fails fast with
//!   `Unavailable` and the client is rebuilt with backoff.

use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fluvio::config::{TlsPaths, TlsPolicy};
use fluvio::consumer::{ConsumerConfigExtBuilder, RetryMode};
use fluvio::metadata::topic::TopicSpec;
use fluvio::{
    Compression, DeliverySemantic, Fluvio, FluvioClusterConfig, Offset, Partitioner, PartitionerConfig, RetryPolicy,
    RetryStrategy, TopicProducerConfigBuilder, TopicProducerPool,
};
use futures_util::StreamExt;

use super::{partition_for, EventStream, Fetched, Record, StreamError, Topic};

/// How to reach the cluster, and the topics' shape.
#[derive(Clone, Debug)]
pub struct FluvioSettings {
    /// The SC's public address, `host:port` (9003 by default).
    pub sc_addr: String,
    /// Partitions of each topic when this process creates it.
    pub partitions: u32,
    /// Replicas of each partition when this process creates the topics.
    pub replication: u32,
    /// Put before the topic names (`clickstream-events`, `clickstream-rejects`);
    /// tests use it to get topics of their own.
    pub topic_prefix: String,
    pub tls: FluvioTls,
    /// Producer batches up to this many bytes per partition.
    pub batch_bytes: usize,
    /// How long the producer waits to fill a batch.
    pub linger: Duration,
    pub compression: Compression,
    /// Longest wait for a connect, an acknowledgement or a fetch.
    pub timeout: Duration,
}

impl FluvioSettings {
    pub fn new(sc_addr: impl Into<String>) -> Self {
        FluvioSettings {
            sc_addr: sc_addr.into(),
            partitions: 4,
            replication: 1,
            topic_prefix: String::new(),
            tls: FluvioTls::Disabled,
            batch_bytes: 256 * 1024,
            linger: Duration::from_millis(5),
            compression: Compression::Lz4,
            timeout: Duration::from_secs(10),
        }
    }

    pub fn topic_name(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
    }
}

/// TLS to the cluster.
#[derive(Clone, Debug, Default)]
pub enum FluvioTls {
    #[default]
    Disabled,
    /// Encrypted, but the server's certificate is not checked (testing only).
    NoVerify,
    /// Mutual TLS: the client's certificate and key, checked against `ca_cert`
    /// for the server named `domain`.
    Verified { domain: String, ca_cert: PathBuf, cert: PathBuf, key: PathBuf },
}

impl FluvioTls {
    fn policy(&self) -> TlsPolicy {
        match self {
            FluvioTls::Disabled => TlsPolicy::Disabled,
            FluvioTls::NoVerify => TlsPolicy::Anonymous,
            FluvioTls::Verified { domain, ca_cert, cert, key } => TlsPolicy::from(TlsPaths {
                domain: domain.clone(),
                key: key.clone(),
                cert: cert.clone(),
                ca_cert: ca_cert.clone(),
            }),
        }
    }
}

/// The most bytes one fetch asks the SPU for.
const FETCH_MAX_BYTES: i32 = 64 * 1024 * 1024;

/// Places keyed records as the embedded log does.
struct SamePartitions;

impl Partitioner for SamePartitions {
    fn partition(&self, config: &PartitionerConfig, key: Option<&[u8]>, _value: &[u8]) -> u32 {
        partition_for(key.unwrap_or_default(), config.partition_count())
    }
}

/// A live client with a producer per topic.
struct Connection {
    fluvio: Fluvio,
    events: TopicProducerPool,
    rejects: TopicProducerPool,
}

impl Connection {
    fn producer(&self, topic: Topic) -> &TopicProducerPool {
        match topic {
            Topic::Events => &self.events,
            Topic::Rejects => &self.rejects,
        }
    }
}

/// When the next connect may be tried: doubling from 100 ms up to 5 s.
#[derive(Debug)]
struct Backoff {
    next_try: Option<Instant>,
    delay: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn failed(&mut self) {
        self.next_try = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(Self::MAX);
    }

    fn succeeded(&mut self) {
        self.next_try = None;
        self.delay = Self::FIRST;
    }
}

pub struct FluvioStream {
    settings: FluvioSettings,
    /// Partition counts of the topics, read when connecting first.
    partitions: [u32; 2],
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    backoff: Mutex<Backoff>,
    committed: Mutex<HashMap<(String, Topic, u32), u64>>,
}

impl std::fmt::Debug for FluvioStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FluvioStream")
            .field("sc_addr", &self.settings.sc_addr)
            .field("partitions", &self.partitions)
            .finish()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StreamError {
    StreamError::Unavailable(format!("fluvio {what}: {e}"))
}

impl FluvioStream {
    /// Connects, creates the topics if missing, and learns their partition
    /// counts. Fails (with the reason) if the cluster does not answer within
    /// the timeout: a clear error at start beats a server that cannot work.
    pub async fn connect(settings: FluvioSettings) -> Result<FluvioStream, StreamError> {
        let deadline = settings.timeout.max(Duration::from_secs(30));
        let fluvio = tokio::time::timeout(deadline, connect_client(&settings)).await.map_err(|_| {
            unavailable("connect", format!("no answer from {} within {deadline:?}", settings.sc_addr))
        })??;
        let mut partitions = [0; 2];
        for topic in Topic::ALL {
            let name = settings.topic_name(topic);
            let n =
                tokio::time::timeout(deadline, ensure_topic(&fluvio, &name, settings.partitions, settings.replication))
                    .await
                    .map_err(|_| unavailable("topic", format!("creating {name} took over {deadline:?}")))??;
            partitions[topic as usize] = n;
        }
        tracing::info!(sc = %settings.sc_addr, platform = %fluvio.platform_version(), ?partitions, "connected to Fluvio");
        let stream = FluvioStream {
            settings,
            partitions,
            conn: tokio::sync::Mutex::new(None),
            backoff: Mutex::new(Backoff { next_try: None, delay: Backoff::FIRST }),
            committed: Mutex::new(HashMap::new()),
        };
        let conn = stream.with_producers(fluvio).await?;
        *stream.conn.lock().await = Some(Arc::new(conn));
        Ok(stream)
    }

    pub fn settings(&self) -> &FluvioSettings {
        &self.settings
    }

    async fn with_producers(&self, fluvio: Fluvio) -> Result<Connection, StreamError> {
        let s = &self.settings;
        let config = || {
            TopicProducerConfigBuilder::default()
                .batch_size(s.batch_bytes)
                .linger(s.linger)
                .compression(s.compression)
                .timeout(s.timeout)
                .partitioner(Arc::new(SamePartitions))
                .delivery_semantic(DeliverySemantic::AtLeastOnce(RetryPolicy {
                    max_retries: 3,
                    initial_delay: Duration::from_millis(50),
                    max_delay: Duration::from_secs(1),
                    timeout: s.timeout,
                    strategy: RetryStrategy::ExponentialBackoff,
                }))
                .build()
                .map_err(|e| StreamError::BadRequest(format!("fluvio producer settings: {e}")))
        };
        // Right after a topic is created the client's metadata may not
        // list it yet: retry briefly.
        let mut attempt = 0;
        loop {
            let made = async {
                let events = fluvio.topic_producer_with_config(s.topic_name(Topic::Events), config()?).await;
                let rejects = fluvio.topic_producer_with_config(s.topic_name(Topic::Rejects), config()?).await;
                Ok::<_, StreamError>((events, rejects))
            }
            .await?;
            match made {
                (Ok(events), Ok(rejects)) => return Ok(Connection { fluvio, events, rejects }),
                (Err(e), _) | (_, Err(e)) if attempt >= 20 => return Err(unavailable("producer", e)),
                _ => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// The live connection, or a new one when the backoff allows.
    async fn connection(&self) -> Result<Arc<Connection>, StreamError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let wait = self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next_try;
        if let Some(at) = wait.filter(|at| *at > Instant::now()) {
            return Err(StreamError::Unavailable(format!(
                "fluvio at {} is unreachable; reconnecting in {} ms",
                self.settings.sc_addr,
                at.saturating_duration_since(Instant::now()).as_millis()
            )));
        }
        let attempt = async {
            let fluvio = connect_client(&self.settings).await?;
            self.with_producers(fluvio).await
        };
        match tokio::time::timeout(self.settings.timeout, attempt).await {
            Ok(Ok(conn)) => {
                self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).succeeded();
                tracing::info!(sc = %self.settings.sc_addr, "reconnected to Fluvio");
                let conn = Arc::new(conn);
                *guard = Some(conn.clone());
                Ok(conn)
            }
            outcome => {
                self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).failed();
                Err(match outcome {
                    Ok(Err(e)) => e,
                    _ => unavailable("reconnect", format!("no answer within {:?}", self.settings.timeout)),
                })
            }
        }
    }

    /// Drops a connection that failed, so the next call builds a new one
    /// (a Fluvio client does not recover every socket by itself after the
    /// cluster restarts).
    async fn broken(&self, conn: &Arc<Connection>, error: &StreamError) {
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            tracing::warn!(%error, "dropping the Fluvio connection; will reconnect");
            *guard = None;
            self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).failed();
        }
    }

    async fn produce_on(&self, conn: &Connection, records: Vec<Record>) -> Result<(), StreamError> {
        let mut pending = Vec::with_capacity(records.len());
        let mut used = [false; 2];
        for r in records {
            used[r.topic as usize] = true;
            let out = conn.producer(r.topic).send(r.key, r.value).await.map_err(|e| unavailable("send", e))?;
            pending.push(out);
        }
        for topic in Topic::ALL {
            if used[topic as usize] {
                conn.producer(topic).flush().await.map_err(|e| unavailable("flush", e))?;
            }
        }
        for out in pending {
            out.wait().await.map_err(|e| unavailable("acknowledgement", e))?;
        }
        Ok(())
    }

    async fn fetch_on(
        &self,
        conn: &Connection,
        topic: Topic,
        partition: u32,
        start: Offset,
        max: usize,
    ) -> Result<Vec<Fetched>, StreamError> {
        let config = ConsumerConfigExtBuilder::default()
            .topic(self.settings.topic_name(topic))
            .partition(partition)
            .offset_start(start)
            // What is there now, then end: the aggregator polls.
            .disable_continuous(true)
            // Errors come back to us instead of being retried silently.
            .retry_mode(RetryMode::Disabled)
            // Room for whole producer batches: with the default (1 MiB) a
            // backlog of large batches failed to decode ("failed to fill
            // whole buffer").
            .max_bytes(FETCH_MAX_BYTES)
            .build()
            .map_err(|e| StreamError::BadRequest(format!("fluvio consumer settings: {e}")))?;
        let mut stream = conn.fluvio.consumer_with_config(config).await.map_err(|e| unavailable("consumer", e))?;
        let mut out = Vec::new();
        while out.len() < max {
            match stream.next().await {
                Some(Ok(r)) => out.push(Fetched {
                    partition,
                    offset: u64::try_from(r.offset()).unwrap_or(0),
                    key: r.key().map(Bytes::copy_from_slice).unwrap_or_default(),
                    value: Bytes::copy_from_slice(r.value()),
                    damage: None,
                }),
                Some(Err(code)) => return Err(unavailable("fetch", code)),
                None => break,
            }
        }
        Ok(out)
    }

    fn check_partition(&self, topic: Topic, partition: u32) -> Result<(), StreamError> {
        let n = self.partitions(topic);
        if partition >= n {
            return Err(StreamError::BadRequest(format!("{} has {n} partitions, not {}", topic.name(), partition + 1)));
        }
        Ok(())
    }

    /// Runs `op` on the connection within the timeout; a failure drops the
    /// connection.
    async fn on_connection<T, F>(&self, what: &str, op: impl FnOnce(Arc<Connection>) -> F) -> Result<T, StreamError>
    where
        F: std::future::Future<Output = Result<T, StreamError>>,
    {
        let conn = self.connection().await?;
        let outcome = match tokio::time::timeout(self.settings.timeout, op(conn.clone())).await {
            Ok(r) => r,
            Err(_) => Err(unavailable(what, format!("no answer within {:?}", self.settings.timeout))),
        };
        if let Err(e @ StreamError::Unavailable(_)) = &outcome {
            self.broken(&conn, e).await;
        }
        outcome
    }
}

async fn connect_client(settings: &FluvioSettings) -> Result<Fluvio, StreamError> {
    let mut config = FluvioClusterConfig::new(settings.sc_addr.clone());
    config.client_id = Some("clickstream".into());
    let config = config.with_tls(settings.tls.policy());
    Fluvio::connect_with_config(&config)
        .await
        .map_err(|e| unavailable("connect", format!("{} ({e:#})", settings.sc_addr)))
}

/// Creates the topic if missing; returns its partition count.
async fn ensure_topic(fluvio: &Fluvio, name: &str, partitions: u32, replication: u32) -> Result<u32, StreamError> {
    let admin = fluvio.admin().await;
    let find = || async {
        let listed =
            admin.list::<TopicSpec, String>(vec![name.to_string()]).await.map_err(|e| unavailable("topic list", e))?;
        // The filter matches substrings: compare names exactly.
        Ok::<_, StreamError>(listed.into_iter().find(|t| t.name == name).map(|t| t.spec.partitions()))
    };
    if let Some(n) = find().await? {
        if n != partitions {
            tracing::warn!(
                topic = name,
                has = n,
                configured = partitions,
                "the topic exists with another partition count; using its own"
            );
        }
        return Ok(n);
    }
    match admin.create(name.to_string(), false, TopicSpec::new_computed(partitions, replication, None)).await {
        Ok(()) => {
            tracing::info!(topic = name, partitions, replication, "created the topic");
            Ok(partitions)
        }
        // Another replica created it first.
        Err(e) if e.to_string().contains("already exists") => Ok(find().await?.unwrap_or(partitions)),
        Err(e) => Err(unavailable("topic create", format!("{name}: {e}"))),
    }
}

#[async_trait]
impl EventStream for FluvioStream {
    fn partitions(&self, topic: Topic) -> u32 {
        self.partitions[topic as usize]
    }

    async fn produce(&self, records: Vec<Record>) -> Result<(), StreamError> {
        if records.is_empty() {
            return Ok(());
        }
        self.on_connection("produce", |conn| async move {
            let outcome = self.produce_on(&conn, records).await;
            if outcome.is_err() {
                // A failed flush leaves its error in the producer until cleared.
                for topic in Topic::ALL {
                    conn.producer(topic).clear_errors().await;
                }
            }
            outcome
        })
        .await
    }

    async fn fetch(&self, topic: Topic, partition: u32, from: u64, max: usize) -> Result<Vec<Fetched>, StreamError> {
        self.check_partition(topic, partition)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let start = Offset::absolute(i64::try_from(from).unwrap_or(i64::MAX))
            .map_err(|e| StreamError::BadRequest(format!("offset {from}: {e}")))?;
        self.on_connection("fetch", |conn| async move { self.fetch_on(&conn, topic, partition, start, max).await })
            .await
    }

    async fn end_offset(&self, topic: Topic, partition: u32) -> Result<u64, StreamError> {
        self.check_partition(topic, partition)?;
        // The last record's offset + 1 (exact, unlike the SC's partition
        // status, which trails by up to 400 ms).
        let last = self
            .on_connection("end offset", |conn| async move {
                self.fetch_on(&conn, topic, partition, Offset::from_end(1), 1).await
            })
            .await?;
        Ok(last.first().map_or(0, |r| r.offset + 1))
    }

    async fn commit(&self, group: &str, topic: Topic, partition: u32, next_offset: u64) -> Result<(), StreamError> {
        self.check_partition(topic, partition)?;
        self.committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((group.to_string(), topic, partition), next_offset);
        Ok(())
    }

    async fn committed(&self, group: &str, topic: Topic, partition: u32) -> Result<Option<u64>, StreamError> {
        self.check_partition(topic, partition)?;
        Ok(self
            .committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(group.to_string(), topic, partition))
            .copied())
    }
}

/// Registers an SPU with an SC started in `--local` mode, which refuses
/// SPUs it does not know (`clickstream fluvio register-spu`; the compose
/// file runs it). `public` is where clients reach the SPU, `private` where
/// the SC and other SPUs do. Registering an id twice is a no-op.
pub async fn register_spu(
    sc_addr: &str,
    id: i32,
    public: (&str, u16),
    private: (&str, u16),
) -> Result<bool, StreamError> {
    use fluvio::metadata::customspu::CustomSpuSpec;
    let settings = FluvioSettings::new(sc_addr);
    let fluvio = tokio::time::timeout(settings.timeout, connect_client(&settings))
        .await
        .map_err(|_| unavailable("connect", format!("no answer from {sc_addr}")))??;
    let admin = fluvio.admin().await;
    let name = format!("custom-spu-{id}");
    let known =
        admin.list::<CustomSpuSpec, String>(vec![name.clone()]).await.map_err(|e| unavailable("spu list", e))?;
    if known.iter().any(|s| s.name == name) {
        return Ok(false);
    }
    let mut spec = CustomSpuSpec { id, ..CustomSpuSpec::default() };
    spec.public_endpoint.port = public.1;
    spec.public_endpoint.ingress.push(Default::default());
    spec.public_endpoint.ingress[0].hostname = Some(public.0.to_string());
    spec.private_endpoint.port = private.1;
    spec.private_endpoint.host = private.0.to_string();
    admin.create(name, false, spec).await.map_err(|e| unavailable("spu register", e))?;
    Ok(true)
}
