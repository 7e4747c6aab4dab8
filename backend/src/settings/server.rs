//! The server's settings: listener, limits, secrets and tokens, the
//! collect routes' defences, the site and the tracker.

use std::path::Path;
use std::time::Duration;

use super::{defaults, or_env, Env, ServeFlags};
use crate::config::FileConfig;
use crate::secrets::Redacted;
use crate::serve::ServeSettings;
use crate::server::auth::parse_token;
use crate::server::{CollectGuard, IngestAuth, TrustedProxies};

/// `serve`'s flags with the environment variables of those that have one.
pub(super) fn with_env(flags: &ServeFlags, env: Env) -> anyhow::Result<ServeFlags> {
    let text = |flag: &Option<String>, name: &str| flag.clone().or_else(|| env(name));
    Ok(ServeFlags {
        port: or_env(flags.port, env, "CLICKSTREAM_PORT")?,
        bind: text(&flags.bind, "CLICKSTREAM_BIND"),
        ingest_secret: text(&flags.ingest_secret, "CLICKSTREAM_INGEST_SECRET"),
        client_ip_header: text(&flags.client_ip_header, "CLICKSTREAM_CLIENT_IP_HEADER"),
        admin_bind: text(&flags.admin_bind, "CLICKSTREAM_ADMIN_BIND"),
        ..flags.clone()
    })
}

/// The server's settings from its flags (the environment already in
/// them), the environment-only variables and the file. The caller sets
/// the stream and the aggregator.
pub(super) fn resolve(
    flags: &ServeFlags,
    env: Env,
    file: &FileConfig,
    data_dir: &Path,
) -> anyhow::Result<ServeSettings> {
    let mut s = ServeSettings::new(data_dir);
    s.port = flags.port.or(file.port).unwrap_or(defaults::PORT);
    s.bind = flags.bind.clone().or(file.bind.clone()).unwrap_or_else(|| defaults::BIND.into());
    if let Some(n) = flags.max_body_bytes.or(file.max_body_bytes) {
        s.limits.max_body_bytes = n;
    }
    if let Some(n) = file.max_events_per_batch {
        s.limits.max_events = n;
    }
    if let Some(h) = file.horizon_hours {
        s.limits.horizon_ms = h * 3_600_000;
    }
    // An empty variable switches the file's secret off too.
    s.ip_salt_secret = env("CLICKSTREAM_IP_SALT_SECRET")
        .or(file.ip_salt_secret.clone())
        .filter(|secret| !secret.is_empty())
        .map(|secret| Redacted(secret.into_bytes()));
    s.ingest_auth = ingest_auth(flags, env, file);
    s.api_tokens = tokens("api_tokens", &file.api_tokens, env, "CLICKSTREAM_API_TOKENS")?;
    s.metrics_tokens = tokens("metrics_tokens", &file.metrics_tokens, env, "CLICKSTREAM_METRICS_TOKENS")?;
    s.admin_bind = flags.admin_bind.clone().or(file.admin_bind.clone());
    s.guard = collect_guard(file, env, flags.client_ip_header.clone())?;
    if let Some(ms) = file.header_timeout_ms {
        s.connections.header_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = file.max_connections {
        s.connections.max_connections = n;
    }
    s.country_header = Some(file.country_header.as_deref().unwrap_or(defaults::COUNTRY_HEADER).to_ascii_lowercase());
    s.site_dir = file.site_dir.clone();
    let tracker_path = file.tracker_path.clone().unwrap_or_else(|| defaults::TRACKER_PATH.into());
    if !tracker_path.starts_with('/') || tracker_path.len() < 2 {
        anyhow::bail!("tracker_path must start with / and name a path, got {tracker_path:?}");
    }
    s.tracker = file.tracker_dir.clone().or_else(defaults::tracker_dir).map(|dir| (dir, tracker_path));
    if s.tracker.is_none() {
        tracing::info!("no built tracker (run scripts/build-tracker.sh); pages are served without it");
    }
    s.collect_path = file.collect_path.clone();
    if let Some(p) = s.collect_path.as_deref().filter(|p| !p.starts_with('/')) {
        anyhow::bail!("collect_path must start with /, got {p:?}");
    }
    s.alerts = file.alerts.clone();
    s.alerting = file.alerting.clone().unwrap_or_default();
    s.zones = crate::api::Zones::new(file.time_zone.as_deref(), &file.site_time_zones).map_err(anyhow::Error::msg)?;
    if let Some(currency) = file.currency.clone() {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            anyhow::bail!("currency must be an ISO 4217 code like \"EUR\", got {currency:?}");
        }
        s.currency = currency;
    }
    Ok(s)
}

