//! The contract crate's one integration test binary.

mod envelope;
mod validation;
