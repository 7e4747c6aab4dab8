//! Each Gold table against hand-computed fixtures.

use polars::prelude::*;

use super::fixture::*;
use super::*;

#[test]
fn collecting_all_tables_at_once_gives_what_collecting_each_gives() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a").path("/p/1").product("p1"),
        ev("2", "add_to_cart", at(10, 1), "a").product("p1").cart(1, 5.0),
        ev("3", "purchase", at(10, 2), "a").product("p1").bought("o-1", 1, 5.0),
        ev("4", "page_view", at(11, 0), "b").path("/"),
    ];
    let config = GoldConfig::default();
    let together = collect_tables(all_tables(silver(&events), &config).unwrap()).unwrap();
    assert_eq!(together.len(), GoldTable::ALL.len());
    for (t, df) in together {
        assert!(df.equals_missing(&table(&events, t)), "{}", t.name());
    }
}

fn table(events: &[Ev], which: GoldTable) -> DataFrame {
    all_tables(silver(events), &GoldConfig::default())
        .unwrap()
        .into_iter()
        .find(|(t, _)| *t == which)
        .map(|(_, lf)| lf.collect().unwrap())
        .unwrap()
}

#[test]
fn bot_anomalies_flag_more_than_50_events_in_one_minute() {
    let mut events = Vec::new();
    // 51 events within 10:00 → flagged.
    for i in 0..51 {
        events.push(ev(format!("burst-{i}"), "click", at(10, 0) + i * 1000, "burster"));
    }
    // Exactly 50 in one minute → not flagged.
    for i in 0..50 {
        events.push(ev(format!("fifty-{i}"), "click", at(10, 0) + i * 1000, "busy"));
    }
    // 51 events, but the last exactly on the next minute's edge: 50 + 1.
    for i in 0..50 {
        events.push(ev(format!("edge-{i}"), "click", at(11, 0) + i * 1000, "edgy"));
    }
    events.push(ev("edge-50", "click", at(11, 1), "edgy"));

    let df = table(&events, GoldTable::BotAnomalies);
    assert_eq!(strs(&df, "anonymous_id"), vec![Some("burster".to_string())]);
    assert_eq!(u32s(&df, "events"), vec![Some(51)]);
    assert_eq!(i64s(&df, "window_start"), vec![Some(at(10, 0))]);
    assert_eq!(i64s(&df, "window_end"), vec![Some(at(10, 1))]);
}

#[test]
fn business_tables_exclude_user_agent_bots_and_flagged_visitors() {
    let mut events = vec![
        ev("h1", "page_view", at(9, 0), "human").path("/"),
        ev("b1", "page_view", at(9, 0), "crawler").path("/").bot(),
    ];
    // The burster also has a quiet page view an hour earlier: all of its
    // events go, not only the burst.
    events.push(ev("q1", "page_view", at(8, 0), "burster").path("/"));
    for i in 0..51 {
        events.push(ev(format!("burst-{i}"), "click", at(9, 0) + i * 100, "burster"));
    }
    let traffic = table(&events, GoldTable::Traffic1m);
    assert_eq!(i64s(&traffic, "window_start"), vec![Some(at(9, 0))]);
    assert_eq!(u32s(&traffic, "events"), vec![Some(1)]);
    assert_eq!(u32s(&traffic, "active_users"), vec![Some(1)]);
    let users = table(&events, GoldTable::DimUsers);
    assert_eq!(strs(&users, "anonymous_id"), vec![Some("human".to_string())]);
    let bots = table(&events, GoldTable::BotAnomalies);
    assert_eq!(strs(&bots, "anonymous_id"), vec![Some("burster".to_string())]);
}

#[test]
fn human_rows_of_a_collected_frame_are_human_events() {
    let mut events = vec![
        ev("h1", "page_view", at(9, 0), "human").path("/"),
        ev("b1", "page_view", at(9, 0), "crawler").path("/").bot(),
        ev("q1", "page_view", at(8, 0), "burster").path("/"),
    ];
    events.extend((0..51).map(|i| ev(format!("burst-{i}"), "click", at(9, 0) + i * 100, "burster")));
    let config = GoldConfig::default();
    let all = silver(&events).collect().unwrap();
    let flagged = flagged_visitors(bot_anomalies(all.clone().lazy(), &config)).collect().unwrap();
    assert_eq!(flagged.height(), 1);
    let expected = human_events(all.clone().lazy(), flagged.clone().lazy()).collect().unwrap();
    let got = human_rows(all.clone(), &flagged).unwrap();
    assert!(got.equals_missing(&expected), "got {got}\nexpected {expected}");
    assert_eq!(strs(&got, "event_id"), vec![Some("h1".to_string())]);
    // Without a bot, the frame comes back whole.
    assert!(human_rows(expected.clone(), &flagged.clear()).unwrap().equals_missing(&expected));
}

#[test]
fn traffic_1m_puts_an_event_on_the_edge_in_the_window_starting_there() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a"),
        ev("2", "click", at(10, 1) - 1, "a"),
        ev("3", "page_view", at(10, 1), "b"),
        ev("4", "page_view", at(10, 1) + 59_999, "a"),
    ];
    let df = table(&events, GoldTable::Traffic1m);
    assert_eq!(i64s(&df, "window_start"), vec![Some(at(10, 0)), Some(at(10, 1))]);
    assert_eq!(i64s(&df, "window_end"), vec![Some(at(10, 1)), Some(at(10, 2))]);
    assert_eq!(u32s(&df, "events"), vec![Some(2), Some(2)]);
    assert_eq!(u32s(&df, "page_views"), vec![Some(1), Some(2)]);
    assert_eq!(u32s(&df, "active_users"), vec![Some(1), Some(2)]);
    assert_eq!(u32s(&df, "sessions"), vec![Some(1), Some(2)]);
}

