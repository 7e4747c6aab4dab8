//! The contract crate's one integration test binary.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod envelope;
mod validation;
