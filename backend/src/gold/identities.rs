//! `identity_map`: which user each browser identified as, so that a person
//! who signed in on several devices can be counted once (retention counts
//! people, not browsers).

use polars::prelude::*;

use super::dimension::{latest, merge_by, Dimension};
use super::GoldTable;

/// One row per site and `anonymous_id` that has ever sent an event with a
/// `user_id`, bots included (like the other dimensions, it describes ids,
/// not an audience).
///
/// Columns:
/// - `site_id`, `anonymous_id`;
/// - `user_id`: the user of its latest identified event (ties on time: the
///   greatest user id), so a shared browser maps to whoever signed in last;
/// - `first_seen`, `last_seen`: its first and last event with a user id.
pub fn identity_map(silver: LazyFrame) -> LazyFrame {
    merge_identities(identity_rows(silver))
}

pub const IDENTITIES: Dimension = Dimension {
    table: GoldTable::IdentityMap,
    key: "anonymous_id",
    input: &["site_id", "anonymous_id", "user_id", "event_ts"],
    rows: identity_rows,
    merge: merge_identities,
};

/// Each identified event as an `identity_map` row of its own.
fn identity_rows(silver: LazyFrame) -> LazyFrame {
    silver.filter(col("user_id").is_not_null().and(col("anonymous_id").is_not_null())).select([
        col("site_id"),
        col("anonymous_id"),
        col("user_id"),
        col("event_ts").alias("first_seen"),
        col("event_ts").alias("last_seen"),
    ])
}

/// Rows of the same browsers into one row each: the latest user id, the
/// first and last identified event.
fn merge_identities(rows: LazyFrame) -> LazyFrame {
    let mut aggs = latest(&["user_id"], "last_seen");
    aggs.push(col("first_seen").min());
    merge_by(rows, "anonymous_id", aggs).select([
        col("site_id"),
        col("anonymous_id"),
        col("user_id"),
        col("first_seen"),
        col("last_seen"),
    ])
}
