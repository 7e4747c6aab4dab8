//! The backend's one integration test binary; modules by theme.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::needless_pass_by_value, clippy::type_complexity)]

mod aggregate;
mod conformance;
mod embedded_log;
mod forget;
mod gold;
mod http;
mod lake;
mod lifecycle;
mod pipeline;
mod security;
mod support;
