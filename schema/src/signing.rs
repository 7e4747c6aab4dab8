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
    signature_header(&mac(secret, timestamp_ms, body).finalize().into_bytes())
}

/// What the MAC covers, in one buffer: `{timestamp}.{body}`. For signers
/// that take their input whole, as Web Crypto's `sign` does.
pub fn signed_message(timestamp_ms: i64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp_ms.to_string();
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    message
}

/// The signature header value for an HMAC-SHA256 of [`signed_message`]
/// computed elsewhere.
pub fn signature_header(mac: &[u8]) -> String {
    format!("v1={}", hex::encode(mac))
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

/// A request's signature as its headers state it: checked for presence,
/// form and freshness before the body is read at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub timestamp_ms: i64,
    /// The decoded MAC: the identity of the signature, whatever the case
    /// of its hex digits.
    pub mac: Vec<u8>,
}

impl SignedHeaders {
    pub fn read(
        timestamp: Option<&str>,
        signature: Option<&str>,
        now_ms: i64,
    ) -> Result<SignedHeaders, SignatureError> {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(SignatureError::Missing);
        };
        let timestamp_ms: i64 = timestamp.trim().parse().map_err(|_| SignatureError::Malformed)?;
        let hex_sig = signature.trim().strip_prefix("v1=").ok_or(SignatureError::Malformed)?;
        let mac = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
        if mac.len() != 32 {
            return Err(SignatureError::Malformed);
        }
        if (now_ms - timestamp_ms).abs() > MAX_SIGNATURE_AGE_MS {
            return Err(SignatureError::Stale);
        }
        Ok(SignedHeaders { timestamp_ms, mac })
    }

    /// Does the MAC match `body` under any of `secrets` (two are valid at
    /// once while one is rotated)? Each comparison is constant-time.
    pub fn verify(&self, secrets: &[impl AsRef<[u8]>], body: &[u8]) -> Result<(), SignatureError> {
        let matched = secrets.iter().fold(false, |hit, secret| {
            hit | mac(secret.as_ref(), self.timestamp_ms, body).verify_slice(&self.mac).is_ok()
        });
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
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
    SignedHeaders::read(timestamp, signature, now_ms)?.verify(&[secret], body)
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
        assert_eq!(
            verify(b"k", Some("1000"), Some(&sig), b"body", 1001 + MAX_SIGNATURE_AGE_MS),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(b"k", None, Some(&sig), b"body", 1000), Err(SignatureError::Missing));
        assert_eq!(verify(b"k", Some("1000"), None, b"body", 1000), Err(SignatureError::Missing));
        assert_eq!(verify(b"k", Some("x"), Some(&sig), b"body", 1000), Err(SignatureError::Malformed));
        assert_eq!(verify(b"k", Some("1000"), Some("sha1=00"), b"body", 1000), Err(SignatureError::Malformed));
        assert_eq!(verify(b"k", Some("1000"), Some("v1=zz"), b"body", 1000), Err(SignatureError::Malformed));
        assert_eq!(verify(b"k", Some("1000"), Some(&sig.to_uppercase().replace("V1=", "v1=")), b"body", 1000), Ok(()));
        let headers = SignedHeaders::read(Some("1000"), Some(&sig), 1000).unwrap();
        let upper = SignedHeaders::read(Some("1000"), Some(&sig.to_uppercase().replace("V1=", "v1=")), 1000).unwrap();
        assert_eq!(headers.mac, upper.mac, "one signature, whatever the case of its hex");
        assert_eq!(headers.verify(&[b"old".as_slice(), b"k".as_slice()], b"body"), Ok(()), "either of two secrets");
        assert_eq!(headers.verify(&[b"old".as_slice()], b"body"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_mac_of_the_signed_message_made_elsewhere_is_the_same_signature() {
        let message = signed_message(1000, b"body");
        assert_eq!(message, b"1000.body");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"k").unwrap();
        mac.update(&message);
        assert_eq!(signature_header(&mac.finalize().into_bytes()), sign(b"k", 1000, b"body"));
    }
}
