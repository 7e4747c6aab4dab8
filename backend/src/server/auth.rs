//! Who may read what `serve` answers beyond collection: the dashboard, its
//! `/api/*` and `/metrics` need an API token (`Authorization: Bearer`) or
//! the session cookie the dashboard's sign-in gives; `/metrics` also takes
//! a metrics-only token, as Prometheus scrapers are configured. Tokens are
//! kept as SHA-256 hashes, several at once so they can be rotated. Only
//! `demo` runs [`Access::Open`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::AppState;
use crate::secrets::{random_token, sha256, token_matches};

pub const SESSION_COOKIE: &str = "clickstream_session";
/// How long a dashboard sign-in lasts.
const SESSION_MS: i64 = 12 * 3_600_000;
/// Most signed-in sessions remembered; the oldest go first.
const MAX_SESSIONS: usize = 10_000;
/// Sign-in attempts one client may make a minute before it waits: a
/// configured token may be weaker than a generated one.
pub const SIGN_INS_PER_MINUTE: u32 = 20;

/// What the non-collect routes ask of a request.
pub enum Access {
    /// Everything answers everyone: `clickstream demo` only.
    Open,
    Tokens(Tokens),
}

/// A configured token: `sha256:<64 hex>` (what the config file should
/// hold) or the token itself, hashed as soon as it is read.
pub fn parse_token(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if let Some(hash) = text.strip_prefix("sha256:") {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hash, &mut out).map_err(|_| "a token hash is `sha256:` and 64 hex digits".to_string())?;
        return Ok(out);
    }
    if text.len() < 16 {
        return Err("a token must be at least 16 characters (`clickstream token new` makes one)".into());
    }
    Ok(sha256(text.as_bytes()))
}

/// The line a config file holds for `token`.
pub fn token_hash_line(token: &str) -> String {
    format!("sha256:{}", hex::encode(sha256(token.as_bytes())))
}

#[derive(Default)]
pub struct Tokens {
    /// Dashboard, `/api/*` and `/metrics`.
    api: Vec<[u8; 32]>,
    /// `/metrics` only.
    metrics: Vec<[u8; 32]>,
    /// Hashes of the session cookies handed out, with when each ends.
    sessions: Mutex<HashMap<[u8; 32], i64>>,
}

/// What a request may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grant {
    Everything,
    MetricsOnly,
}

impl Tokens {
    pub fn new(api: Vec<[u8; 32]>, metrics: Vec<[u8; 32]>) -> Tokens {
        Tokens { api, metrics, sessions: Mutex::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.api.is_empty()
    }

    /// Adds a token (the one `serve` generates when none is configured).
    pub fn add_api_token(&mut self, token: &str) {
        self.api.push(sha256(token.as_bytes()));
    }

    fn check_token(&self, token: &str) -> Option<Grant> {
        let api = token_matches(&self.api, token);
        let metrics = token_matches(&self.metrics, token);
        if api {
            Some(Grant::Everything)
        } else if metrics {
            Some(Grant::MetricsOnly)
        } else {
            None
        }
    }

    fn check_session(&self, id: &str, now: i64) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.get(&sha256(id.as_bytes())).is_some_and(|end| *end > now)
    }

    /// A new session: its cookie value.
    fn start_session(&self, now: i64) -> String {
        let id = random_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.retain(|_, end| *end > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, end)| **end).map(|(k, _)| *k) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(sha256(id.as_bytes()), now + SESSION_MS);
        id
    }

    fn end_session(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&sha256(id.as_bytes()));
    }

    /// What the request's bearer token or session cookie grants.
    fn grant(&self, headers: &HeaderMap, now: i64) -> Option<Grant> {
        if let Some(token) = bearer(headers) {
            return self.check_token(token);
        }
        cookie(headers, SESSION_COOKIE).filter(|id| self.check_session(id, now)).map(|_| Grant::Everything)
    }
}