#[test]
fn a_gap_of_exactly_30_minutes_keeps_the_session_one_ms_more_splits_it() {
    let events = vec![
        ev("k1", "page_view", at(10, 0), "keeps").path("/a"),
        ev("k2", "page_view", at(10, 30), "keeps").path("/b"),
        ev("s1", "page_view", at(10, 0), "splits").path("/a"),
        ev("s2", "page_view", at(10, 30) + 1, "splits").path("/b"),
    ];
    let df = table(&events, GoldTable::Sessions);
    let anon = strs(&df, "anonymous_id");
    let keeps: Vec<usize> = (0..df.height()).filter(|&i| anon[i].as_deref() == Some("keeps")).collect();
    let splits: Vec<usize> = (0..df.height()).filter(|&i| anon[i].as_deref() == Some("splits")).collect();
    assert_eq!(keeps.len(), 1);
    assert_eq!(splits.len(), 2);
    let k = keeps[0];
    assert_eq!(i64s(&df, "duration_ms")[k], Some(30 * MIN));
    assert_eq!(u32s(&df, "page_views")[k], Some(2));
    assert_eq!(bools(&df, "bounced")[k], Some(false));
    assert_eq!(strs(&df, "entry_page")[k].as_deref(), Some("/a"));
    assert_eq!(strs(&df, "exit_page")[k].as_deref(), Some("/b"));
    for s in splits {
        assert_eq!(bools(&df, "bounced")[s], Some(true));
        assert_eq!(i64s(&df, "duration_ms")[s], Some(0));
    }
    assert_eq!(strs(&df, "session_id")[k].as_deref(), Some(format!("keeps:{}", at(10, 0)).as_str()));
}

#[test]
fn a_session_crossing_midnight_is_one_session_with_its_purchase() {
    let events = vec![
        ev("1", "page_view", at(23, 50), "night").path("/p/1").product("p1").utm("newsletter"),
        ev("2", "add_to_cart", at(23, 55), "night").product("p1").cart(2, 10.0),
        ev("3", "begin_checkout", at(24, 5), "night"),
        ev("4", "purchase", at(24, 10), "night").product("p1").bought("o-1", 2, 20.0).user("u-7"),
    ];
    let df = table(&events, GoldTable::Sessions);
    assert_eq!(df.height(), 1);
    assert_eq!(i64s(&df, "session_start"), vec![Some(at(23, 50))]);
    assert_eq!(i64s(&df, "session_end"), vec![Some(at(24, 10))]);
    assert_eq!(u32s(&df, "events"), vec![Some(4)]);
    assert_eq!(bools(&df, "bounced"), vec![Some(true)]);
    assert_eq!(bools(&df, "converted"), vec![Some(true)]);
    assert_eq!(f64s(&df, "revenue"), vec![Some(20.0)]);
    assert_eq!(strs(&df, "utm_source"), vec![Some("newsletter".to_string())]);
    assert_eq!(strs(&df, "user_id"), vec![Some("u-7".to_string())]);

    let users = table(&events, GoldTable::DimUsers);
    assert_eq!(u32s(&users, "sessions"), vec![Some(1)]);
    assert_eq!(f64s(&users, "lifetime_revenue"), vec![Some(20.0)]);
    assert_eq!(strs(&users, "user_id"), vec![Some("u-7".to_string())]);
    assert_eq!(strs(&users, "first_utm_source"), vec![Some("newsletter".to_string())]);
    assert_eq!(i64s(&users, "first_seen"), vec![Some(at(23, 50))]);
}

#[test]
fn funnel_steps_at_the_same_millisecond_count_whatever_order_the_rows_are_in() {
    let events = vec![
        // The cart add sorts before the product view it follows (same
        // millisecond, smaller id): "at or after" the view, so it counts.
        ev("t1", "add_to_cart", at(10, 0), "t").product("p1").cart(1, 5.0),
        ev("t2", "page_view", at(10, 0), "t").product("p1"),
        ev("t3", "begin_checkout", at(10, 1), "t"),
        // A checkout at the product view's millisecond, but no cart add:
        // only the view counts.
        ev("u1", "begin_checkout", at(10, 0), "u"),
        ev("u2", "page_view", at(10, 0), "u").product("p1"),
    ];
    let df = table(&events, GoldTable::Sessions);
    assert_eq!(strs(&df, "anonymous_id"), vec![Some("t".to_string()), Some("u".to_string())]);
    assert_eq!(u32s(&df, "funnel_step"), vec![Some(3), Some(1)]);
}

#[test]
fn first_and_last_of_a_session_at_one_millisecond_go_by_event_id_whatever_the_input_order() {
    // Both orders of the same rows: ties in time are broken by event id,
    // so entry and exit page, landing utm and last user are the same.
    let rows = [
        ev("v2", "page_view", at(10, 0), "v").path("/b").user("u-2"),
        ev("v1", "page_view", at(10, 0), "v").path("/a").utm("ads").user("u-1"),
        ev("v3", "page_view", at(10, 0), "v").path("/c"),
    ];
    for events in [rows.to_vec(), rows.iter().rev().cloned().collect()] {
        let df = table(&events, GoldTable::Sessions);
        assert_eq!(strs(&df, "entry_page"), vec![Some("/a".to_string())]);
        assert_eq!(strs(&df, "exit_page"), vec![Some("/c".to_string())]);
        assert_eq!(strs(&df, "utm_source"), vec![Some("ads".to_string())]);
        assert_eq!(strs(&df, "user_id"), vec![Some("u-2".to_string())]);
        assert_eq!(u32s(&df, "page_views"), vec![Some(3)]);
    }
}

