//! The backend's one integration test binary; modules by theme.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod aggregate;
mod conformance;
mod embedded_log;
mod gold;
mod http;
mod pipeline;
mod security;
mod support;
