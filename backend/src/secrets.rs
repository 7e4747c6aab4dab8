//! Secrets at rest and in comparison: random tokens from the operating
//! system's CSPRNG, files that are private (0600) from the moment they
//! exist, and hashes compared in constant time.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A secret value whose `Debug` shows nothing of it, so a settings
/// struct printed whole (by a panic, say) does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted<T>(pub T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `n` random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A random token of 32 bytes, hex: what `serve` generates for the
/// dashboard when none is configured, and `clickstream token new` prints.
pub fn random_token() -> String {
    hex::encode(random_bytes::<32>())
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal, in a time that does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Is `token`'s hash among `hashes`? Every hash is compared, whichever
/// matches, each in constant time.
pub fn token_matches(hashes: &[[u8; 32]], token: &str) -> bool {
    let hash = sha256(token.as_bytes());
    hashes.iter().fold(false, |hit, h| hit | constant_time_eq(h, &hash))
}

/// Creates `path` holding `bytes`, readable by its owner only from the
/// start (never written 0644 and then narrowed), and complete when it
/// appears: written under a unique temporary name and hard-linked into
/// place. `Ok(false)` when `path` already exists (another process won the
/// race; its file is kept).
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".tmp-{}", hex::encode(random_bytes::<8>())));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// A directory only its owner can list and enter (0700 on Unix).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_from_the_start_and_never_replaced() {
        let dir = std::env::temp_dir().join(format!("clickstream-secrets-{}", random_token()));
        let path = dir.join("nested/secret");
        assert!(create_private(&path, b"first").unwrap());
        assert!(!create_private(&path, b"second").unwrap(), "the first writer wins");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(dir.join("nested")).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.join("nested")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("secret")], "no temporary file is left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tokens_are_random_and_comparisons_exact() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(constant_time_eq(&sha256(a.as_bytes()), &sha256(a.as_bytes())));
        assert!(!constant_time_eq(&sha256(a.as_bytes()), &sha256(b.as_bytes())));
        assert!(!constant_time_eq(b"ab", b"abc"));
    }
}
