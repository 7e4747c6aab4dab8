//! The clickstream backend: sources (HTTP collect and ingest, the stream),
//! transforms (Bronze, Silver with Polars) and sinks (Parquet), plus the
//! traffic generator.

pub mod aggregate;
pub mod alerts;
pub mod api;
pub mod bench;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod demo;
pub mod fixtures;
pub mod forget;
pub mod generate;
pub mod gold;
pub mod metrics;
pub mod query;
pub mod replay;
pub mod salts;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod settings;
pub mod storage;
pub mod stream;
pub mod zones;
