//! The Worker as a Fluvio producer: the part of Fluvio's wire protocol that
//! producing needs, over any byte stream (a Workers TCP socket in the
//! Worker, a tokio socket in tests).
//!
//! Why not the `fluvio` client crate: it builds for wasm32, but in workerd it
//! panics at its first timer (its timer crate asks for a browser `window`,
//! which a Worker has not), and it expects connections that outlive a
//! request, which a Worker cannot keep. Producing takes four requests:
//!
//! 1. To the SC: `ApiVersions`, then `List` of partitions and of SPUs, which
//!    give the leader of each partition of the two topics and its public
//!    address ([`Leaders`]). An isolate keeps them for [`LEADERS_TTL_MS`] and
//!    reads them again at once when an SPU says it no longer leads.
//! 2. To each SPU that leads a partition of the batch: `ApiVersions` (once
//!    per isolate and SPU), then one `Produce` holding a record batch per
//!    partition, waiting for the records to be committed. The batch is
//!    acknowledged when every partition answers without an error code.
//!
//! Records and partitions are [`clickstream_schema::stream`]'s, the very
//! bytes and placement `clickstream serve` produces, so consumers cannot
//! tell which path an event took.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::io::{self, Cursor};
use std::pin::pin;
use std::task::Poll;

use fluvio_protocol::api::{Request, RequestMessage, ResponseMessage};
use fluvio_protocol::bytes::{Buf, BufMut};
use fluvio_protocol::link::versions::{ApiVersionKey, ApiVersionsRequest, ApiVersionsResponse};
use fluvio_protocol::link::ErrorCode;
use fluvio_protocol::record::{Batch, RawRecords, Record};
use fluvio_protocol::{Decoder, Encoder, Version};
use fluvio_sc_schema::objects::{ListFilter, ListRequest, ListResponse, Metadata, ObjectApiListRequest};
use fluvio_sc_schema::partition::PartitionSpec;
use fluvio_sc_schema::spu::SpuSpec;
use fluvio_sc_schema::AdminSpec;
use fluvio_spu_schema::produce::{
    DefaultPartitionRequest, DefaultProduceRequest, DefaultTopicRequest, ProduceResponse,
};
use fluvio_spu_schema::Isolation;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use clickstream_schema::stream::{event_record, partition_for, reject_record, EVENTS_TOPIC, REJECTS_TOPIC};

use crate::Collected;

/// How long an isolate trusts the partition leaders it read from the SC.
pub const LEADERS_TTL_MS: i64 = 60_000;

