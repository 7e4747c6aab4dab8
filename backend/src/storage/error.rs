//! The one error of the pipeline's write path: storage (files, commits,
//! manifests), the aggregator (stream to Silver) and Gold all fail with a
//! [`PipelineError`], so an error crosses the layers without being wrapped
//! again, and no layer has to import the one above it to name it.

use std::io;

use polars::prelude::PolarsError;

use crate::stream::StreamError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("writing Parquet {path}: {source}")]
    Parquet { path: String, source: PolarsError },
    #[error("manifest {path} is unreadable: {reason}")]
    BadManifest { path: String, reason: String },
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    #[error("aggregation task failed: {0}")]
    Task(String),
    #[error("{0}")]
    Ownership(String),
    /// The data directory is not in a state the operation can work on.
    #[error("{0}")]
    Refused(String),
    #[error("stopped as a crash would (test hook)")]
    InjectedCrash,
}

/// Wraps an I/O error with what was being done, for `map_err`.
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> PipelineError {
    let context = context.into();
    move |source| PipelineError::Io { context, source }
}
