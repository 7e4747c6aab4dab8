//! How the public routes defend themselves, as the edge Worker does: which
//! page origins may post for a site (the Worker's `ALLOWED_ORIGINS` shape),
//! which token a server-side sender (no `Origin`) must show when its site
//! asks for one, per-client and per-site token buckets, a bound on waiting
//! for the stream, and where the client's address comes from.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use edge_worker::edge::{AllowedOrigins, RateLimiter};
use ipnet::IpNet;

use super::ApiError;
use crate::secrets::token_matches;

/// The collect routes' defences; [`CollectGuard::default`] is what `serve`
/// runs without configuration.
#[derive(Clone, Debug)]
pub struct CollectGuard {
    pub origins: AllowedOrigins,
    /// Per site: hashes of the tokens a request without `Origin` must send
    /// (`Authorization: Bearer`). A site not listed takes such requests as
    /// they come, as the Worker does.
    pub site_tokens: HashMap<String, Vec<[u8; 32]>>,
    /// Requests a minute from one client address (0: no limit).
    pub per_client_per_minute: u32,
    /// Events a minute for one site (0: no limit), so one site's flood
    /// cannot starve the others.
    pub per_site_events_per_minute: u32,
    /// Longest wait for the stream's acknowledgement before answering 503.
    pub ack_timeout: Duration,
    /// Longest time a client may take to send a request's body.
    pub body_timeout: Duration,
    pub proxies: TrustedProxies,
    /// The token buckets themselves (a clone starts with empty ones).
    pub buckets: Buckets,
}

#[derive(Debug, Default)]
pub struct Buckets {
    clients: Mutex<RateLimiter>,
    sites: Mutex<RateLimiter>,
}

impl Clone for Buckets {
    fn clone(&self) -> Self {
        Buckets::default()
    }
}

impl Default for CollectGuard {
    fn default() -> Self {
        CollectGuard {
            origins: AllowedOrigins::any(),
            site_tokens: HashMap::new(),
            per_client_per_minute: 600,
            per_site_events_per_minute: 1_200_000,
            ack_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(10),
            proxies: TrustedProxies::default(),
            buckets: Buckets::default(),
        }
    }
}

impl CollectGuard {
    /// Without limits: the demo and the benchmarks, whose one client is
    /// the traffic generator.
    pub fn unlimited() -> CollectGuard {
        CollectGuard { per_client_per_minute: 0, per_site_events_per_minute: 0, ..CollectGuard::default() }
    }

    /// One request from `client` at `now`, or how long it must wait.
    pub fn admit_client(&self, client: &str, now: i64) -> Result<(), ApiError> {
        let mut limiter = self.buckets.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        limiter
            .check(client, self.per_client_per_minute, now)
            .map_err(|retry_after_s| ApiError::RateLimited { scope: "client", retry_after_s })
    }

    /// `events` more of `site_id` at `now`, or how long the site must wait.
    pub fn admit_site(&self, site_id: &str, events: usize, now: i64) -> Result<(), ApiError> {
        let mut limiter = self.buckets.sites.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let events = u32::try_from(events).unwrap_or(u32::MAX);
        limiter
            .take(site_id, events, self.per_site_events_per_minute, now)
            .map_err(|retry_after_s| ApiError::RateLimited { scope: "site", retry_after_s })
    }

    /// A sign-in attempt from `client`: a few a minute, so a configured
    /// token cannot be guessed at speed.
    pub fn admit_sign_in(&self, client: &str, now: i64) -> Result<(), ApiError> {
        let mut limiter = self.buckets.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        limiter
            .check(&format!("sign-in/{client}"), super::auth::SIGN_INS_PER_MINUTE, now)
            .map_err(|retry_after_s| ApiError::RateLimited { scope: "sign-in", retry_after_s })
    }

    /// May this request post events of `site_id`? A page's script is judged
    /// by its `Origin`; a request without one (a server) by the site's
    /// token, when the site has one.
    pub fn admit_sender(&self, site_id: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if let Some(origin) = origin {
            if !self.origins.allows(site_id, Some(origin)) {
                return Err(ApiError::OriginNotAllowed { origin: origin.to_string(), site_id: site_id.to_string() });
            }
            return Ok(());
        }
        let Some(hashes) = self.site_tokens.get(site_id) else { return Ok(()) };
        match super::auth::bearer(headers) {
            Some(token) if token_matches(hashes, token) => Ok(()),
            _ => Err(ApiError::SiteTokenRequired { site_id: site_id.to_string() }),
        }
    }
}

/// The proxies whose forwarding headers are believed. Default: loopback
/// only, where nginx or Caddy on the same machine connect from; a peer
/// outside the list is the client itself, whatever headers it sends.
#[derive(Clone, Debug)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    /// The one header to read the client from; by default
    /// `CF-Connecting-IP`, then `X-Forwarded-For`.
    header: Option<String>,
}

impl Default for TrustedProxies {
    fn default() -> Self {
        let loopback = |net: &str| net.parse().expect("a valid network literal");
        TrustedProxies { nets: vec![loopback("127.0.0.0/8"), loopback("::1/128")], header: None }
    }
}

