//! The Parquet tables on disk: where files go ([`layout`]), and how a
//! micro-batch's files and stream offsets become visible in one atomic
//! commit ([`commit`]).

pub mod commit;
pub mod layout;

pub use commit::{Commit, Manifest, PendingFile};
pub use layout::Table;
