//! The aggregator: reads the stream, writes Bronze, Silver and rejects as
//! Parquet, and commits files and offsets atomically, one micro-batch at a
//! time, with Gold's refresh ([`GoldStep`]) in the same commit.
//!
//! Sources (the stream) → transforms ([`bronze`], [`silver`], [`rejects`],
//! Polars) → sinks (Parquet through [`crate::storage::Commit`]).

pub mod bronze;
pub mod dedup;
pub mod gold_step;
pub mod micro_batch;
pub mod rejects;
pub mod runner;
pub mod silver;

pub use gold_step::{GoldConfig, GoldStep};
pub use runner::{AggregateConfig, Aggregator, StepReport};
