//! The Parquet tables on disk, and the one owner of them: where every
//! table's files go, Bronze to Gold ([`layout`]), every read of them
//! ([`scan`], and [`range`] for a time range), how a table file is written ([`parquet`]), how a micro-batch's files
//! and stream offsets become visible in one atomic commit ([`commit`]),
//! who may write what ([`lock`]), a data directory in an S3 bucket
//! ([`lake`]), how final partitions are merged into one
//! file each ([`compact`]) and old days removed ([`retention`]), files
//! written before a prop joined the contract given its column ([`upgrade`]), and the error all of it fails with ([`error`]). The aggregator and Gold ask this module; it knows neither.

pub mod commit;
pub mod compact;
pub mod error;
pub mod lake;
pub mod layout;
pub mod lock;
pub mod parquet;
pub mod range;
pub mod retention;
pub mod scan;
pub mod upgrade;

pub use commit::{Commit, CrashPoint, Manifest, PendingFile, Role, GOLD_LAYOUT};
pub use error::PipelineError;
pub use layout::{GoldTable, Table, TableDir};