#[test]
fn funnel_counts_a_step_only_after_the_previous_one() {
    let events = vec![
        // In order: reaches every step.
        ev("a1", "page_view", at(10, 0), "a").product("p1"),
        ev("a2", "add_to_cart", at(10, 1), "a").product("p1").cart(1, 5.0),
        ev("a3", "begin_checkout", at(10, 2), "a"),
        ev("a4", "purchase", at(10, 3), "a").product("p1").bought("o-a", 1, 5.0),
        // Out of order: the cart add comes before the product view, so
        // neither it nor the later steps count.
        ev("b1", "add_to_cart", at(10, 10), "b").product("p1").cart(1, 5.0),
        ev("b2", "page_view", at(10, 11), "b").product("p1"),
        ev("b3", "begin_checkout", at(10, 12), "b"),
        ev("b4", "purchase", at(10, 13), "b").product("p1").bought("o-b", 1, 5.0),
        // Only looks at the home page.
        ev("c1", "page_view", at(10, 20), "c"),
        // Next hour: a product view only.
        ev("d1", "page_view", at(11, 0), "d").product("p2"),
    ];
    let df = table(&events, GoldTable::Funnel1h);
    assert_eq!(i64s(&df, "hour_start"), vec![Some(at(10, 0)), Some(at(11, 0))]);
    assert_eq!(u32s(&df, "sessions"), vec![Some(3), Some(1)]);
    assert_eq!(u32s(&df, "product_views"), vec![Some(2), Some(1)]);
    assert_eq!(u32s(&df, "add_to_carts"), vec![Some(1), Some(0)]);
    assert_eq!(u32s(&df, "checkouts"), vec![Some(1), Some(0)]);
    assert_eq!(u32s(&df, "purchases"), vec![Some(1), Some(0)]);
    assert_eq!(f64s(&df, "cart_rate"), vec![Some(0.5), Some(0.0)]);
    assert_eq!(f64s(&df, "checkout_rate"), vec![Some(1.0), None]);
    assert_eq!(f64s(&df, "conversion_rate"), vec![Some(1.0 / 3.0), Some(0.0)]);
}

#[test]
fn revenue_5m_sums_lines_counts_orders_and_respects_the_edge() {
    let events = vec![
        ev("1", "purchase", at(10, 0), "a").product("p1").bought("o-1", 2, 20.0),
        ev("2", "purchase", at(10, 0), "a").product("p2").bought("o-1", 1, 7.5),
        ev("3", "purchase", at(10, 4) + 59_999, "b").product("p1").bought("o-2", 1, 10.0),
        ev("4", "purchase", at(10, 5), "c").product("p1").bought("o-3", 3, 30.0),
    ];
    let df = table(&events, GoldTable::Revenue5m);
    assert_eq!(i64s(&df, "window_start"), vec![Some(at(10, 0)), Some(at(10, 0)), Some(at(10, 5))]);
    assert_eq!(strs(&df, "product_id"), vec![Some("p1".into()), Some("p2".into()), Some("p1".into())]);
    assert_eq!(f64s(&df, "revenue"), vec![Some(30.0), Some(7.5), Some(30.0)]);
    assert_eq!(u32s(&df, "orders"), vec![Some(2), Some(1), Some(1)]);
    assert_eq!(i64s(&df, "units"), vec![Some(3), Some(1), Some(3)]);
}

#[test]
fn conversion_10m_counts_sessions_active_in_each_window_and_respects_the_edge() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a").path("/p/1").product("p1"),
        ev("2", "add_to_cart", at(10, 1), "a").product("p1").cart(1, 5.0),
        ev("3", "purchase", at(10, 2), "a").product("p1").bought("o-1", 1, 5.0),
        // A second line of the same order: one purchase.
        ev("4", "purchase", at(10, 2), "a").product("p2").bought("o-1", 1, 2.0),
        ev("5", "page_view", at(10, 3), "b").path("/"),
        ev("6", "add_to_cart", at(10, 9) + 59_999, "b").product("p1").cart(1, 5.0),
        ev("7", "page_view", at(10, 5), "c").path("/"),
        // Exactly on the edge: the next window's.
        ev("8", "purchase", at(10, 10), "b").product("p1").bought("o-2", 1, 5.0),
        ev("9", "page_view", at(10, 4), "crawler").path("/").bot(),
    ];
    let df = table(&events, GoldTable::Conversion10m);
    assert_eq!(i64s(&df, "window_start"), vec![Some(at(10, 0)), Some(at(10, 10))]);
    assert_eq!(i64s(&df, "window_end"), vec![Some(at(10, 10)), Some(at(10, 20))]);
    assert_eq!(u32s(&df, "sessions"), vec![Some(3), Some(1)], "the crawler is not counted");
    assert_eq!(u32s(&df, "cart_sessions"), vec![Some(2), Some(0)]);
    assert_eq!(u32s(&df, "purchase_sessions"), vec![Some(1), Some(1)]);
    assert_eq!(u32s(&df, "purchases"), vec![Some(1), Some(1)]);
    assert_eq!(f64s(&df, "conversion_rate"), vec![Some(1.0 / 3.0), Some(1.0)]);
}

