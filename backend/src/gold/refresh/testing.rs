//! A micro-batch on top of a published history, for the steps' own tests.
//!
//! One day of shop traffic is split several ways into a history (in Silver
//! and Gold, built as the aggregator builds it) and a micro-batch (fresh
//! Silver rows, not published yet). After a step runs on the micro-batch
//! and commits, its tables must be what one query over the whole day gives
//! ([`all_tables`], the rebuild): "incremental equals rebuild", step by
//! step.

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::*;

use super::finality::{watermark, with_is_final, Watermarks};
use super::hours::{hours_of, SilverView, Writer};
use crate::gold::fixture::{at, ev, silver, with_goals, DataDir, Ev};
use crate::gold::{all_tables, GoldConfig, GoldTable, GOLD_INPUT, WINDOW_INPUT};
use crate::storage::scan::{has_files, scan_table};
use crate::storage::{Commit, Manifest, PipelineError};

/// The day: visits that go on across a split, visits joined by a late
/// event, a late visit hours before a visitor's first, a crawler, and a
/// visitor whose burst flags it as a bot after quiet page views.
fn day() -> Vec<Ev> {
    let mut events = vec![
        ev("a1", "page_view", at(10, 0), "a")
            .path("/p/1")
            .title("Product 1")
            .product("p1")
            .named("Shoe", "shoes")
            .utm("ads"),
        ev("a2", "add_to_cart", at(10, 20), "a").product("p1").cart(1, 5.0),
        ev("a3", "begin_checkout", at(10, 40), "a"),
        ev("a4", "purchase", at(10, 45), "a").product("p1").bought("o-a", 1, 5.0).user("u-a"),
        // Two visits 50 minutes apart, one once m2 fills the gap.
        ev("m1", "page_view", at(9, 0), "m"),
        ev("m2", "page_view", at(9, 25), "m").path("/late"),
        ev("m3", "page_view", at(9, 50), "m").path("/x"),
        ev("b1", "page_view", at(11, 0), "b").title("Home").utm("mail"),
        ev("b1s", "custom", at(11, 5), "b").custom("newsletter_signup").prop("placement", serde_json::json!("home")),
        ev("b1t", "page_view", at(13, 1), "b").path("/thank-you/o-b"),
        ev("b2", "purchase", at(13, 0), "b").product("p2").bought("o-b", 2, 120.0).cart(2, 60.0),
        // c's first visit arrives late, long before the one known.
        // Its title is older than b1's: dim_pages keeps "Home"; its product
        // name older than a1's: dim_products keeps "Shoe".
        ev("c0", "page_view", at(7, 0), "c")
            .title("Home (old)")
            .product("p1")
            .named("Shoe (old)", "boots")
            .utm("early"),
        ev("c1", "page_view", at(12, 0), "c").utm("later").user("u-c"),
        ev("c1s", "custom", at(12, 5), "c").custom("newsletter_signup").prop("placement", serde_json::json!("footer")),
        ev("r1", "page_view", at(10, 5), "crawler").bot(),
        ev("q1", "page_view", at(8, 0), "q"),
        ev("q2", "page_view", at(9, 10), "q").path("/p/1").title("Product one").product("p1").named("Shoe", "shoes"),
        // Two days before: dim_date gains them and the day between.
        ev("z0", "page_view", at(-26, 0), "z").path("/p/2").product("p2").named("Cap", "hats"),
        // z's browser turns out to be u-c's other device: u-c's history
        // starts two days before (retention's cohorts move).
        ev("z1", "page_view", at(8, 30), "z").user("u-c"),
        // A shared browser: u-a signs in, then u-s (the browser is u-s's).
        ev("sh1", "page_view", at(9, 5), "sh").user("u-a"),
        ev("sh2", "page_view", at(12, 30), "sh").user("u-s"),
        // An outbound link and a download (link_clicks_1h); a link within
        // the site is neither.
        ev("bo", "click", at(11, 2), "b").href("https://www.instagram.com/shop"),
        ev("bd", "click", at(11, 3), "b").href("https://shop.example/files/size-guide.pdf"),
        ev("bi", "click", at(11, 4), "b").href("https://shop.example/c/shoes"),
        ev("cd", "click", at(12, 6), "c").href("/files/size-guide.pdf"),
        // Pages read (engagement_1h, sessions.engaged_ms): a's product page
        // over two reports (the tab hidden once), b's home page, and m's
        // first page, reported late.
        ev("al1", "page_leave", at(10, 10), "a").path("/p/1").read(420_000, 55),
        ev("al2", "page_leave", at(10, 19), "a").path("/p/1").read(120_000, 90),
        ev("bl", "page_leave", at(11, 6), "b").read(300_000, 60),
        ev("ml", "page_leave", at(9, 20), "m").read(1_100_000, 35),
        // 23:30 and 00:10 in New York: two days there, one UTC day.
        ev("n1", "page_view", at(4, 30), "n"),
        ev("n2", "page_view", at(5, 10), "n"),
    ];
    events.extend((0..51).map(|i| ev(format!("q-burst-{i}"), "click", at(11, 30) + i * 1000, "q")));
    events
}

