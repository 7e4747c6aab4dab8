//! Why input is refused: a whole batch ([`BatchError`], an HTTP 4xx) or one
//! event inside a valid batch ([`RejectReason`], a bad row).

use std::fmt;

/// One reason code per validation rule. The codes are stable: they are
/// stored in the `rejects` table and counted in metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The event is not a JSON object.
    NotAnObject,
    MissingEventId,
    /// `event_id` is not a non-empty string of at most 128 visible ASCII characters.
    InvalidEventId,
    /// The same `event_id` appears earlier in the same batch.
    DuplicateEventId,
    MissingEventType,
    UnknownEventType,
    MissingTimestamp,
    /// `ts` is not a positive integer of milliseconds.
    InvalidTimestamp,
    /// After skew correction the event lies further in the future than allowed.
    TimestampInFuture,
    /// After skew correction the event is older than the lateness horizon.
    TooLate,
    MissingAnonymousId,
    MissingSessionId,
    /// A top-level field (user_id, page, props, context, ...) has the wrong JSON type.
    InvalidFieldType,
    /// A string field exceeds its length limit.
    FieldTooLong,
    /// A `page_view` without `page.url` or `page.path`.
    MissingPage,
    /// A prop the event type requires is absent.
    MissingProp,
    /// A known prop has the wrong JSON type.
    InvalidPropType,
    /// A prop is out of range (negative price, quantity below 1, bad currency code).
    InvalidPropValue,
    /// An `identify` event without `user_id`.
    MissingUserId,
}

impl RejectReason {
    pub const ALL: [RejectReason; 19] = [
        RejectReason::NotAnObject,
        RejectReason::MissingEventId,
        RejectReason::InvalidEventId,
        RejectReason::DuplicateEventId,
        RejectReason::MissingEventType,
        RejectReason::UnknownEventType,
        RejectReason::MissingTimestamp,
        RejectReason::InvalidTimestamp,
        RejectReason::TimestampInFuture,
        RejectReason::TooLate,
        RejectReason::MissingAnonymousId,
        RejectReason::MissingSessionId,
        RejectReason::InvalidFieldType,
        RejectReason::FieldTooLong,
        RejectReason::MissingPage,
        RejectReason::MissingProp,
        RejectReason::InvalidPropType,
        RejectReason::InvalidPropValue,
        RejectReason::MissingUserId,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingEventId => "missing_event_id",
            RejectReason::InvalidEventId => "invalid_event_id",
            RejectReason::DuplicateEventId => "duplicate_event_id",
            RejectReason::MissingEventType => "missing_event_type",
            RejectReason::UnknownEventType => "unknown_event_type",
            RejectReason::MissingTimestamp => "missing_timestamp",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::TimestampInFuture => "timestamp_in_future",
            RejectReason::TooLate => "too_late",
            RejectReason::MissingAnonymousId => "missing_anonymous_id",
            RejectReason::MissingSessionId => "missing_session_id",
            RejectReason::InvalidFieldType => "invalid_field_type",
            RejectReason::FieldTooLong => "field_too_long",
            RejectReason::MissingPage => "missing_page",
            RejectReason::MissingProp => "missing_prop",
            RejectReason::InvalidPropType => "invalid_prop_type",
            RejectReason::InvalidPropValue => "invalid_prop_value",
            RejectReason::MissingUserId => "missing_user_id",
        }
    }

    pub fn from_code(code: &str) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A batch refused as a whole. Nothing of it is stored: the client gets the
/// reason and decides (the tracker does not retry a 4xx).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// The body exceeds the size limit (bytes).
    BodyTooLarge {
        limit: usize,
    },
    /// The body is not JSON.
    MalformedJson(String),
    /// JSON, but not a batch envelope (what is wrong says the message).
    InvalidEnvelope(String),
    UnsupportedVersion(String),
    /// More events than one batch may carry.
    TooManyEvents {
        limit: usize,
        got: usize,
    },
}

impl BatchError {
    /// Machine-readable reason, returned in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            BatchError::BodyTooLarge { .. } => "body_too_large",
            BatchError::MalformedJson(_) => "malformed_json",
            BatchError::InvalidEnvelope(_) => "invalid_envelope",
            BatchError::UnsupportedVersion(_) => "unsupported_version",
            BatchError::TooManyEvents { .. } => "too_many_events",
        }
    }

    /// The HTTP status this error maps to; the only place that decides it.
    pub fn http_status(&self) -> u16 {
        match self {
            BatchError::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// The JSON error body: `{"error": code, "message": text}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code(), "message": self.to_string() })
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::BodyTooLarge { limit } => write!(f, "body exceeds the limit of {limit} bytes"),
            BatchError::MalformedJson(e) => write!(f, "body is not valid JSON: {e}"),
            BatchError::InvalidEnvelope(e) => write!(f, "not a batch envelope: {e}"),
            BatchError::UnsupportedVersion(v) => {
                write!(f, "unsupported wire version {v}; this endpoint speaks v1")
            }
            BatchError::TooManyEvents { limit, got } => {
                write!(f, "batch has {got} events; at most {limit} are allowed")
            }
        }
    }
}

impl std::error::Error for BatchError {}