#[test]
fn dim_pages_keeps_the_latest_title_and_the_first_and_last_view_of_each_path() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a").path("/p/1").title("Old name"),
        ev("2", "page_view", at(10, 5), "b").path("/p/1").title("New name"),
        // Later, but without a title: the title stays, last_seen moves.
        ev("3", "page_view", at(10, 9), "a").path("/p/1"),
        // A crawler's view counts: a dimension covers every fact.
        ev("4", "page_view", at(9, 0), "crawler").path("/p/1").bot(),
        // Two titles at the same time: the greater one.
        ev("5", "page_view", at(11, 0), "c").path("/about").title("About A"),
        ev("6", "page_view", at(11, 0), "d").path("/about").title("About B"),
        // Not a page view: no page.
        ev("7", "click", at(11, 1), "d").path("/cart"),
        ev("8", "page_view", at(12, 0), "e").path("/untitled"),
    ];
    let df = table(&events, GoldTable::DimPages);
    assert_eq!(strs(&df, "page_path"), vec![Some("/p/1".into()), Some("/about".into()), Some("/untitled".into())]);
    assert_eq!(strs(&df, "title"), vec![Some("New name".into()), Some("About B".into()), None]);
    assert_eq!(i64s(&df, "title_at"), vec![Some(at(10, 5)), Some(at(11, 0)), None]);
    assert_eq!(i64s(&df, "first_seen"), vec![Some(at(9, 0)), Some(at(11, 0)), Some(at(12, 0))]);
    assert_eq!(i64s(&df, "last_seen"), vec![Some(at(10, 9)), Some(at(11, 0)), Some(at(12, 0))]);
}

#[test]
fn identity_map_keeps_the_latest_user_of_each_browser() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a"),
        ev("2", "identify", at(10, 5), "a").user("u-1"),
        ev("3", "page_view", at(10, 6), "a").user("u-1"),
        // A shared browser: someone else signs in later.
        ev("4", "identify", at(11, 0), "a").user("u-2"),
        // An earlier identification arriving late does not replace it.
        ev("5", "page_view", at(9, 0), "a").user("u-0"),
        // The same user on a second device, a crawler that sent one too.
        ev("6", "identify", at(12, 0), "b").user("u-1"),
        ev("7", "page_view", at(12, 1), "crawler").user("u-9").bot(),
        // Never identified: no row.
        ev("8", "page_view", at(12, 2), "c"),
    ];
    let df = table(&events, GoldTable::IdentityMap);
    assert_eq!(strs(&df, "anonymous_id"), vec![Some("a".into()), Some("b".into()), Some("crawler".into())]);
    assert_eq!(strs(&df, "user_id"), vec![Some("u-2".into()), Some("u-1".into()), Some("u-9".into())]);
    assert_eq!(i64s(&df, "first_seen"), vec![Some(at(9, 0)), Some(at(12, 0)), Some(at(12, 1))]);
    assert_eq!(i64s(&df, "last_seen"), vec![Some(at(11, 0)), Some(at(12, 0)), Some(at(12, 1))]);
}

#[test]
fn retention_counts_people_by_the_week_and_day_they_were_first_seen() {
    let day = |d: i64| at(d * 24 + 10, 0);
    // 2026-11-22 (day 0) is a Sunday: its week starts Monday the 16th.
    let events = vec![
        ev("a0", "page_view", day(0), "a"),
        ev("a1", "page_view", day(1), "a"),
        ev("a8", "page_view", day(8), "a"),
        ev("b1", "page_view", day(1), "b"),
        // c and d are one person: u1 signed in on both.
        ev("c1", "page_view", day(1), "c"),
        ev("c9", "page_view", day(9), "c").user("u1"),
        ev("d15", "page_view", day(15), "d").user("u1"),
        // Bots are nobody's cohort.
        ev("r1", "page_view", day(1), "crawler").bot(),
    ];
    let dates = |df: &DataFrame, name: &str| -> Vec<Option<i32>> {
        df.column(name).unwrap().cast(&DataType::Int32).unwrap().i32().unwrap().iter().collect()
    };
    let d0 = (DAY / 86_400_000) as i32;
    let weekly = table(&events, GoldTable::RetentionWeekly);
    let (w16, w23) = (Some(d0 - 6), Some(d0 + 1));
    assert_eq!(dates(&weekly, "cohort_week"), vec![w16, w16, w16, w23, w23, w23]);
    assert_eq!(dates(&weekly, "week_offset"), vec![Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)]);
    assert_eq!(u32s(&weekly, "cohort_size"), vec![Some(1), Some(1), Some(1), Some(2), Some(2), Some(2)]);
    assert_eq!(u32s(&weekly, "active"), vec![Some(1), Some(1), Some(1), Some(2), Some(1), Some(1)]);
    assert_eq!(f64s(&weekly, "retention_rate"), vec![Some(1.0), Some(1.0), Some(1.0), Some(1.0), Some(0.5), Some(0.5)]);
    assert_eq!(i64s(&weekly, "cohort_start")[0], Some(i64::from(d0 - 6) * 86_400_000));

    let daily = table(&events, GoldTable::RetentionDaily);
    let (c0, c1) = (Some(d0), Some(d0 + 1));
    assert_eq!(dates(&daily, "cohort_day"), vec![c0, c0, c0, c1, c1, c1]);
    assert_eq!(dates(&daily, "day_offset"), vec![Some(0), Some(1), Some(8), Some(0), Some(8), Some(14)]);
    assert_eq!(u32s(&daily, "cohort_size"), vec![Some(1), Some(1), Some(1), Some(2), Some(2), Some(2)]);
    assert_eq!(u32s(&daily, "active"), vec![Some(1), Some(1), Some(1), Some(2), Some(1), Some(1)]);
}