/// Whether an event of the day goes in the new micro-batch.
type InBatch = fn(&Ev) -> bool;

/// Which of the day's events a micro-batch holds, per split.
fn splits() -> [(&'static str, InBatch); 5] {
    [
        ("in event-time order, split at 10:30", |e: &Ev| e.ts >= at(10, 30)),
        ("late events", |e: &Ev| ["m2", "c0", "a4", "z0", "z1", "sh2", "n1", "bd", "ml"].contains(&e.id.as_str())),
        ("a burst flags a quiet visitor", |e: &Ev| e.id.starts_with("q-burst")),
        ("only the watermark moves on", |e: &Ev| e.id == "b2"),
        ("the first micro-batch", |_: &Ev| true),
    ]
}

/// Sorted by every column, so frames compare whatever order rows were
/// written in.
pub(super) fn by_all_columns(df: DataFrame) -> DataFrame {
    let names = df.get_column_names_owned();
    if names.is_empty() {
        return df;
    }
    df.sort(names, SortMultipleOptions::default()).expect("sortable columns")
}

pub(super) struct Scenario {
    pub name: &'static str,
    pub history: Vec<Ev>,
    pub batch: Vec<Ev>,
    pub config: GoldConfig,
    dir: DataDir,
    /// The micro-batch's Silver rows (Gold's input columns).
    fresh: DataFrame,
}

impl Scenario {
    /// Every split of the day; `label` names the test's data directories.
    pub fn all(label: &str) -> Vec<Scenario> {
        splits()
            .into_iter()
            .enumerate()
            .map(|(i, (name, in_batch))| Scenario::new(&format!("{label}-{i}"), name, in_batch))
            .collect()
    }

    /// Publishes the events `in_batch` leaves out, with Gold built from
    /// them; the others are the micro-batch.
    pub fn new(label: &str, name: &'static str, in_batch: impl Fn(&Ev) -> bool) -> Scenario {
        let (batch, history): (Vec<Ev>, Vec<Ev>) = day().into_iter().partition(|e| in_batch(e));
        let dir = DataDir::new(&format!("refresh-{label}"));
        let config = with_goals();
        dir.publish_with(&history, &config);
        let fresh = silver(&batch).select(GOLD_INPUT.iter().map(|c| col(*c)).collect::<Vec<_>>()).collect().unwrap();
        Scenario { name, history, batch, config, dir, fresh }
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    pub fn all_events(&self) -> Vec<Ev> {
        self.history.iter().chain(&self.batch).cloned().collect()
    }

    fn view(&self) -> SilverView<'_> {
        SilverView { data_dir: self.dir(), unpublished: self.fresh.clone() }
    }

    /// The hours of the micro-batch's rows, and `columns` of Silver in
    /// them (published and fresh), as the refresh reads them first.
    pub fn fresh_slice(view: &SilverView<'_>, fresh: &DataFrame) -> (BTreeSet<i64>, DataFrame) {
        let hours = hours_of(fresh, "event_ts").unwrap();
        let slice = view.hours(&hours, WINDOW_INPUT, None).unwrap().collect().unwrap();
        (hours, slice)
    }

    pub fn fresh_hours_slice(&self) -> DataFrame {
        Scenario::fresh_slice(&self.view(), &self.fresh).1
    }

    /// The watermark before and after the micro-batch.
    pub fn watermarks(&self) -> Watermarks {
        let mut manifest = Manifest::load(self.dir()).unwrap();
        Watermarks::advance(&mut manifest, &self.fresh, &self.config).unwrap()
    }

    /// Runs `steps` as the micro-batch's refresh, with the watermark it
    /// moves to, and commits what they wrote.
    pub fn refresh_and_commit(
        &self,
        steps: impl FnOnce(&SilverView<'_>, &DataFrame, &mut Writer<'_>, &mut Commit) -> Result<(), PipelineError>,
    ) {
        let view = self.view();
        let mut manifest = Manifest::load(self.dir()).unwrap();
        let marks = Watermarks::advance(&mut manifest, &self.fresh, &self.config).unwrap();
        let mut out = Writer::new(self.dir(), &self.config, marks.new);
        let mut commit = Commit::new(self.dir(), manifest.seq + 1);
        steps(&view, &self.fresh, &mut out, &mut commit).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let at = manifest.committed_at;
        commit.commit(manifest, at).unwrap();
    }

    /// The whole refresh, as the aggregator runs it, committed.
    pub fn refresh_whole(&self) {
        let mut manifest = Manifest::load(self.dir()).unwrap();
        let mut commit = Commit::new(self.dir(), manifest.seq + 1);
        super::refresh(&self.view(), &mut commit, &mut manifest, &self.fresh, &self.config).unwrap();
        let at = manifest.committed_at;
        commit.commit(manifest, at).unwrap();
    }

    /// A table as Gold holds it now (without its partition column).
    fn written(&self, table: GoldTable, with_flags: bool) -> DataFrame {
        if !has_files(self.dir(), table) {
            return DataFrame::empty();
        }
        let mut df = scan_table(self.dir(), table).unwrap().collect().unwrap().drop("dt").unwrap();
        if !with_flags && df.schema().contains("is_final") {
            df = df.drop("is_final").unwrap();
        }
        by_all_columns(df)
    }

    /// A table computed in one query from `events`, flagged as of
    /// `watermark` when asked to.
    fn rebuilt(&self, events: &[Ev], table: GoldTable, flags: Option<Option<i64>>) -> DataFrame {
        let (_, lf) = all_tables(silver(events), &self.config).unwrap().into_iter().find(|(t, _)| *t == table).unwrap();
        let mut df = lf.collect().unwrap();
        if let Some(watermark) = flags {
            df = with_is_final(table, df, watermark, &self.config).unwrap();
        }
        by_all_columns(df)
    }

    fn assert_same(&self, table: GoldTable, written: &DataFrame, expected: &DataFrame, what: &str) {
        let same = if written.height() == 0 || expected.height() == 0 {
            written.height() == expected.height()
        } else {
            written.equals_missing(expected)
        };
        assert!(same, "{}: {} {what}\nwritten: {written}\nexpected: {expected}", self.name, table.name());
    }

    /// The table is the rebuild's (`is_final` aside).
    pub fn assert_as_rebuilt(&self, table: GoldTable) {
        let expected = self.rebuilt(&self.all_events(), table, None);
        self.assert_same(table, &self.written(table, false), &expected, "differs from a rebuild");
    }

    /// The table is the rebuild's, `is_final` flags included.
    pub fn assert_as_rebuilt_with_flags(&self, table: GoldTable) {
        let events = self.all_events();
        let latest = events.iter().map(|e| e.ts).max();
        let expected = self.rebuilt(&events, table, Some(watermark(latest, &self.config)));
        self.assert_same(table, &self.written(table, true), &expected, "or its flags differ from a rebuild");
    }

    /// The table holds the history's rows, flagged as of `watermark`.
    pub fn assert_history_flagged_at(&self, table: GoldTable, watermark: Option<i64>) {
        let expected = self.rebuilt(&self.history, table, Some(watermark));
        self.assert_same(table, &self.written(table, true), &expected, "flags differ from the watermark's");
    }
}
