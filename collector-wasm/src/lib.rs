//! The browser tracker.
//!
//! Everything a tracker decides (when to flush, which session an event
//! belongs to, what the persisted queue holds, how long to back off, what
//! consent allows, what a click or a URL may reveal) is plain Rust in the
//! modules below, tested natively by `cargo test` and in headless Chromium
//! by wasm-bindgen-test. `web` is the thin wasm-bindgen layer over them that
//! the JS entry point (`js/loader.js`: listeners, timers, `fetch`/`sendBeacon`
//! and the JS API `init`, `track`, `page`, ...) drives, with storage and ids
//! from `js/device.js`.

pub mod click;
pub mod consent;
pub mod json;
pub mod options;
pub mod props;
pub mod queue;
pub mod retry;
pub mod session;
pub mod tracker;
pub mod url;

#[cfg(target_arch = "wasm32")]
mod web;

pub use options::Options;
pub use tracker::{Pending, Platform, Stats, Tracker};

/// Core tests run natively (`cargo test`) and, compiled to wasm32, in
/// headless Chromium (`wasm-bindgen-test`); one attribute for both.
#[cfg(test)]
macro_rules! both {
    ($($item:item)*) => {
        $(
            #[cfg_attr(not(target_arch = "wasm32"), test)]
            #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
            $item
        )*
    };
}
#[cfg(test)]
pub(crate) use both;

#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