#[test]
fn retention_days_are_the_sites_days() {
    // 04:30 and 05:10 UTC on the 23rd: 23:30 on the 22nd and 00:10 on the
    // 23rd in New York.
    let events = vec![ev("1", "page_view", at(28, 30), "n"), ev("2", "page_view", at(29, 10), "n")];
    let daily_in = |zone: Option<&str>| {
        let config =
            GoldConfig { zones: crate::zones::Zones::new(zone, &Default::default()).unwrap(), ..GoldConfig::default() };
        let tables = all_tables(silver(&events), &config).unwrap();
        let (_, daily) = tables.into_iter().find(|(t, _)| *t == GoldTable::RetentionDaily).unwrap();
        let daily = daily.collect().unwrap();
        (i64s(&daily, "cohort_start"), u32s(&daily, "active"))
    };
    assert_eq!(daily_in(None), (vec![Some(at(24, 0))], vec![Some(1)]), "one UTC day");
    assert_eq!(
        daily_in(Some("America/New_York")),
        (vec![Some(at(0, 0)), Some(at(0, 0))], vec![Some(1), Some(1)]),
        "two New York days: the cohort of the 22nd, back on the 23rd"
    );
}

#[test]
fn link_clicks_count_outbound_links_and_downloads_per_hour() {
    let events = vec![
        ev("1", "click", at(10, 0), "a").href("https://www.instagram.com/shop"),
        ev("2", "click", at(10, 5), "a").href("https://www.instagram.com/shop"),
        ev("3", "click", at(10, 6), "b").href("https://www.instagram.com/shop"),
        ev("4", "click", at(10, 7), "b").href("https://shop.example/files/guide.pdf"),
        // Within the site, a button, a bot: not counted.
        ev("5", "click", at(10, 8), "b").href("https://shop.example/p/1"),
        ev("6", "click", at(10, 9), "b"),
        ev("7", "click", at(10, 10), "crawler").href("https://www.instagram.com/shop").bot(),
        ev("8", "click", at(11, 0), "a").href("https://shop.example/files/guide.pdf"),
    ];
    let df = table(&events, GoldTable::LinkClicks1h);
    assert_eq!(i64s(&df, "hour_start"), vec![Some(at(10, 0)), Some(at(10, 0)), Some(at(11, 0))]);
    assert_eq!(strs(&df, "kind"), vec![Some("download".into()), Some("outbound".into()), Some("download".into())]);
    assert_eq!(u32s(&df, "clicks"), vec![Some(1), Some(3), Some(1)]);
    assert_eq!(u32s(&df, "visitors"), vec![Some(1), Some(2), Some(1)]);
}

#[test]
fn dim_products_keeps_each_attribute_latest_on_its_own() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a").product("p1").named("Trail shoe", "shoes"),
        // A purchase line: a price, no name; the name stays.
        ev("2", "purchase", at(10, 5), "a").product("p1").bought("o-1", 1, 60.0).cart(1, 60.0),
        // Renamed and recategorised later, by a crawler's view (it counts).
        ev("3", "page_view", at(11, 0), "crawler").product("p1").named("Trail shoe II", "running").bot(),
        // An earlier price arriving late does not replace the latest.
        ev("4", "add_to_cart", at(9, 0), "b").product("p1").cart(1, 55.0),
        // Two names at the same time: the greater one.
        ev("5", "page_view", at(12, 0), "c").product("p2").named("Cap A", "hats"),
        ev("6", "page_view", at(12, 0), "d").product("p2").named("Cap B", "hats"),
        // No product: no row.
        ev("7", "page_view", at(12, 1), "d").named("Not a product", "none"),
    ];
    let df = table(&events, GoldTable::DimProducts);
    assert_eq!(strs(&df, "product_id"), vec![Some("p1".into()), Some("p2".into())]);
    assert_eq!(strs(&df, "name"), vec![Some("Trail shoe II".into()), Some("Cap B".into())]);
    assert_eq!(i64s(&df, "name_at"), vec![Some(at(11, 0)), Some(at(12, 0))]);
    assert_eq!(strs(&df, "category"), vec![Some("running".into()), Some("hats".into())]);
    assert_eq!(f64s(&df, "price"), vec![Some(60.0), None]);
    assert_eq!(strs(&df, "currency"), vec![Some("EUR".into()), None]);
    assert_eq!(i64s(&df, "price_at"), vec![Some(at(10, 5)), None]);
    assert_eq!(i64s(&df, "first_seen"), vec![Some(at(9, 0)), Some(at(12, 0))]);
    assert_eq!(i64s(&df, "last_seen"), vec![Some(at(11, 0)), Some(at(12, 0))]);
}

