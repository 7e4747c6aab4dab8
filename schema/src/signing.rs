//! The signature on Worker → backend `/ingest` requests: HMAC-SHA256 over
//! `"{timestamp}.{body}"` with a shared secret, sent as
//! `X-Clickstream-Timestamp: <ms>` and `X-Clickstream-Signature: v1=<hex>`.
//! Binding the timestamp stops an old request from being replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-clickstream-timestamp";
pub const SIGNATURE_HEADER: &str = "x-clickstream-signature";
/// How far a signed request's timestamp may be from the backend's clock.
pub const MAX_SIGNATURE_AGE_MS: i64 = 5 * 60 * 1000;

fn mac(secret: &[u8], timestamp_ms: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header value for a body sent at `timestamp_ms`.
pub fn sign(secret: &[u8], timestamp_ms: i64, body: &[u8]) -> String {
    format!("v1={}", hex::encode(mac(secret, timestamp_ms, body).finalize().into_bytes()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::Stale => "signature_stale",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

/// Checks a signature in constant time (the MAC comparison does not stop at
/// the first differing byte).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let timestamp_ms: i64 = timestamp.trim().parse().map_err(|_| SignatureError::Malformed)?;
    let hex_sig = signature.trim().strip_prefix("v1=").ok_or(SignatureError::Malformed)?;
    let bytes = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    if (now_ms - timestamp_ms).abs() > MAX_SIGNATURE_AGE_MS {
        return Err(SignatureError::Stale);
    }
    mac(secret, timestamp_ms, body).verify_slice(&bytes).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let sig = sign(b"k", 1000, b"body");
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert_eq!(verify(b"k", Some("1000"), Some(&sig), b"body", 1000 + MAX_SIGNATURE_AGE_MS), Ok(()));
        assert_eq!(verify(b"k", Some("1000"), Some(&sig), b"bodY", 1000), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"other", Some("1000"), Some(&sig), b"body", 1000), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"k", Some("1001"), Some(&sig), b"body", 1000), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"k", Some("1000"), Some(&sig), b"body", 1001 + MAX_SIGNATURE_AGE_MS), Err(SignatureError::Stale));
        assert_eq!(verify(b"k", None, Some(&sig), b"body", 1000), Err(SignatureError::Missing));
        assert_eq!(verify(b"k", Some("1000"), None, b"body", 1000), Err(SignatureError::Missing));
        assert_eq!(verify(b"k", Some("x"), Some(&sig), b"body", 1000), Err(SignatureError::Malformed));
        assert_eq!(verify(b"k", Some("1000"), Some("sha1=00"), b"body", 1000), Err(SignatureError::Malformed));
        assert_eq!(verify(b"k", Some("1000"), Some("v1=zz"), b"body", 1000), Err(SignatureError::Malformed));
    }
}
