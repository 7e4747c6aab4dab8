//! Which stream the pipeline runs on, and the Fluvio client's settings.

use super::{defaults, CommonFlags, Env};
use crate::config::{FileConfig, FluvioFileConfig};
use crate::stream::{FluvioSettings, FluvioTls};

/// The Fluvio settings when the stream is Fluvio, `None` for the embedded
/// log. Without a stream named anywhere, an SC address given as a flag or
/// in the environment means Fluvio.
pub(super) fn fluvio(
    flags: &CommonFlags,
    env: Env,
    file: &FileConfig,
    partitions: u32,
) -> anyhow::Result<Option<FluvioSettings>> {
    let sc = flags.fluvio_sc.clone().or_else(|| env("CLICKSTREAM_FLUVIO_SC"));
    let (kind, key) = match (&flags.stream, env("CLICKSTREAM_STREAM")) {
        (Some(flag), _) => (Some(flag.clone()), "--stream"),
        (None, Some(from_env)) => (Some(from_env), "CLICKSTREAM_STREAM"),
        (None, None) => (file.stream.clone(), "stream"),
    };
    let fluvio = match kind.as_deref() {
        Some("fluvio") => true,
        Some("embedded") => false,
        Some(other) => anyhow::bail!("{key} must be \"embedded\" or \"fluvio\", got {other:?}"),
        None => sc.is_some(),
    };
    if !fluvio {
        return Ok(None);
    }
    Ok(Some(client(&file.fluvio.clone().unwrap_or_default(), sc, partitions)?))
}

/// The client settings from the file's `[fluvio]`, with `sc` (flag or
/// environment) winning over the file's.
fn client(file: &FluvioFileConfig, sc: Option<String>, partitions: u32) -> anyhow::Result<FluvioSettings> {
    let mut s = FluvioSettings::new(sc.or(file.sc.clone()).unwrap_or_else(|| defaults::FLUVIO_SC.into()));
    s.partitions = file.partitions.unwrap_or(partitions);
    if let Some(n) = file.replication {
        s.replication = n;
    }
    anyhow::ensure!(s.partitions > 0 && s.replication > 0, "fluvio partitions and replication must be at least 1");
    s.topic_prefix = file.topic_prefix.clone().unwrap_or_default();
    if let Some(n) = file.batch_bytes {
        s.batch_bytes = n;
    }
    if let Some(ms) = file.linger_ms {
        s.linger = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = file.timeout_ms {
        s.timeout = std::time::Duration::from_millis(ms.max(1));
    }
    if let Some(c) = &file.compression {
        s.compression = match c.as_str() {
            "none" => fluvio::Compression::None,
            "gzip" => fluvio::Compression::Gzip,
            "snappy" => fluvio::Compression::Snappy,
            "lz4" => fluvio::Compression::Lz4,
            "zstd" => fluvio::Compression::Zstd,
            other => anyhow::bail!("fluvio compression must be none, gzip, snappy, lz4 or zstd, got {other:?}"),
        };
    }
    s.tls = match (&file.tls_domain, &file.tls_ca_cert, &file.tls_cert, &file.tls_key) {
        (Some(domain), Some(ca), Some(cert), Some(key)) => {
            for f in [ca, cert, key] {
                anyhow::ensure!(f.is_file(), "fluvio TLS file {} does not exist", f.display());
            }
            FluvioTls::Verified { domain: domain.clone(), ca_cert: ca.clone(), cert: cert.clone(), key: key.clone() }
        }
        (None, None, None, None) if file.tls_no_verify.unwrap_or(false) => FluvioTls::NoVerify,
        (None, None, None, None) => FluvioTls::Disabled,
        _ => anyhow::bail!("fluvio TLS needs all of tls_domain, tls_ca_cert, tls_cert and tls_key"),
    };
    Ok(s)
}
