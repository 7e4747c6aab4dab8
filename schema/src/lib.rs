//! The event contract of the clickstream pipeline, defined once and used by
//! the browser tracker, the edge Worker and the backend alike.
//!
//! - [`wire`]: the batch and event types of wire format v1, as the tracker
//!   sends them.
//! - [`props`]: the props the contract names, declared once; the types and
//!   tables that list them are generated from it.
//! - [`read`]: reading a batch field by field, borrowing from the body.
//! - [`validate`]: the rules an event must meet, one [`RejectReason`] per
//!   rule, and the batch envelope checks ([`BatchError`]).
//! - [`enrich`]: what the edge adds (skew-corrected time, UTM, user agent,
//!   bots, hashed IP), giving an [`EnrichedEvent`].
//! - [`BadRow`]: an event that failed validation, kept with its reason.
//! - [`ingest`]: the body the edge Worker sends to the backend's `/ingest`.
//! - [`stream`]: the topics, records and partitions every producer shares.
//!
//! Dependencies stay wasm-friendly (serde, hmac, sha2): this crate compiles
//! for `wasm32-unknown-unknown`.

pub mod bad_row;
pub mod enrich;
pub mod ingest;
pub mod props;
pub mod read;
pub mod reason;
pub mod record;
pub mod signing;
pub mod stream;
pub mod time;
pub mod user_agent;
pub mod utm;
pub mod validate;
pub mod wire;

pub use bad_row::BadRow;
pub use enrich::{enrich, enrich_with, DailySalt, EnrichedEvent, RequestFacts, RequestMeta, SaltSource};
pub use read::RawEvent;
pub use reason::{BatchError, RejectReason};
pub use validate::{parse_batch, validate_event, Limits, ParsedBatch, Rejection, ValidEvent, ValidProps};
pub use wire::{Batch, Context, Event, EventType, Page, Props, WIRE_VERSION};

/// What the Worker sends to the backend's `/ingest`: the events it accepted
/// (already enriched) and the bad rows it produced, in one body so that one
/// durable append covers both.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IngestBatch<'a> {
    #[serde(borrow)]
    pub events: Vec<EnrichedEvent<'a>>,
    #[serde(default)]
    pub bad_rows: Vec<BadRow>,
    /// Random per forward: two identical tracker bodies forwarded in the
    /// same millisecond (a beacon and a fetch of the same events) would
    /// otherwise carry the same signature, which `/ingest` refuses as a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}
