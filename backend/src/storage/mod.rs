//! The Parquet tables on disk: where files go ([`layout`]), how a
//! micro-batch's files and stream offsets become visible in one atomic
//! commit ([`commit`]), and reading a table's rows for a time range
//! ([`range`]).

pub mod commit;
pub mod layout;
pub mod lock;
pub mod range;

pub use commit::{Commit, Manifest, PendingFile, Role};
pub use layout::Table;
