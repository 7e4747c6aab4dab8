//! The traffic generator.