/// The largest response frame read; anything bigger is not a produce or
/// list answer of this cluster size and is refused before allocating.
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Where and how to produce (the Worker's `FLUVIO_*` vars).
#[derive(Clone, Debug, PartialEq)]
pub struct FluvioTarget {
    /// The SC's public address (`FLUVIO_SC`).
    pub sc: Endpoint,
    /// TLS to the SC and the SPUs (`FLUVIO_TLS = "on"`).
    pub tls: bool,
    /// Put before the topic names (`FLUVIO_TOPIC_PREFIX`), as `serve`'s
    /// `[fluvio] topic_prefix`.
    pub topic_prefix: String,
    /// The longest a batch may take, SC lookup included, before the
    /// tracker is told 503 (`FLUVIO_TIMEOUT_MS`, 2000).
    pub timeout_ms: u32,
}

impl FluvioTarget {
    pub fn events_topic(&self) -> String {
        format!("{}{EVENTS_TOPIC}", self.topic_prefix)
    }

    pub fn rejects_topic(&self) -> String {
        format!("{}{REJECTS_TOPIC}", self.topic_prefix)
    }
}

/// `host:port` of an SC or SPU.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `host:port`, `[v6]:port` too.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (host, port) = text.trim().rsplit_once(':').ok_or(format!("{text:?} is not host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| format!("{text:?}: the port is not a number from 1 to 65535"))?;
        if host.is_empty() || port == 0 {
            return Err(format!("{text:?} is not host:port"));
        }
        Ok(Endpoint { host: host.to_string(), port })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why a batch was not acknowledged. Every failure means the tracker
/// retries (503); `stale` says whether the leaders should be read again.
#[derive(Debug, PartialEq)]
pub struct ProduceError {
    pub message: String,
    pub stale: bool,
}

impl ProduceError {
    fn new(message: impl Into<String>) -> ProduceError {
        ProduceError { message: message.into(), stale: true }
    }
}

impl fmt::Display for ProduceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What the runtime provides: a byte stream to a `host:port`, and a timer.
/// The Worker gives Workers sockets and `setTimeout`, tests tokio's.
#[allow(async_fn_in_trait)] // the Worker is single-threaded: no `Send` bound wanted
pub trait Transport {
    type Io: AsyncRead + AsyncWrite + Unpin;
    async fn connect(&self, to: &Endpoint) -> io::Result<Self::Io>;
    async fn sleep_ms(&self, ms: u32);
}

/// `future`, or `None` if `ms` pass first.
pub async fn within<T: Transport, F: Future>(transport: &T, ms: u32, future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut timer = pin!(transport.sleep_ms(ms));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// One connection speaking Fluvio's framing: a big-endian `i32` length,
/// then the request header and body; answers matched by correlation id.
struct Link<S> {
    io: S,
    next_id: i32,
    peer: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    fn new(io: S, peer: &Endpoint) -> Link<S> {
        Link { io, next_id: 1, peer: peer.to_string() }
    }

    async fn call<R: Request>(&mut self, request: R, version: i16) -> Result<R::Response, ProduceError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = RequestMessage::new_request(request);
        message.header.set_api_version(version);
        message.header.set_correlation_id(id);
        message.header.set_client_id("clickstream-edge");
        let failed = |what: &str, e: io::Error| ProduceError::new(format!("fluvio {}: {what}: {e}", self.peer));
        let size = message.write_size(0);
        let mut frame = Vec::with_capacity(4 + size);
        frame.extend_from_slice(&(size as i32).to_be_bytes());
        message.encode(&mut frame, 0).map_err(|e| failed("encoding the request", e))?;
        self.io.write_all(&frame).await.map_err(|e| failed("sending", e))?;
        self.io.flush().await.map_err(|e| failed("sending", e))?;
        let length = self.io.read_i32().await.map_err(|e| failed("reading the answer", e))?;
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l <= MAX_FRAME_BYTES)
            .ok_or_else(|| ProduceError::new(format!("fluvio {}: an answer of {length} bytes", self.peer)))?;
        let mut body = vec![0; length];
        self.io.read_exact(&mut body).await.map_err(|e| failed("reading the answer", e))?;
        let answer = ResponseMessage::<R::Response>::decode_from(&mut Cursor::new(&body), version)
            .map_err(|e| failed("decoding the answer", e))?;
        if answer.correlation_id != id {
            return Err(ProduceError::new(format!(
                "fluvio {}: an answer to request {} where {id} was asked",
                self.peer, answer.correlation_id
            )));
        }
        Ok(answer.response)
    }

    /// The versions of the APIs the server speaks.
    async fn versions(&mut self) -> Result<Vec<ApiVersionKey>, ProduceError> {
        let request = ApiVersionsRequest {
            client_version: env!("CARGO_PKG_VERSION").to_string(),
            client_os: "cloudflare-workers".to_string(),
            client_arch: "wasm32".to_string(),
        };
        let answer: ApiVersionsResponse = self.call(request, ApiVersionsRequest::DEFAULT_API_VERSION).await?;
        if answer.error_code != ErrorCode::None {
            return Err(ProduceError::new(format!("fluvio {}: ApiVersions: {:?}", self.peer, answer.error_code)));
        }
        Ok(answer.api_keys)
    }
}