/// The token of an `Authorization: Bearer` header.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The middleware in front of every non-collect route.
pub async fn require_access(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Access::Tokens(tokens) = &state.access else { return next.run(request).await };
    let now = state.clock.now_ms();
    let path = request.uri().path().to_string();
    match tokens.grant(request.headers(), now) {
        Some(Grant::Everything) => return next.run(request).await,
        Some(Grant::MetricsOnly) if path == "/metrics" => return next.run(request).await,
        _ => {}
    }
    // `?token=` on the dashboard: the link `serve` prints. The token then
    // moves into a session cookie and out of the address bar.
    if path == "/dashboard" {
        let query = Query::<HashMap<String, String>>::try_from_uri(request.uri()).map(|q| q.0).unwrap_or_default();
        if let Some(token) = query.get("token") {
            if let Err(refused) = state.limit_sign_in(&request) {
                return refused;
            }
            if tokens.check_token(token) == Some(Grant::Everything) {
                return signed_in(tokens, request.headers(), now);
            }
            return sign_in_page(StatusCode::UNAUTHORIZED, "That token is not valid.");
        }
        return sign_in_page(StatusCode::UNAUTHORIZED, "");
    }
    unauthorized()
}

/// The admin listener's `/metrics`: its own network is its protection,
/// unless metrics tokens are configured, which it then asks for.
pub async fn require_metrics_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match &state.access {
        Access::Tokens(tokens) if !tokens.metrics.is_empty() => {
            match bearer(request.headers()).and_then(|t| tokens.check_token(t)) {
                Some(_) => next.run(request).await,
                None => unauthorized(),
            }
        }
        _ => next.run(request).await,
    }
}

fn unauthorized() -> Response {
    let body = Json(serde_json::json!({
        "error": "unauthorized",
        "message": "this route needs an API token: send `Authorization: Bearer <token>` (see the README's Security section)",
    }));
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer realm=\"clickstream\"")], body).into_response()
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /auth/login` (the sign-in form): a session cookie for a valid token.
pub async fn login(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let Access::Tokens(tokens) = &state.access else { return Redirect::to("/dashboard").into_response() };
    if let Err(refused) = state.limit_sign_in(&request) {
        return refused;
    }
    let headers = request.headers().clone();
    let Ok(Form(form)) = Form::<SignIn>::from_request(request, &()).await else {
        return sign_in_page(StatusCode::BAD_REQUEST, "Send the form's token field.");
    };
    if tokens.check_token(&form.token) == Some(Grant::Everything) {
        return signed_in(tokens, &headers, state.clock.now_ms());
    }
    sign_in_page(StatusCode::UNAUTHORIZED, "That token is not valid.")
}

/// `POST /auth/logout`: the session ends here, not only in the browser.
pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let (Access::Tokens(tokens), Some(id)) = (&state.access, cookie(&headers, SESSION_COOKIE)) {
        tokens.end_session(id);
    }
    let expired = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to("/dashboard").into_response();
    if let Ok(v) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

fn signed_in(tokens: &Tokens, headers: &HeaderMap, now: i64) -> Response {
    let id = tokens.start_session(now);
    // Secure when the browser reached us over TLS (a proxy in front says so).
    let tls =
        headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        SESSION_MS / 1000,
        if tls { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/dashboard").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn sign_in_page(status: StatusCode, problem: &str) -> Response {
    let page = include_str!("../../assets/sign-in.html").replace("{{problem}}", problem);
    (status, crate::api::PAGE_SECURITY_HEADERS, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_hashed_and_checked_whatever_their_form() {
        let token = "0123456789abcdef-token";
        assert_eq!(parse_token(token).unwrap(), parse_token(&token_hash_line(token)).unwrap());
        assert!(parse_token("short").unwrap_err().contains("16"));
        assert!(parse_token("sha256:zz").is_err());
        let mut tokens =
            Tokens::new(vec![parse_token(token).unwrap()], vec![parse_token("metrics-only-token-1").unwrap()]);
        assert_eq!(tokens.check_token(token), Some(Grant::Everything));
        assert_eq!(tokens.check_token("metrics-only-token-1"), Some(Grant::MetricsOnly));
        assert_eq!(tokens.check_token("0123456789abcdef-tokeN"), None);
        tokens.add_api_token("generated-at-start-0001");
        assert_eq!(tokens.check_token("generated-at-start-0001"), Some(Grant::Everything));
    }

    #[test]
    fn sessions_end_on_sign_out_and_in_time() {
        let tokens = Tokens::default();
        let id = tokens.start_session(1_000);
        assert!(tokens.check_session(&id, 1_000 + SESSION_MS - 1));
        assert!(!tokens.check_session(&id, 1_000 + SESSION_MS), "expired");
        assert!(!tokens.check_session("forged", 1_000));
        tokens.end_session(&id);
        assert!(!tokens.check_session(&id, 1_001), "signed out");
    }

    #[test]
    fn credentials_are_read_from_their_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; clickstream_session=xyz; b=2"));
        assert_eq!(bearer(&headers), Some("abc"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}
