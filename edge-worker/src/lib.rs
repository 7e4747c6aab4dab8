//! The edge collector.
//!
//! [`collect`] is the collect core: plain Rust with no platform types, a
//! batch body and request metadata in, enriched events, bad rows and the
//! response out. The backend mounts it natively as `POST /v1/batch`; the
//! Cloudflare Worker (on wasm32) wraps the same function.

pub mod collect;
pub mod edge;
pub mod fluvio;
#[cfg(target_arch = "wasm32")]
mod worker;

pub use collect::{collect, CollectConfig, CollectResponse, Collected, EventError};