/// The newest version of `R` both sides speak.
fn common_version<R: Request>(server: &[ApiVersionKey]) -> Option<i16> {
    server
        .iter()
        .find(|k| k.api_key == R::API_KEY as i16)
        .filter(|k| k.max_version >= R::MIN_API_VERSION && k.min_version <= R::MAX_API_VERSION)
        .map(|k| k.max_version.min(R::MAX_API_VERSION))
}

/// Which SPU leads each partition of the topics, and where it listens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Leaders {
    /// Per topic, the leader of partition `i` at index `i`.
    topics: HashMap<String, Vec<Endpoint>>,
    /// When they were read, to expire them.
    pub read_at_ms: i64,
}

impl Leaders {
    pub fn partitions(&self, topic: &str) -> u32 {
        self.topics.get(topic).map_or(0, |p| p.len() as u32)
    }

    pub fn leader(&self, topic: &str, partition: u32) -> Option<&Endpoint> {
        self.topics.get(topic)?.get(partition as usize)
    }

    /// From the SC's partition and SPU lists; every partition of `topics`
    /// must have a leader with a public address.
    fn from_lists(
        partitions: &[Metadata<PartitionSpec>],
        spus: &[Metadata<SpuSpec>],
        topics: &[String],
        now_ms: i64,
    ) -> Result<Leaders, String> {
        let addresses: HashMap<i32, Endpoint> = spus
            .iter()
            .filter_map(|spu| {
                let host = spu.spec.public_endpoint.host()?;
                Some((spu.spec.id, Endpoint { host, port: spu.spec.public_endpoint.port }))
            })
            .collect();
        let mut leaders = Leaders { topics: HashMap::new(), read_at_ms: now_ms };
        for topic in topics {
            // Partitions are named `<topic>-<index>`.
            let mut found: BTreeMap<u32, i32> = BTreeMap::new();
            for p in partitions {
                let Some((name, index)) = p.name.rsplit_once('-') else { continue };
                if name == topic {
                    if let Ok(index) = index.parse::<u32>() {
                        found.insert(index, p.spec.leader);
                    }
                }
            }
            if found.is_empty() {
                return Err(format!(
                    "topic {topic} does not exist: `clickstream serve` or `aggregate` with the same \
                     [fluvio] settings creates it, or `fluvio topic create {topic}`"
                ));
            }
            let mut endpoints = Vec::with_capacity(found.len());
            for (expected, (index, spu)) in found.into_iter().enumerate() {
                if index != expected as u32 {
                    return Err(format!("topic {topic}: partition {expected} is missing from the SC's list"));
                }
                let endpoint = addresses.get(&spu).ok_or(format!(
                    "topic {topic}: partition {index} is led by SPU {spu}, which has no public address"
                ))?;
                endpoints.push(endpoint.clone());
            }
            leaders.topics.insert(topic.clone(), endpoints);
        }
        Ok(leaders)
    }
}

/// A `List` request as the SC reads it from version 11 on: the spec's
/// label, then the `ListRequest` encoded at the request's version,
/// length-prefixed. The crate's own request type answers with a decoder of
/// every kind of object (topics, SmartModules, mirrors...), which would
/// triple the Fluvio share of the Worker's wasm; this one decodes the two
/// lists producing needs.
#[derive(Debug, Default)]
struct ListObjects {
    label: String,
    body: Vec<u8>,
}

/// The SC's answer to [`ListObjects`], in the same shape.
#[derive(Debug, Default)]
struct ListedObjects {
    label: String,
    body: Vec<u8>,
}

impl Request for ListObjects {
    const API_KEY: u16 = fluvio_sc_schema::AdminPublicApiKey::List as u16;
    const MIN_API_VERSION: i16 = ObjectApiListRequest::MIN_API_VERSION;
    const DEFAULT_API_VERSION: i16 = ObjectApiListRequest::DEFAULT_API_VERSION;
    const MAX_API_VERSION: i16 = ObjectApiListRequest::MAX_API_VERSION;
    type Response = ListedObjects;
}