impl TrustedProxies {
    /// From `["10.0.0.0/8", "192.0.2.7", ...]`; an empty list trusts no proxy.
    pub fn parse(entries: &[String], header: Option<String>) -> Result<TrustedProxies, String> {
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies: {e:?} is not an address or a network like 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets, header: header.map(|h| h.to_ascii_lowercase()) })
    }

    pub fn none() -> TrustedProxies {
        TrustedProxies { nets: Vec::new(), header: None }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted
    /// proxy, in which case the forwarding header's. In `X-Forwarded-For`
    /// the client is the right-most address that is not a trusted proxy:
    /// anything left of it was written by the client and proves nothing.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        let peer = peer?.ip();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let read = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let forwarded_for = |value: &str| {
            let hops: Vec<IpAddr> = value.split(',').filter_map(|h| h.trim().parse().ok()).collect();
            hops.iter().rev().find(|ip| !self.trusts(**ip)).or(hops.first()).copied()
        };
        let from_header = match self.header.as_deref() {
            Some("x-forwarded-for") => read("x-forwarded-for").and_then(forwarded_for),
            Some(name) => read(name).and_then(|v| v.trim().parse().ok()),
            None => read("cf-connecting-ip")
                .and_then(|v| v.trim().parse().ok())
                .or_else(|| read("x-forwarded-for").and_then(forwarded_for)),
        };
        Some(from_header.unwrap_or(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::sha256;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[allow(clippy::unnecessary_wraps)] // the shape `client_ip` takes
    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxies = TrustedProxies::default();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4")]);
        assert_eq!(proxies.client_ip(&xff, peer("127.0.0.1")), Some("198.51.100.4".parse().unwrap()));
        assert_eq!(
            proxies.client_ip(&xff, peer("203.0.113.9")),
            Some("203.0.113.9".parse().unwrap()),
            "an untrusted peer is the client"
        );
        let cf = headers(&[("cf-connecting-ip", "198.51.100.7"), ("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(proxies.client_ip(&cf, peer("::1")), Some("198.51.100.7".parse().unwrap()));
        assert_eq!(
            proxies.client_ip(&headers(&[("x-forwarded-for", "junk")]), peer("127.0.0.1")),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(proxies.client_ip(&xff, None), None);

        let inner =
            TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()], Some("X-Forwarded-For".into())).unwrap();
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.1.2.3"), ("cf-connecting-ip", "9.9.9.9")]);
        assert_eq!(
            inner.client_ip(&chain, peer("10.0.0.2")),
            Some("198.51.100.4".parse().unwrap()),
            "trusted hops are skipped"
        );
        assert!(TrustedProxies::parse(&["nope".into()], None).unwrap_err().contains("nope"));
        assert_eq!(TrustedProxies::none().client_ip(&xff, peer("127.0.0.1")), Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn senders_are_judged_by_origin_or_by_their_site_token() {
        let mut guard = CollectGuard {
            origins: AllowedOrigins::parse(r#"{"shop-1": ["https://shop.example"]}"#).unwrap(),
            ..CollectGuard::default()
        };
        guard.site_tokens.insert("shop-1".into(), vec![sha256(b"server-token-123456")]);
        assert!(guard.admit_sender("shop-1", &headers(&[("origin", "https://shop.example")])).is_ok());
        let forged = guard.admit_sender("shop-1", &headers(&[("origin", "https://evil.example")])).unwrap_err();
        assert!(matches!(forged, ApiError::OriginNotAllowed { .. }), "{forged:?}");
        assert!(matches!(guard.admit_sender("shop-1", &HeaderMap::new()), Err(ApiError::SiteTokenRequired { .. })));
        assert!(guard.admit_sender("shop-1", &headers(&[("authorization", "Bearer server-token-123456")])).is_ok());
        assert!(guard.admit_sender("shop-1", &headers(&[("authorization", "Bearer wrong")])).is_err());
        assert!(
            guard.admit_sender("other", &HeaderMap::new()).is_ok(),
            "a site without a token takes servers as they come"
        );
    }

    #[test]
    fn clients_and_sites_have_their_own_buckets() {
        let guard =
            CollectGuard { per_client_per_minute: 2, per_site_events_per_minute: 100, ..CollectGuard::default() };
        assert!(guard.admit_client("198.51.100.4", 0).is_ok());
        assert!(guard.admit_client("198.51.100.4", 0).is_ok());
        assert!(matches!(
            guard.admit_client("198.51.100.4", 0),
            Err(ApiError::RateLimited { scope: "client", retry_after_s: 30 })
        ));
        assert!(guard.admit_client("203.0.113.9", 0).is_ok());
        assert!(guard.admit_site("shop-1", 100, 0).is_ok());
        assert!(guard.admit_site("shop-1", 1, 0).is_err());
        assert!(guard.admit_site("shop-2", 50, 0).is_ok(), "one site's flood leaves the others their share");
        let open = CollectGuard::unlimited();
        for _ in 0..1000 {
            assert!(open.admit_client("127.0.0.1", 0).is_ok());
        }
    }
}
