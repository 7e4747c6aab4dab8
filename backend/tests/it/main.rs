//! The backend's one integration test binary; modules by theme.

mod aggregate;
mod conformance;
mod embedded_log;
mod gold;
mod http;
mod pipeline;
mod security;
mod support;