/// Label, `u32` length, bytes: both directions.
macro_rules! labelled_bytes {
    ($type:ident) => {
        impl Encoder for $type {
            fn write_size(&self, version: Version) -> usize {
                self.label.write_size(version) + 4 + self.body.len()
            }

            fn encode<T: BufMut>(&self, dest: &mut T, version: Version) -> io::Result<()> {
                self.label.encode(dest, version)?;
                (self.body.len() as u32).encode(dest, version)?;
                dest.put_slice(&self.body);
                Ok(())
            }
        }

        impl Decoder for $type {
            fn decode<T: Buf>(&mut self, src: &mut T, version: Version) -> io::Result<()> {
                self.label.decode(src, version)?;
                let mut length = 0u32;
                length.decode(src, version)?;
                if src.remaining() < length as usize {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a list cut short"));
                }
                self.body = vec![0; length as usize];
                src.copy_to_slice(&mut self.body);
                Ok(())
            }
        }
    };
}

labelled_bytes!(ListObjects);
labelled_bytes!(ListedObjects);

/// Every object of kind `S` the SC has.
async fn list<S, T>(link: &mut Link<T>, version: i16) -> Result<Vec<Metadata<S>>, ProduceError>
where
    S: AdminSpec,
    S::Status: Encoder + Decoder + fmt::Debug,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let failed = |e: io::Error| ProduceError::new(format!("fluvio list {}: {e}", S::LABEL));
    let mut body = Vec::new();
    ListRequest::<S>::new(Vec::<ListFilter>::new(), false).encode(&mut body, version).map_err(failed)?;
    let answer = link.call(ListObjects { label: S::LABEL.to_string(), body }, version).await?;
    if answer.label != S::LABEL {
        return Err(ProduceError::new(format!("fluvio list {}: the SC answered a list of {}", S::LABEL, answer.label)));
    }
    let listed = ListResponse::<S>::decode_from(&mut Cursor::new(&answer.body), version).map_err(failed)?;
    Ok(listed.inner())
}

/// Reads the leaders of `topics` from the SC at the other end of `io`.
pub async fn read_leaders<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    sc: &Endpoint,
    topics: &[String],
    now_ms: i64,
) -> Result<Leaders, ProduceError> {
    let mut link = Link::new(io, sc);
    let versions = link.versions().await?;
    let version = common_version::<ListObjects>(&versions)
        .ok_or_else(|| ProduceError::new(format!("fluvio SC {sc} speaks no List version this Worker knows")))?;
    let partitions = list::<PartitionSpec, _>(&mut link, version).await?;
    let spus = list::<SpuSpec, _>(&mut link, version).await?;
    Leaders::from_lists(&partitions, &spus, topics, now_ms).map_err(ProduceError::new)
}

/// The records of one partition, in order.
pub type PartitionRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// Per SPU, per (topic, partition), the records it must take.
pub type Plan = BTreeMap<Endpoint, BTreeMap<(String, u32), PartitionRecords>>;

/// Places a collected batch: each accepted event in the events topic and
/// each bad row in the rejects topic, at the partition of its key, grouped
/// by the SPU that leads it.
pub fn plan(collected: &Collected<'_>, target: &FluvioTarget, leaders: &Leaders) -> Result<Plan, ProduceError> {
    let mut plan = Plan::new();
    let records = collected
        .accepted
        .iter()
        .map(|e| (target.events_topic(), event_record(e)))
        .chain(collected.bad_rows.iter().map(|r| (target.rejects_topic(), reject_record(r))));
    for (topic, (key, value)) in records {
        let partitions = leaders.partitions(&topic);
        let partition = partition_for(&key, partitions);
        let spu = leaders
            .leader(&topic, partition)
            .ok_or_else(|| ProduceError::new(format!("no leader known for {topic} partition {partition}")))?;
        plan.entry(spu.clone()).or_default().entry((topic, partition)).or_default().push((key, value));
    }
    Ok(plan)
}

