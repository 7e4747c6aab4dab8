//! Bad rows: input that failed validation, kept rather than dropped.

use serde::{Deserialize, Serialize};

use crate::read::{IdFields, Json};
use crate::reason::RejectReason;
use crate::validate::Rejection;

/// One refused event: its original payload, why it was refused and when.
/// Goes to the `clickstream-rejects` topic and the `rejects` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BadRow {
    /// The rule that failed (a [`RejectReason`] code).
    pub reason: String,
    /// Human-readable detail: which field, what was wrong.
    pub detail: String,
    /// The event exactly as received (its JSON text from the batch).
    pub payload: String,
    /// Server clock at arrival (ms).
    pub received_at: i64,
    pub site_id: String,
    /// Position of the event in its batch.
    pub index: u32,
    /// The event id, when one could be read.
    pub event_id: Option<String>,
    /// The visitor, when one could be read: the partitioning key.
    pub anonymous_id: Option<String>,
    /// Where validation ran: `edge` (the Worker) or `backend`.
    pub source: String,
}

impl BadRow {
    pub fn new(
        rejection: &Rejection,
        payload: &str,
        received_at: i64,
        site_id: &str,
        index: u32,
        source: &str,
    ) -> BadRow {
        let ids = IdFields::of(payload);
        let text = |value: Json| match value {
            Json::Str(s) => Some(s.into_owned()),
            _ => None,
        };
        BadRow {
            reason: rejection.reason.code().to_string(),
            detail: rejection.detail.clone(),
            payload: payload.to_string(),
            received_at,
            site_id: site_id.to_string(),
            index,
            event_id: text(ids.event_id),
            anonymous_id: text(ids.anonymous_id),
            source: source.to_string(),
        }
    }

    pub fn reason(&self) -> Option<RejectReason> {
        RejectReason::from_code(&self.reason)
    }
}
