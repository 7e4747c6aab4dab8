//! The traffic generator (`clickstream generate`): realistic shop traffic sent
//! to the collect endpoint exactly as the browser tracker would send it.
//!
//! `traffic` plans (pure, deterministic from the seed), `sender` delivers.

mod catalog;
mod config;
mod sender;
mod traffic;

pub use catalog::shop_module;
pub use config::{ConfigError, GenerateArgs, GenerateOptions, GenerateReport};
pub use sender::{run, wall_ms};
pub use traffic::{PlannedBatch, PlannedEvent, Traffic, VisitorKind, ACCEPTED, CONTENT_TYPE_BEACON, CONTENT_TYPE_JSON};

#[cfg(test)]
mod tests;
