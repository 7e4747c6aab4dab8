//! A data directory on S3 (`--data-dir s3://bucket/prefix`).
//!
//! The rest of the storage module names files by path, joined onto the
//! data directory: `s3://lake/shop/silver/events/dt=…/part-….parquet` is
//! such a path too, so the layout, the roles' file names and the commit
//! protocol are the same code for both. What differs is each primitive
//! operation, and the storage module asks this one for every operation on
//! a path [`is_remote`] says is in a bucket.
//!
//! S3 has no rename, and this is where the commit protocol changes
//! ([`super::commit`]): a temporary file is an object of its own, and
//! publishing it is a server-side copy then a delete (idempotent, so a
//! recovery may do it again). The manifest is written with a conditional
//! put: `If-None-Match: *` for the first, then `If-Match` with the ETag
//! of the manifest the writer read (or last wrote). That put is the commit point, and it
//! also fences: a second process running the same role (a consumer that
//! was thought dead, a copy started by mistake) fails its next commit
//! instead of overwriting the other's progress.
//!
//! Credentials, region and endpoint come from the usual AWS environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP` for a local server),
//! read the same way by this module and by Polars' cloud reader, so the
//! writes and the scans see one bucket. [`set_overrides`] adds settings on
//! top (tests, which cannot change their own environment safely).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use polars::prelude::cloud::CloudOptions;

/// The names of the bucket settings [`set_overrides`] takes.
pub use object_store::aws::AmazonS3ConfigKey as S3Setting;
pub use object_store::ClientConfigKey;

const SCHEME: &str = "s3://";

/// Whether a data directory (or a path inside one) is in a bucket.
pub fn is_remote(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with(SCHEME))
}

/// Settings added to the AWS environment's, for every bucket this process
/// opens afterwards, and for Polars' scans of them.
pub fn set_overrides(settings: Vec<(AmazonS3ConfigKey, String)>) {
    *lock(overrides()) = settings;
    lock(buckets()).clear();
}

fn overrides() -> &'static Mutex<Vec<(AmazonS3ConfigKey, String)>> {
    static OVERRIDES: OnceLock<Mutex<Vec<(AmazonS3ConfigKey, String)>>> = OnceLock::new();
    OVERRIDES.get_or_init(Mutex::default)
}

/// A poisoned lock only means another thread panicked while holding a
/// plain map: the map itself is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The options Polars scans a bucket with: the same overrides (Polars
/// reads the AWS environment itself).
pub fn cloud_options() -> CloudOptions {
    let settings = lock(overrides()).clone();
    let mut options = CloudOptions::default();
    if !settings.is_empty() {
        options = options.with_aws(settings);
    }
    options
}

/// One bucket's client.
struct Bucket {
    store: Arc<AmazonS3>,
}

fn buckets() -> &'static Mutex<HashMap<String, Arc<Bucket>>> {
    static BUCKETS: OnceLock<Mutex<HashMap<String, Arc<Bucket>>>> = OnceLock::new();
    BUCKETS.get_or_init(Mutex::default)
}

/// The requests run on a runtime of their own: the storage code is
/// synchronous (it runs on blocking threads, or in a command's main), and
/// a request must never wait on the runtime of the caller it blocks.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-io")
            .enable_all()
            .build()
            .expect("the object-store runtime starts (threads and a timer)")
    })
}

fn block<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().expect("an object-store request runs to its end (the runtime is never shut down)")
}

/// An object: its bucket's client and its key.
struct Object {
    bucket: Arc<Bucket>,
    key: Key,
}

fn object(path: &Path) -> io::Result<Object> {
    let text = path.to_str().unwrap_or_default();
    let rest = text.strip_prefix(SCHEME).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not an s3:// URL", path.display()))
    })?;
    let (name, key) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{text}: no bucket name")));
    }
    let key = Key::parse(key.trim_end_matches('/'))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{text}: {e}")))?;
    let mut open = lock(buckets());
    let bucket = match open.get(name) {
        Some(bucket) => bucket.clone(),
        None => {
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(name);
            for (k, v) in lock(overrides()).iter() {
                builder = builder.with_config(*k, v);
            }
            // A local S3-compatible server is named by its endpoint; it
            // does not care about the region, but the signer needs one.
            if builder.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
                builder = builder.with_region("us-east-1");
            }
            let store = builder.build().map_err(|e| to_io(&e, &format!("opening bucket {name}")))?;
            let bucket = Arc::new(Bucket { store: Arc::new(store) });
            open.insert(name.to_string(), bucket.clone());
            bucket
        }
    };
    Ok(Object { bucket, key })
}

fn to_io(e: &object_store::Error, what: &str) -> io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::ErrorKind::AlreadyExists
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{what}: {e}"))
}

