//! The clickstream backend: sources (HTTP collect and ingest, the stream),
//! transforms (Bronze, Silver with Polars) and sinks (Parquet), plus the
//! traffic generator.

pub mod generate;
pub mod stream;