#[test]
fn a_product_name_is_read_from_either_spelling_of_the_extra_prop() {
    let extra = Column::new(
        "props_extra".into(),
        [
            Some(r#"{"product_name":"A \"quoted\" name"}"#),
            Some(r#"{"productName":"Camel"}"#),
            Some(r#"{"product_name":7}"#),
            Some("not json"),
            None,
        ],
    );
    let names = products::product_names(&extra).unwrap();
    let names: Vec<Option<&str>> = names.str().unwrap().iter().collect();
    assert_eq!(names, vec![Some("A \"quoted\" name"), Some("Camel"), None, None, None]);
}

#[test]
fn dim_date_lists_every_day_from_the_first_event_to_the_last() {
    // 2026-11-22 is a Sunday; 2026-12-31 a Thursday, whose ISO week is
    // 2026-W53; 2027-01-01, a Friday, still in that week.
    let dec31 = DAY + 39 * 24 * HOUR;
    let events = vec![
        ev("1", "page_view", at(23, 59), "a").bot(),
        ev("2", "page_view", at(0, 0), "a"),
        ev("3", "page_view", dec31 + 24 * HOUR + 5, "b"),
    ];
    let df = table(&events, GoldTable::DimDate);
    assert_eq!(df.height(), 41, "2026-11-22 to 2027-01-01, the days between too");
    let ints = |name: &str| i64s(&df, name);
    let row = |name: &str, n: usize| ints(name)[n];
    assert_eq!(row("day_start", 0), Some(DAY));
    assert_eq!((row("year", 0), row("month", 0), row("day_of_month", 0)), (Some(2026), Some(11), Some(22)));
    assert_eq!((row("weekday", 0), row("iso_week", 0), row("quarter", 0)), (Some(7), Some(47), Some(4)));
    assert_eq!(bools(&df, "is_weekend")[0], Some(true));
    assert_eq!(strs(&df, "weekday_name")[0].as_deref(), Some("Sunday"));
    assert_eq!(strs(&df, "month_name")[0].as_deref(), Some("November"));
    // The week of 2026-11-22 started on Monday the 16th; its month on the 1st.
    assert_eq!(row("week_start", 0), Some(days_from_epoch(2026, 11, 16)));
    assert_eq!(row("month_start", 0), Some(days_from_epoch(2026, 11, 1)));
    let last = 40;
    assert_eq!((row("year", last), row("iso_year", last), row("iso_week", last)), (Some(2027), Some(2026), Some(53)));
    assert_eq!((row("weekday", last), row("day_of_year", last)), (Some(5), Some(1)));
    assert_eq!(row("week_start", last), Some(days_from_epoch(2026, 12, 28)));
    assert_eq!(row("date", 39), Some(days_from_epoch(2026, 12, 31)));
    assert_eq!(row("day_of_year", 39), Some(365));
}

fn days_from_epoch(y: i64, m: u32, d: u32) -> i64 {
    clickstream_schema::time::days_from_civil(y, m, d)
}

#[test]
fn goals_count_completions_converting_sessions_and_their_revenue_per_hour() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a").path("/thank-you/o-1"),
        // One order of two lines, 110 in all: a big order.
        ev("2", "purchase", at(10, 1), "a").product("p1").bought("o-1", 1, 60.0),
        ev("3", "purchase", at(10, 1), "a").product("p2").bought("o-1", 1, 50.0),
        ev("4", "custom", at(10, 5), "b").custom("newsletter_signup").prop("placement", serde_json::json!("home")),
        ev("5", "page_view", at(10, 6), "b").path("/"),
        ev("6", "custom", at(10, 7), "c").custom("newsletter_signup").prop("placement", serde_json::json!("footer")),
        ev("7", "custom", at(10, 8), "c").custom("newsletter_signup").prop("placement", serde_json::json!("home")),
        ev("8", "purchase", at(10, 9), "d").product("p1").bought("o-2", 1, 40.0),
        ev("9", "page_view", at(11, 0), "d").path("/thank-you"),
        // Bots complete nothing.
        ev("10", "page_view", at(10, 10), "crawler").path("/thank-you").bot(),
        ev("11", "custom", at(10, 11), "crawler").custom("newsletter_signup").bot(),
    ];
    let config = with_goals();
    let get = |which| {
        all_tables(silver(&events), &config)
            .unwrap()
            .into_iter()
            .find(|(t, _)| *t == which)
            .unwrap()
            .1
            .collect()
            .unwrap()
    };
    let df = get(GoldTable::Goals1h);
    let names: Vec<Option<String>> = ["Big order", "Newsletter", "Newsletter home", "Purchase", "Purchase"]
        .iter()
        .map(|n| Some(n.to_string()))
        .collect();
    assert_eq!(strs(&df, "goal"), names);
    assert_eq!(i64s(&df, "hour_start"), [10, 10, 10, 10, 11].map(|h| Some(at(h, 0))).to_vec());
    assert_eq!(u32s(&df, "completions"), vec![Some(1), Some(3), Some(2), Some(1), Some(1)]);
    assert_eq!(u32s(&df, "converting_sessions"), vec![Some(1), Some(2), Some(2), Some(1), Some(1)]);
    assert_eq!(u32s(&df, "sessions"), vec![Some(4), Some(4), Some(4), Some(4), Some(1)]);
    assert_eq!(f64s(&df, "conversion_rate"), vec![Some(0.25), Some(0.5), Some(0.5), Some(0.25), Some(1.0)]);
    assert_eq!(f64s(&df, "revenue"), vec![Some(110.0), Some(0.0), Some(0.0), Some(110.0), Some(0.0)]);

    let custom = get(GoldTable::CustomEvents1h);
    assert_eq!(strs(&custom, "event_name"), vec![Some("newsletter_signup".into()); 3]);
    assert_eq!(strs(&custom, "prop"), vec![None, Some("placement".into()), Some("placement".into())]);
    assert_eq!(strs(&custom, "value"), vec![None, Some("footer".into()), Some("home".into())]);
    assert_eq!(u32s(&custom, "events"), vec![Some(3), Some(1), Some(2)]);
    assert_eq!(u32s(&custom, "visitors"), vec![Some(2), Some(1), Some(2)]);
    // Without goals or custom events, the tables are empty, not missing.
    assert_eq!(table(&events, GoldTable::Goals1h).height(), 0);
}

#[test]
fn goal_props_match_by_value_and_numbers_show_as_json() {
    let events = vec![
        ev("1", "custom", at(10, 0), "a").custom("newsletter_signup").prop("placement", serde_json::json!(2)),
        ev("2", "custom", at(10, 1), "b").custom("newsletter_signup").prop("placement", serde_json::json!(true)),
        ev("3", "custom", at(10, 2), "c").custom("newsletter_signup"),
    ];
    let mut config = with_goals();
    let two = goals::Goal {
        name: "Two".into(),
        site: "*".into(),
        page: None,
        event: Some("newsletter_signup".into()),
        props: [("placement".to_string(), serde_json::json!(2.0))].into(),
        min_revenue: None,
    };
    config.goals = goals::Goals::new(vec![two], vec!["placement".into()]).unwrap();
    let tables = collect_tables(all_tables(silver(&events), &config).unwrap()).unwrap();
    let get = |which: GoldTable| tables.iter().find(|(t, _)| *t == which).unwrap().1.clone();
    assert_eq!(u32s(&get(GoldTable::Goals1h), "completions"), vec![Some(1)], "2 equals 2.0");
    assert_eq!(strs(&get(GoldTable::CustomEvents1h), "value"), vec![None, Some("2".into()), Some("true".into())]);
}

#[test]
fn page_transitions_are_consecutive_page_views_of_a_session_within_the_hour() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a").path("/"),
        // Not a page view: skipped over.
        ev("2", "click", at(10, 1), "a").path("/"),
        ev("3", "page_view", at(10, 2), "a").path("/p/1"),
        ev("4", "page_view", at(10, 3), "a").path("/"),
        ev("5", "page_view", at(10, 4), "b").path("/"),
        ev("6", "page_view", at(10, 9), "b").path("/p/1"),
        // Across the hour's end: not a step of either hour.
        ev("7", "page_view", at(11, 1), "b").path("/cart"),
        // Another session (visitor c) and a bot: no steps.
        ev("8", "page_view", at(10, 30), "c").path("/p/1"),
        ev("9", "page_view", at(10, 31), "crawler").path("/").bot(),
        ev("10", "page_view", at(10, 32), "crawler").path("/p/1").bot(),
    ];
    let df = table(&events, GoldTable::PageTransitions1h);
    assert_eq!(strs(&df, "page_path"), vec![Some("/".into()), Some("/p/1".into())]);
    assert_eq!(strs(&df, "next_page"), vec![Some("/p/1".into()), Some("/".into())]);
    assert_eq!(u32s(&df, "transitions"), vec![Some(2), Some(1)]);
    assert_eq!(u32s(&df, "sessions"), vec![Some(2), Some(1)]);
    assert_eq!(i64s(&df, "hour_start"), vec![Some(at(10, 0)); 2]);
}

