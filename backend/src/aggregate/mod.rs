//! The aggregator: reads the stream, writes Bronze, Silver and rejects as
//! Parquet, and commits files and offsets atomically, one micro-batch at a
//! time.
//!
//! Sources (the stream) → transforms ([`bronze`], [`silver`], [`rejects`],
//! Polars) → sinks (Parquet through [`crate::storage::Commit`]).

pub mod bronze;
pub mod dedup;
pub mod rejects;
pub mod runner;
pub mod silver;

pub use runner::{AggregateConfig, AggregateError, Aggregator, StepReport};