/// The Produce request of one SPU's share of a plan: one batch per
/// partition, committed before the SPU answers.
fn produce_request(
    share: BTreeMap<(String, u32), PartitionRecords>,
    now_ms: i64,
    timeout_ms: u32,
) -> Result<DefaultProduceRequest, String> {
    let mut request = DefaultProduceRequest {
        isolation: Isolation::ReadCommitted,
        timeout: std::time::Duration::from_millis(u64::from(timeout_ms)),
        ..Default::default()
    };
    for ((topic, partition), records) in share {
        let records: Vec<Record> = records.into_iter().map(|(key, value)| Record::new_key_value(key, value)).collect();
        let mut batch = Batch::from(records);
        batch.get_mut_header().first_timestamp = now_ms;
        batch.get_mut_header().max_time_stamp = now_ms;
        let batch: Batch<RawRecords> = batch.try_into().map_err(|e| format!("encoding a record batch: {e}"))?;
        let mut partition_request = DefaultPartitionRequest { partition_index: partition, ..Default::default() };
        partition_request.records.batches.push(batch);
        match request.topics.iter_mut().find(|t| t.name == topic) {
            Some(t) => t.partitions.push(partition_request),
            None => request.topics.push(DefaultTopicRequest {
                name: topic,
                partitions: vec![partition_request],
                ..Default::default()
            }),
        }
    }
    Ok(request)
}

/// Sends one SPU its share and checks every partition's answer. `version`:
/// the Produce version agreed with this SPU before, if any; returns the one
/// used.
pub async fn produce_share<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    spu: &Endpoint,
    share: BTreeMap<(String, u32), PartitionRecords>,
    version: Option<i16>,
    now_ms: i64,
    timeout_ms: u32,
) -> Result<i16, ProduceError> {
    let mut link = Link::new(io, spu);
    let version = match version {
        Some(v) => v,
        None => common_version::<DefaultProduceRequest>(&link.versions().await?).ok_or_else(|| {
            ProduceError::new(format!("fluvio SPU {spu} speaks no Produce version this Worker knows"))
        })?,
    };
    let asked: Vec<(String, u32)> = share.keys().cloned().collect();
    let request = produce_request(share, now_ms, timeout_ms).map_err(ProduceError::new)?;
    let answer: ProduceResponse = link.call(request, version).await?;
    for (topic, partition) in &asked {
        let code = answer
            .find_partition_response(topic, *partition)
            .map(|p| p.error_code.clone())
            .ok_or_else(|| ProduceError::new(format!("fluvio SPU {spu} did not answer for {topic}-{partition}")))?;
        if code != ErrorCode::None {
            // Only a leader change calls for new leaders; other errors
            // (storage full, timeout) keep them.
            let stale = matches!(
                code,
                ErrorCode::NotLeaderForPartition | ErrorCode::PartitionNotLeader | ErrorCode::TopicNotFound
            );
            return Err(ProduceError { message: format!("fluvio SPU {spu}: {topic}-{partition}: {code:?}"), stale });
        }
    }
    Ok(version)
}

/// What an isolate remembers between requests: plain data only (a Worker
/// cannot keep a socket across requests).
#[derive(Debug, Default)]
pub struct ProducerCache {
    leaders: Option<std::rc::Rc<Leaders>>,
    produce_versions: HashMap<Endpoint, i16>,
}

/// How a batch went to Fluvio.
#[derive(Debug, PartialEq)]
pub struct Produced {
    pub records: usize,
    pub spus: usize,
    /// Whether the SC was asked for leaders on this request.
    pub read_leaders: bool,
}