#[test]
fn entry_and_exit_pages_per_hour_of_session_start() {
    let events = vec![
        // a: lands on /, ends on /p/1 and buys; b bounces on /; c lands on
        // /p/1 and leaves from /; d has no page view at all.
        ev("1", "page_view", at(10, 0), "a").path("/"),
        ev("2", "page_view", at(10, 5), "a").path("/p/1"),
        ev("3", "purchase", at(10, 6), "a").product("p1").bought("o-1", 1, 30.0),
        ev("4", "page_view", at(10, 10), "b").path("/"),
        ev("5", "page_view", at(10, 50), "c").path("/p/1"),
        // Past the hour, the same session: it counts in its start's hour.
        ev("6", "page_view", at(11, 5), "c").path("/"),
        ev("7", "click", at(10, 20), "d"),
    ];
    let entry = table(&events, GoldTable::EntryPages1h);
    assert_eq!(strs(&entry, "page_path"), vec![Some("/".into()), Some("/p/1".into())]);
    assert_eq!(u32s(&entry, "sessions"), vec![Some(2), Some(1)]);
    assert_eq!(u32s(&entry, "bounces"), vec![Some(1), Some(0)]);
    assert_eq!(f64s(&entry, "bounce_rate"), vec![Some(0.5), Some(0.0)]);
    assert_eq!(u32s(&entry, "converted"), vec![Some(1), Some(0)]);
    assert_eq!(f64s(&entry, "revenue"), vec![Some(30.0), Some(0.0)]);
    assert_eq!(i64s(&entry, "hour_start"), vec![Some(at(10, 0)); 2]);
    let exit = table(&events, GoldTable::ExitPages1h);
    assert_eq!(strs(&exit, "page_path"), vec![Some("/".into()), Some("/p/1".into())]);
    assert_eq!(u32s(&exit, "exits"), vec![Some(2), Some(1)], "b and c left from /, a from /p/1");
    assert_eq!(u32s(&exit, "bounces"), vec![Some(1), Some(0)]);
}

