//! `link_clicks_1h`: the links that take visitors away (outbound links) and
//! the files they download, from the tracker's click events.
//!
//! A click on a link whose target's path ends in a file extension of
//! [`DOWNLOAD_EXTENSIONS`] is a download (on the site or elsewhere);
//! otherwise a click whose target is another host than the page it was on
//! (`www.` aside) is an outbound link. Other clicks (buttons, links within
//! the site, `mailto:`) are neither.

use polars::prelude::*;

use super::sources::host_of;
use super::{is_type, window_of};

/// What a link's file extension must be for a click on it to be a
/// download: documents, archives, installers and media (lower case).
pub const DOWNLOAD_EXTENSIONS: &[&str] = &[
    "pdf", "csv", "txt", "rtf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "epub", "key", "zip",
    "rar", "7z", "gz", "tgz", "bz2", "xz", "dmg", "exe", "msi", "pkg", "deb", "rpm", "apk", "iso", "mp3", "wav",
    "flac", "ogg", "mp4", "mov", "avi", "wmv", "mkv", "webm",
];

/// The file extension of a URL's last path segment (lower case), if any:
/// `https://x.example/a/Guide.PDF?v=2` → `pdf`; `https://x.example` → none.
pub fn extension(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let file = path.rsplit('/').next().unwrap_or("");
    let (stem, ext) = file.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| ext.to_ascii_lowercase())
}

/// What a click on `href` from `page_url` is: `download`, `outbound`, or
/// neither.
pub fn link_kind(href: &str, page_url: Option<&str>) -> Option<&'static str> {
    if extension(href).is_some_and(|e| DOWNLOAD_EXTENSIONS.contains(&e.as_str())) {
        return Some("download");
    }
    let bare = |h: String| h.strip_prefix("www.").map(str::to_string).unwrap_or(h);
    let (to, from) = (host_of(href).map(bare)?, page_url.and_then(host_of).map(bare)?);
    (to != from).then_some("outbound")
}

/// One row per site, hour, kind and link target clicked by humans.
///
/// Columns:
/// - `site_id`, `hour_start`;
/// - `kind`: `outbound` or `download`;
/// - `url`: the link's target as the tracker sent it (its query cleaned
///   like a page URL's);
/// - `clicks`, `visitors` (distinct `anonymous_id` in the hour; hours do
///   not add up to distinct visitors), both u32.
pub fn link_clicks_1h(human: LazyFrame) -> LazyFrame {
    human
        .filter(is_type("click").and(col("click_href").is_not_null()))
        .with_column(
            as_struct(vec![col("click_href"), col("page_url")])
                .map(
                    |c| {
                        let fields = c.struct_()?.fields_as_series();
                        let (href, page) = (fields[0].str()?, fields[1].str()?);
                        let kinds: StringChunked =
                            href.iter().zip(page.iter()).map(|(h, p)| h.and_then(|h| link_kind(h, p))).collect();
                        Ok(kinds.with_name("kind".into()).into_column())
                    },
                    |_, _| Ok(Field::new("kind".into(), DataType::String)),
                )
                .alias("kind"),
        )
        .filter(col("kind").is_not_null())
        .with_column(window_of("event_ts", "1h").alias("hour_start"))
        .group_by([col("site_id"), col("hour_start"), col("kind"), col("click_href").alias("url")])
        .agg([
            len().cast(DataType::UInt32).alias("clicks"),
            col("anonymous_id").n_unique().cast(DataType::UInt32).alias("visitors"),
        ])
        .sort(["site_id", "hour_start", "kind", "url"], SortMultipleOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_files_by_extension_and_outbound_links_other_hosts() {
        let page = Some("https://shop.example/p/1?x=1");
        assert_eq!(link_kind("https://shop.example/files/Size-Guide.PDF?v=2", page), Some("download"));
        assert_eq!(link_kind("https://cdn.other.example/catalog.zip#top", page), Some("download"));
        assert_eq!(link_kind("/files/terms.pdf", page), Some("download"));
        assert_eq!(link_kind("https://www.instagram.com/shop", page), Some("outbound"));
        assert_eq!(link_kind("https://partner.example.org/a.html", page), Some("outbound"));
        // The same site (with or without www.), a bare domain, mail, relative links.
        assert_eq!(link_kind("https://www.shop.example/p/2", page), None);
        assert_eq!(link_kind("https://shop.example", page), None);
        assert_eq!(link_kind("mailto:hi@shop.example", page), None);
        assert_eq!(link_kind("/c/shoes", page), None);
        assert_eq!(link_kind("https://other.example/", None), None, "no page to compare with");
        assert_eq!(extension("https://x.example"), None);
        assert_eq!(extension("https://x.example/.env"), None);
        assert_eq!(extension("https://x.example/a/b.tar.gz"), Some("gz".into()));
    }

    #[test]
    fn the_analysts_guide_lists_the_download_extensions() {
        let guide = include_str!("../../../docs/analysts.md").split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(guide.contains(&DOWNLOAD_EXTENSIONS.join(", ")), "docs/analysts.md: update the list of extensions");
    }
}