/// What producing a batch takes: the runtime, the target, and the
/// isolate's cache.
pub struct Producer<'a, T> {
    pub transport: &'a T,
    pub target: &'a FluvioTarget,
    pub cache: &'a std::cell::RefCell<ProducerCache>,
}

impl<T: Transport> Producer<'_, T> {
    /// Produces a collected batch: leaders from the cache or the SC, then
    /// each SPU's share, all within `target.timeout_ms`. `Ok` only when
    /// Fluvio acknowledged every record.
    pub async fn produce(&self, collected: &Collected<'_>, now_ms: i64) -> Result<Produced, ProduceError> {
        let limit = self.target.timeout_ms;
        let outcome =
            within(self.transport, limit, self.produce_unbounded(collected, now_ms)).await.unwrap_or_else(|| {
                Err(ProduceError { message: format!("fluvio: no acknowledgement within {limit} ms"), stale: true })
            });
        if outcome.as_ref().is_err_and(|e| e.stale) {
            self.cache.borrow_mut().leaders = None;
        }
        outcome
    }

    async fn produce_unbounded(&self, collected: &Collected<'_>, now_ms: i64) -> Result<Produced, ProduceError> {
        let (transport, target, cache) = (self.transport, self.target, self.cache);
        let records = collected.accepted.len() + collected.bad_rows.len();
        if records == 0 {
            return Ok(Produced { records, spus: 0, read_leaders: false });
        }
        let cached = cache.borrow().leaders.clone().filter(|l| now_ms - l.read_at_ms < LEADERS_TTL_MS);
        let read = cached.is_none();
        let leaders = match cached {
            Some(leaders) => leaders,
            None => {
                let io = transport
                    .connect(&target.sc)
                    .await
                    .map_err(|e| ProduceError::new(format!("fluvio SC {}: connecting: {e}", target.sc)))?;
                let topics = [target.events_topic(), target.rejects_topic()];
                let leaders = std::rc::Rc::new(read_leaders(io, &target.sc, &topics, now_ms).await?);
                cache.borrow_mut().leaders = Some(leaders.clone());
                leaders
            }
        };
        let plan = plan(collected, target, &leaders)?;
        let spus = plan.len();
        // The SPUs in turn: a deployment has few, and most batches are one
        // visitor's, hence one partition.
        for (spu, share) in plan {
            let io = transport
                .connect(&spu)
                .await
                .map_err(|e| ProduceError::new(format!("fluvio SPU {spu}: connecting: {e}")))?;
            let known = cache.borrow().produce_versions.get(&spu).copied();
            let version = produce_share(io, &spu, share, known, now_ms, target.timeout_ms).await?;
            cache.borrow_mut().produce_versions.insert(spu, version);
        }
        Ok(Produced { records, spus, read_leaders: read })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_schema::RequestMeta;

    fn target() -> FluvioTarget {
        FluvioTarget {
            sc: Endpoint::parse("127.0.0.1:9003").unwrap(),
            tls: false,
            topic_prefix: "t-".into(),
            timeout_ms: 2000,
        }
    }

    fn leaders(partitions: u32, spus: &[&str]) -> Leaders {
        let at = |i: u32| Endpoint::parse(spus[i as usize % spus.len()]).unwrap();
        let topics = [target().events_topic(), target().rejects_topic()]
            .into_iter()
            .map(|t| (t, (0..partitions).map(at).collect()))
            .collect();
        Leaders { topics, read_at_ms: 0 }
    }

    const NOW: i64 = 1_732_262_400_000;

    /// A tracker batch: a page view per visitor, then `bad` events of an
    /// unknown type.
    fn batch_of(visitors: &[&str], bad: usize) -> String {
        let mut events: Vec<serde_json::Value> = visitors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::json!({"event_id": format!("e-{i}"), "event_type": "page_view", "ts": NOW - 2000,
                    "anonymous_id": v, "session_id": format!("s-{v}"), "page": {"url": "https://shop.example/", "path": "/"}})
            })
            .collect();
        for i in 0..bad {
            events.push(serde_json::json!({"event_id": format!("b-{i}"), "event_type": "no_such_type", "ts": NOW,
                "anonymous_id": format!("bad-{i}"), "session_id": "s"}));
        }
        serde_json::json!({"v": 1, "site_id": "shop-1", "sent_at": NOW - 1000, "events": events}).to_string()
    }

    fn collected(body: &str) -> Collected<'_> {
        let meta = RequestMeta { received_at: NOW, ..Default::default() };
        crate::collect(body.as_bytes(), Box::leak(Box::new(meta)), &crate::CollectConfig::new("k", "edge")).unwrap()
    }

    #[test]
    fn endpoints_parse_with_clear_errors() {
        assert_eq!(Endpoint::parse("sc.example:9003").unwrap().to_string(), "sc.example:9003");
        assert_eq!(Endpoint::parse("[::1]:9003").unwrap().host, "::1");
        assert!(Endpoint::parse("sc.example").unwrap_err().contains("not host:port"));
        assert!(Endpoint::parse("sc:99999").unwrap_err().contains("port"));
        assert!(Endpoint::parse(":9003").unwrap_err().contains("not host:port"));
    }

    #[test]
    fn records_go_to_the_partition_serve_would_choose_grouped_by_leader() {
        let body = batch_of(&["alice", "bob", "carol", "dave", "erin"], 2);
        let batch = collected(&body);
        assert_eq!((batch.accepted.len(), batch.bad_rows.len()), (5, 2));
        let leaders = leaders(4, &["spu-a:9010", "spu-b:9010"]);
        let placed_by = plan(&batch, &target(), &leaders).unwrap();
        let mut placed = 0;
        for (spu, share) in &placed_by {
            for ((topic, partition), records) in share {
                assert_eq!(leaders.leader(topic, *partition), Some(spu), "sent to the partition's leader");
                for (key, value) in records {
                    assert_eq!(partition_for(key, 4), *partition);
                    if topic == "t-clickstream-events" {
                        let event = batch.accepted.iter().find(|e| e.anonymous_id.as_bytes() == key).unwrap();
                        assert_eq!(value, &event_record(event).1, "the bytes serve produces");
                    } else {
                        assert_eq!(topic, "t-clickstream-rejects");
                        assert!(std::str::from_utf8(value).unwrap().contains("unknown_event_type"));
                    }
                    placed += 1;
                }
            }
        }
        assert_eq!(placed, 7);
        assert!(plan(&batch, &target(), &Leaders::default()).unwrap_err().message.contains("no leader"));
    }

    #[test]
    fn the_produce_request_reads_back_as_the_spu_decodes_it() {
        let body = batch_of(&["alice", "bob", "alice"], 1);
        let batch = collected(&body);
        let leaders = leaders(3, &["spu:9010"]);
        let mut placed = plan(&batch, &target(), &leaders).unwrap();
        let share = placed.remove(&Endpoint::parse("spu:9010").unwrap()).unwrap();
        let expected: Vec<((String, u32), PartitionRecords)> = share.clone().into_iter().collect();
        let request = produce_request(share, 1_700_000_000_123, 1500).unwrap();
        let version = DefaultProduceRequest::MAX_API_VERSION;
        let mut bytes = Vec::new();
        request.encode(&mut bytes, version).unwrap();
        let read = DefaultProduceRequest::decode_from(&mut Cursor::new(&bytes), version).unwrap();
        assert_eq!(read.isolation, Isolation::ReadCommitted);
        assert_eq!(read.timeout, std::time::Duration::from_millis(1500));
        let mut got = Vec::new();
        for topic in &read.topics {
            for p in &topic.partitions {
                assert_eq!(p.records.batches.len(), 1);
                let batch: Batch = p.records.batches[0].clone().try_into().unwrap();
                assert_eq!(batch.get_header().first_timestamp, 1_700_000_000_123);
                let records = batch
                    .own_records()
                    .into_iter()
                    .map(|r| (r.key().unwrap().as_ref().to_vec(), r.value().as_ref().to_vec()))
                    .collect();
                got.push(((topic.name.clone(), p.partition_index), records));
            }
        }
        got.sort();
        assert_eq!(got, expected);
        assert_eq!(got.iter().map(|(_, r)| r.len()).sum::<usize>(), 4);
    }

    #[test]
    fn leaders_come_from_the_lists_and_missing_topics_are_named() {
        use fluvio_controlplane_metadata::spu::IngressPort;
        let spu = |id: i32, host: &str| Metadata {
            name: format!("spu-{id}"),
            spec: SpuSpec { id, public_endpoint: IngressPort::from_port_host(9010, host.into()), ..Default::default() },
            status: Default::default(),
        };
        let partition = |name: &str, leader: i32| Metadata {
            name: name.into(),
            spec: PartitionSpec { leader, ..Default::default() },
            status: Default::default(),
        };
        let spus = [spu(1, "a.example"), spu(2, "b.example")];
        let topics = vec!["ev".to_string()];
        let parts = [partition("ev-1", 2), partition("ev-0", 1), partition("other-0", 1), partition("ev-x-0", 2)];
        let leaders = Leaders::from_lists(&parts, &spus, &topics, 5).unwrap();
        assert_eq!(leaders.partitions("ev"), 2);
        assert_eq!(leaders.leader("ev", 0).unwrap().to_string(), "a.example:9010");
        assert_eq!(leaders.leader("ev", 1).unwrap().to_string(), "b.example:9010");
        let missing = Leaders::from_lists(&parts, &spus, &["nope".to_string()], 5).unwrap_err();
        assert!(missing.contains("topic nope does not exist"), "{missing}");
        let gap = Leaders::from_lists(&[partition("ev-1", 1)], &spus, &topics, 5).unwrap_err();
        assert!(gap.contains("partition 0 is missing"), "{gap}");
        let orphan = Leaders::from_lists(&[partition("ev-0", 9)], &spus, &topics, 5).unwrap_err();
        assert!(orphan.contains("SPU 9"), "{orphan}");
    }

    /// A network where nothing ever connects, and time flies.
    struct Stalled;

    impl Transport for Stalled {
        type Io = tokio::io::DuplexStream;

        async fn connect(&self, _: &Endpoint) -> io::Result<Self::Io> {
            std::future::pending().await
        }

        async fn sleep_ms(&self, _: u32) {}
    }

    fn now_or_never<T>(future: impl Future<Output = T>) -> T {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match pin!(future).poll(&mut cx) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("still waiting"),
        }
    }

    #[test]
    fn a_cluster_that_never_answers_is_a_timeout_not_a_hang_and_the_leaders_are_read_again() {
        let body = batch_of(&["alice"], 1);
        let batch = collected(&body);
        let cache = std::cell::RefCell::new(ProducerCache {
            leaders: Some(std::rc::Rc::new(leaders(2, &["spu:9010"]))),
            ..Default::default()
        });
        let error =
            now_or_never(Producer { transport: &Stalled, target: &target(), cache: &cache }.produce(&batch, NOW))
                .unwrap_err();
        assert_eq!(error.message, "fluvio: no acknowledgement within 2000 ms");
        assert!(cache.borrow().leaders.is_none());
        // Nothing to produce: no connection at all, acknowledged at once.
        let empty = serde_json::json!({"v": 1, "site_id": "shop-1", "sent_at": NOW, "events": []}).to_string();
        let produced = now_or_never(
            Producer { transport: &Stalled, target: &target(), cache: &cache }.produce(&collected(&empty), NOW),
        )
        .unwrap();
        assert_eq!(produced, Produced { records: 0, spus: 0, read_leaders: false });
    }
}