/// The demo is for one person on their own machine: open, with its shop,
/// and its generator unthrottled.
pub(super) fn open_for_the_demo(s: &mut ServeSettings) {
    s.open_access = true;
    s.guard = CollectGuard { origins: s.guard.origins.clone(), ..CollectGuard::unlimited() };
    s.site_dir = s.site_dir.take().or_else(defaults::site_dir);
}

/// How `/ingest` is authenticated: the current secret (flag or
/// environment, else the file's) and the ones being rotated out.
fn ingest_auth(flags: &ServeFlags, env: Env, file: &FileConfig) -> IngestAuth {
    let mut secrets: Vec<Vec<u8>> =
        flags.ingest_secret.iter().chain(&file.ingest_secret).cloned().map(String::into_bytes).collect();
    secrets.truncate(1); // the flag or environment wins over the file's
    let previous = env("CLICKSTREAM_INGEST_SECRET_PREVIOUS");
    secrets.extend(file.ingest_secrets.iter().chain(&previous).cloned().map(String::into_bytes));
    secrets.retain(|s| !s.is_empty());
    match (secrets.is_empty(), flags.allow_unsigned_ingest || file.allow_unsigned_ingest.unwrap_or(false)) {
        (false, _) => IngestAuth::Signed(secrets.into_iter().map(Redacted).collect()),
        (true, true) => IngestAuth::Unsigned,
        (true, false) => IngestAuth::Disabled,
    }
}

/// Tokens from the config file and a comma-separated environment
/// variable, both kept.
fn tokens(key: &str, file: &[String], env: Env, name: &str) -> anyhow::Result<Vec<[u8; 32]>> {
    let from_env = env(name).unwrap_or_default();
    file.iter()
        .map(String::as_str)
        .chain(from_env.split(',').filter(|t| !t.trim().is_empty()))
        .map(|t| parse_token(t).map_err(|e| anyhow::anyhow!("{key} (or {name}): {e}")))
        .collect()
}

/// The collect routes' defences from the config file and environment.
fn collect_guard(file: &FileConfig, env: Env, client_ip_header: Option<String>) -> anyhow::Result<CollectGuard> {
    let mut guard = CollectGuard::default();
    if let Some(json) = env("CLICKSTREAM_ALLOWED_ORIGINS") {
        guard.origins =
            edge_worker::edge::AllowedOrigins::parse(&json).map_err(|e| anyhow::anyhow!("CLICKSTREAM_{e}"))?;
    } else if let Some(origins) = &file.allowed_origins {
        guard.origins = origins.clone();
    }
    for (site, site_tokens) in &file.site_tokens {
        let hashes = site_tokens
            .iter()
            .map(|t| parse_token(t).map_err(|e| anyhow::anyhow!("site_tokens.{site}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        guard.site_tokens.insert(site.clone(), hashes);
    }
    let proxies = env("CLICKSTREAM_TRUSTED_PROXIES")
        .map(|v| v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect::<Vec<_>>())
        .or(file.trusted_proxies.clone())
        .unwrap_or_else(|| defaults::TRUSTED_PROXIES.map(String::from).to_vec());
    let header = client_ip_header.or(file.client_ip_header.clone());
    guard.proxies = TrustedProxies::parse(&proxies, header).map_err(anyhow::Error::msg)?;
    guard.per_client_per_minute = file.rate_limit_per_minute.unwrap_or(guard.per_client_per_minute);
    guard.per_site_events_per_minute = file.site_events_per_minute.unwrap_or(guard.per_site_events_per_minute);
    if let Some(ms) = file.ack_timeout_ms {
        guard.ack_timeout = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = file.body_timeout_ms {
        guard.body_timeout = Duration::from_millis(ms.max(1));
    }
    Ok(guard)
}