#[test]
fn sessions_get_their_source_and_sources_1h_counts_them() {
    let events = vec![
        // a: from Google, two sessions (the second one direct, an hour
        // later, moving within the site); b: a Google Ads click (gclid) that
        // buys; c: Facebook, tagged; d: a blog, bounces.
        ev("1", "page_view", at(10, 0), "a").path("/").referred_by("https://www.google.com/"),
        ev("2", "page_view", at(10, 3), "a").path("/p/1").referred_by("https://shop.example/"),
        ev("3", "page_view", at(11, 30), "a").path("/p/2").referred_by("https://shop.example/p/1"),
        ev("4", "page_view", at(10, 5), "b").path("/p/1").query("gclid=abc").referred_by("https://www.google.com/"),
        ev("5", "page_view", at(10, 6), "b").path("/cart"),
        ev("6", "purchase", at(10, 7), "b").product("p1").bought("o-1", 1, 30.0),
        ev("7", "page_view", at(10, 8), "c").path("/").utm("facebook").referred_by("https://l.facebook.com/"),
        ev("8", "page_view", at(10, 9), "c").path("/p/3"),
        ev("9", "page_view", at(10, 10), "d").path("/").referred_by("https://blog.example.org/post"),
    ];
    let sessions = table(&events, GoldTable::Sessions);
    let by_visitor = |anon: &str, column: &str| -> Vec<Option<String>> {
        let rows = sessions.clone().lazy().filter(col("anonymous_id").eq(lit(anon))).collect().unwrap();
        strs(&rows, column)
    };
    assert_eq!(by_visitor("a", "channel"), vec![Some("Organic Search".into()), Some("Direct".into())]);
    assert_eq!(by_visitor("a", "referrer_domain"), vec![Some("google.com".into()), None]);
    assert_eq!(by_visitor("b", "channel"), vec![Some("Paid Search".into())]);
    assert_eq!(by_visitor("b", "medium"), vec![Some("cpc".into())]);
    assert_eq!(by_visitor("c", "source"), vec![Some("facebook".into())]);
    assert_eq!(by_visitor("c", "channel"), vec![Some("Organic Social".into())]);
    assert_eq!(by_visitor("d", "source"), vec![Some("blog.example.org".into())]);
    assert_eq!(by_visitor("d", "channel"), vec![Some("Referral".into())]);

    let sources = table(&events, GoldTable::Sources1h);
    let row = |source: &str| sources.clone().lazy().filter(col("source").eq(lit(source))).collect().unwrap();
    assert_eq!(sources.height(), 5);
    let google = row("Google");
    // Sorted by medium: cpc, then organic.
    assert_eq!(strs(&google, "channel"), vec![Some("Paid Search".into()), Some("Organic Search".into())]);
    assert_eq!(u32s(&google, "sessions"), vec![Some(1), Some(1)]);
    assert_eq!(u32s(&google, "conversions"), vec![Some(1), Some(0)]);
    assert_eq!(f64s(&google, "revenue"), vec![Some(30.0), Some(0.0)]);
    let blog = row("blog.example.org");
    assert_eq!((u32s(&blog, "bounces"), f64s(&blog, "bounce_rate")), (vec![Some(1)], vec![Some(1.0)]));
    let direct = row("(direct)");
    assert_eq!(i64s(&direct, "hour_start"), vec![Some(at(11, 0))]);
    assert_eq!(u32s(&direct, "visitors"), vec![Some(1)]);
}

#[test]
fn top_pages_and_product_performance_per_hour() {
    let events = vec![
        ev("1", "page_view", at(10, 0), "a").path("/p/1").product("p1"),
        ev("2", "page_view", at(10, 5), "a").path("/p/1").product("p1"),
        ev("3", "page_view", at(10, 6), "b").path("/p/1").product("p1"),
        ev("4", "page_view", at(10, 7), "b").path("/"),
        ev("5", "add_to_cart", at(10, 8), "b").product("p1").cart(2, 10.0),
        ev("6", "add_to_cart", at(10, 9), "a").product("p1").cart(1, 10.0),
        ev("7", "purchase", at(10, 20), "b").product("p1").bought("o-1", 2, 20.0),
    ];
    let pages = table(&events, GoldTable::TopPages1h);
    assert_eq!(strs(&pages, "page_path"), vec![Some("/p/1".into()), Some("/".into())]);
    assert_eq!(u32s(&pages, "views"), vec![Some(3), Some(1)]);
    assert_eq!(u32s(&pages, "unique_visitors"), vec![Some(2), Some(1)]);
    assert_eq!(u32s(&pages, "rank"), vec![Some(1), Some(2)]);

    let products = table(&events, GoldTable::ProductPerformance1h);
    assert_eq!(products.height(), 1);
    assert_eq!(u32s(&products, "views"), vec![Some(3)]);
    assert_eq!(u32s(&products, "add_to_carts"), vec![Some(2)]);
    assert_eq!(i64s(&products, "units_added"), vec![Some(3)]);
    assert_eq!(u32s(&products, "purchases"), vec![Some(1)]);
    assert_eq!(f64s(&products, "view_to_cart_rate"), vec![Some(2.0 / 3.0)]);
    assert_eq!(f64s(&products, "cart_to_purchase_rate"), vec![Some(0.5)]);
    assert_eq!(f64s(&products, "cart_abandonment_rate"), vec![Some(0.5)]);
}

#[test]
fn traffic_counts_each_session_of_a_minute_when_the_gap_is_under_a_minute() {
    // With a 10 s gap, visitor a has two sessions inside 10:00 (25 s apart)
    // and b one; the sessions table agrees.
    let config = GoldConfig { session_gap_ms: 10_000, ..GoldConfig::default() };
    let events = vec![
        ev("1", "page_view", at(10, 0), "a").path("/"),
        ev("2", "page_view", at(10, 0) + 5_000, "a").path("/"),
        ev("3", "page_view", at(10, 0) + 30_000, "a").path("/"),
        ev("4", "page_view", at(10, 0) + 1_000, "b").path("/"),
    ];
    let tables = collect_tables(all_tables(silver(&events), &config).unwrap()).unwrap();
    let get = |which: GoldTable| tables.iter().find(|(t, _)| *t == which).unwrap().1.clone();
    let traffic = get(GoldTable::Traffic1m);
    assert_eq!(u32s(&traffic, "active_users"), vec![Some(2)]);
    assert_eq!(u32s(&traffic, "sessions"), vec![Some(3)]);
    assert_eq!(get(GoldTable::Sessions).height(), 3);
    // With the default 30 minutes, one session each.
    assert_eq!(u32s(&table(&events, GoldTable::Traffic1m), "sessions"), vec![Some(2)]);
}