/// The object's bytes, `None` when there is none.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    Ok(read_versioned(path)?.map(|(bytes, _)| bytes))
}

fn read_versioned(path: &Path) -> io::Result<Option<(Vec<u8>, UpdateVersion)>> {
    let Object { bucket, key } = object(path)?;
    let what = format!("reading {}", path.display());
    block(async move {
        match bucket.store.get(&key).await {
            Ok(got) => {
                let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
                let bytes = got.bytes().await.map_err(|e| to_io(&e, &what))?;
                Ok(Some((bytes.to_vec(), version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(to_io(&e, &what)),
        }
    })
}

/// Writes an object whole (readers see the old bytes or the new ones).
pub fn write(path: &Path, bytes: Vec<u8>) -> io::Result<()> {
    let Object { bucket, key } = object(path)?;
    let what = format!("writing {}", path.display());
    block(
        async move { bucket.store.put(&key, PutPayload::from(bytes)).await.map(|_| ()).map_err(|e| to_io(&e, &what)) },
    )
}

/// The version of a manifest a process read, which its next commit
/// replaces only if it is still the one there.
pub type Version = UpdateVersion;

/// Reads a manifest, with its version for [`write_manifest`].
pub fn read_manifest(path: &Path) -> io::Result<Option<(Vec<u8>, Version)>> {
    read_versioned(path)
}

/// Writes a manifest only if `base` is still the version there (`None`:
/// only if there is none yet): the commit point. Another writer's
/// manifest in between fails it with [`io::ErrorKind::AlreadyExists`].
/// Returns the version written.
pub fn write_manifest(path: &Path, bytes: Vec<u8>, base: Option<&Version>) -> io::Result<Version> {
    let Object { bucket, key } = object(path)?;
    let mode = match base {
        Some(version) => PutMode::Update(version.clone()),
        None => PutMode::Create,
    };
    let what = format!("committing {}", path.display());
    let put = block(async move {
        bucket.store.put_opts(&key, PutPayload::from(bytes), PutOptions { mode, ..PutOptions::default() }).await
    });
    match put {
        Ok(done) => Ok(UpdateVersion { e_tag: done.e_tag, version: done.version }),
        Err(e @ (object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. })) => {
            Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{what}: another process committed to this manifest since it was read \
                     (two processes run the same role on this bucket?): {e}"
                ),
            ))
        }
        Err(e) => Err(to_io(&e, &what)),
    }
}

/// Creates an object only if there is none; `false` when there is one.
pub fn create(path: &Path, bytes: Vec<u8>) -> io::Result<bool> {
    let Object { bucket, key } = object(path)?;
    let what = format!("creating {}", path.display());
    block(async move {
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match bucket.store.put_opts(&key, PutPayload::from(bytes), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(to_io(&e, &what)),
        }
    })
}

/// Whether a file exists, in a bucket or on disk (`false` when it cannot
/// be told: callers wait for a file to appear, and look again).
pub fn file_exists(path: &Path) -> bool {
    if is_remote(path) {
        exists(path).unwrap_or(false)
    } else {
        path.exists()
    }
}

pub fn exists(path: &Path) -> io::Result<bool> {
    let Object { bucket, key } = object(path)?;
    let what = format!("looking up {}", path.display());
    block(async move {
        match bucket.store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(to_io(&e, &what)),
        }
    })
}

/// Copies `from` over `to` on the server, then deletes `from`: the
/// rename of a file system, done in two idempotent steps.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let (source, target) = (object(from)?, object(to)?);
    let what = format!("publishing {} as {}", from.display(), to.display());
    block(async move {
        source.bucket.store.copy(&source.key, &target.key).await.map_err(|e| to_io(&e, &what))?;
        match source.bucket.store.delete(&source.key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(to_io(&e, &what)),
        }
    })
}

pub fn remove(path: &Path) -> io::Result<()> {
    let Object { bucket, key } = object(path)?;
    let what = format!("removing {}", path.display());
    block(async move {
        match bucket.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(to_io(&e, &what)),
        }
    })
}

/// Every object under a "directory" (a key prefix followed by `/`), as
/// paths of the same form, sorted.
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    use futures_util::TryStreamExt;
    let Object { bucket, key } = object(dir)?;
    let what = format!("listing {}", dir.display());
    let keys: Vec<String> = block(async move {
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        bucket.store.list(prefix).map_ok(|meta| meta.location.to_string()).try_collect().await
    })
    .map_err(|e| to_io(&e, &what))?;
    let text = dir.to_str().unwrap_or_default();
    let name = text.strip_prefix(SCHEME).unwrap_or_default().split('/').next().unwrap_or_default();
    let mut out: Vec<PathBuf> = keys.into_iter().map(|k| PathBuf::from(format!("{SCHEME}{name}/{k}"))).collect();
    out.sort();
    Ok(out)
}
