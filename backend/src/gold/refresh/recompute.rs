//! `clickstream gold --recompute goals_1h`: some window tables computed
//! again from the whole of Silver, hour by hour, and published in one
//! commit; the other tables are left as they are. For a goal or a custom
//! event prop added to the config file after the fact: a window table's
//! hour depends only on that hour of Silver and on who is flagged a bot,
//! which Gold's `bot_anomalies` already says. The retention tables come
//! from Gold's `sessions` and `identity_map` (for a site whose time zone
//! changed).

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::*;

use super::build::silver_file_hour;
use super::finality::watermark;
use super::hours::{hours_of, Writer};
use crate::gold::cohorts::{no_identities, retention};
use crate::gold::{
    collect_tables, flagged_visitors, human_events, human_window_tables, GoldConfig, GoldTable, WINDOW_INPUT,
};
use crate::storage::layout::parquet_files;
use crate::storage::scan::{has_files, scan_files, scan_table, silver_files};
use crate::storage::{Commit, Manifest, PipelineError, Table};

/// The tables `recompute` can compute alone: those of human events whose
/// hour is a function of that hour of Silver.
pub const RECOMPUTABLE: [GoldTable; 10] = [
    GoldTable::Traffic1m,
    GoldTable::TopPages1h,
    GoldTable::PageTransitions1h,
    GoldTable::Revenue5m,
    GoldTable::Conversion10m,
    GoldTable::ProductPerformance1h,
    GoldTable::Goals1h,
    GoldTable::CustomEvents1h,
    GoldTable::LinkClicks1h,
    GoldTable::Engagement1h,
];

/// The tables `recompute` computes from Gold's `sessions` and
/// `identity_map` rather than from Silver.
pub const FROM_SESSIONS: [GoldTable; 2] = [GoldTable::RetentionWeekly, GoldTable::RetentionDaily];

/// Computes `tables` again from every hour Silver holds and commits them
/// on top of `manifest` (the Gold writer's). Hours whose Silver has expired
/// keep their rows. Calls `progress` with (hours done, hours in all).
/// Returns the manifest and the files written.
pub fn recompute(
    data_dir: &Path,
    manifest: Manifest,
    config: &GoldConfig,
    tables: &[GoldTable],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Manifest, usize), PipelineError> {
    if let Some(t) = tables.iter().find(|t| !RECOMPUTABLE.contains(t) && !FROM_SESSIONS.contains(t)) {
        let names: Vec<&str> = RECOMPUTABLE.iter().chain(&FROM_SESSIONS).map(|t| t.name()).collect();
        return Err(PipelineError::Task(format!(
            "{} cannot be recomputed alone (it depends on sessions or on all of Silver); \
             `clickstream replay` rebuilds every table. These can: {}",
            t.name(),
            names.join(", ")
        )));
    }
    let hours: BTreeSet<i64> = if tables.iter().any(|t| RECOMPUTABLE.contains(t)) {
        parquet_files(&data_dir.join(Table::Silver.root())).iter().filter_map(|f| silver_file_hour(f)).collect()
    } else {
        BTreeSet::new()
    };
    progress(0, hours.len());
    // Who is a bot is what Gold already says, over all of Silver.
    let flagged = if has_files(data_dir, GoldTable::BotAnomalies) {
        flagged_visitors(scan_table(data_dir, GoldTable::BotAnomalies)?).collect()?
    } else {
        DataFrame::new_infer_height(vec![
            Column::new_empty("site_id".into(), &DataType::String),
            Column::new_empty("anonymous_id".into(), &DataType::String),
        ])?
    };
    let mut commit = Commit::new(data_dir, manifest.seq + 1);
    let mut out = Writer::new(data_dir, config, watermark(manifest.max_event_ts, config));
    for (done, &hour) in hours.iter().enumerate() {
        if let Some(silver) = scan_files(&silver_files(data_dir, [hour]))? {
            let columns: Vec<Expr> = WINDOW_INPUT.iter().map(|c| col(*c)).collect();
            let human = human_events(silver.select(columns), flagged.clone().lazy());
            let wanted = human_window_tables(human.collect()?.lazy(), config)?
                .into_iter()
                .filter(|(t, _)| tables.contains(t))
                .collect();
            for (table, df) in collect_tables(wanted)? {
                // This hour only: rows of other hours cannot come out of it,
                // and an hour with no rows now loses its old ones.
                out.write_hours(&mut commit, table, df, &BTreeSet::from([hour]))?;
            }
        }
        progress(done + 1, hours.len());
    }
    if tables.iter().any(|t| FROM_SESSIONS.contains(t)) && has_files(data_dir, GoldTable::Sessions) {
        let identities = if has_files(data_dir, GoldTable::IdentityMap) {
            scan_table(data_dir, GoldTable::IdentityMap)?
        } else {
            no_identities()
        };
        let sessions = scan_table(data_dir, GoldTable::Sessions)?;
        let wanted = retention(sessions, identities, &config.zones)?.into_iter().filter(|(t, _)| tables.contains(t));
        for (table, rows) in collect_tables(wanted.collect())? {
            // Cohorts that moved (another zone) leave their old files empty.
            let mut hours = hours_of(&rows, "cohort_start")?;
            if has_files(data_dir, table) {
                hours.extend(hours_of(
                    &scan_table(data_dir, table)?.select([col("cohort_start")]).collect()?,
                    "cohort_start",
                )?);
            }
            out.write_hours(&mut commit, table, rows, &hours)?;
        }
    }
    let committed_at = manifest.committed_at;
    let files = out.files;
    Ok((commit.commit(manifest, committed_at)?, files))
}

#[cfg(test)]
mod tests {
    use super::super::finality::with_is_final;
    use super::super::testing::by_all_columns;
    use super::*;
    use crate::gold::all_tables;
    use crate::gold::fixture::{at, ev, silver, with_goals, DataDir};

    #[test]
    fn the_recomputable_tables_are_the_human_window_tables() {
        let tables =
            human_window_tables(silver(&[ev("1", "page_view", at(9, 0), "a")]), &GoldConfig::default()).unwrap();
        assert_eq!(tables.iter().map(|(t, _)| *t).collect::<Vec<_>>(), RECOMPUTABLE);
    }

    #[test]
    fn goals_added_later_are_computed_back_over_history_and_the_rest_is_left_alone() {
        let events = vec![
            ev("1", "page_view", at(9, 0), "a").path("/thank-you"),
            ev("2", "custom", at(10, 0), "b").custom("newsletter_signup").prop("placement", serde_json::json!("home")),
            ev("3", "purchase", at(11, 0), "c").product("p1").bought("o-1", 1, 150.0),
            ev("4", "page_view", at(11, 5), "d").path("/"),
        ];
        // Gold built before any goal was defined.
        let dir = DataDir::new("recompute");
        dir.publish(&events);
        assert!(!has_files(&dir.0, GoldTable::Goals1h));
        let traffic_before = scan_table(&dir.0, GoldTable::Traffic1m).unwrap().collect().unwrap();

        let config = GoldConfig { zones: Default::default(), ..with_goals() };
        let tables = [GoldTable::Goals1h, GoldTable::CustomEvents1h];
        let manifest = Manifest::load(&dir.0).unwrap();
        let seq = manifest.seq;
        let mut calls = Vec::new();
        let (manifest, files) =
            recompute(&dir.0, manifest, &config, &tables, &mut |done, all| calls.push((done, all))).unwrap();
        assert_eq!(manifest.seq, seq + 1, "one commit");
        assert_eq!(calls.last(), Some(&(3, 3)), "three Silver hours");
        assert!(files >= 3, "{files}");

        let latest = events.iter().map(|e| e.ts).max();
        for (table, lf) in all_tables(silver(&events), &config).unwrap() {
            if !tables.contains(&table) {
                continue;
            }
            let expected = with_is_final(table, lf.collect().unwrap(), watermark(latest, &config), &config).unwrap();
            let written = scan_table(&dir.0, table).unwrap().collect().unwrap().drop("dt").unwrap();
            assert!(expected.height() > 0, "{}", table.name());
            assert!(by_all_columns(written).equals_missing(&by_all_columns(expected)), "{}", table.name());
        }
        let traffic_after = scan_table(&dir.0, GoldTable::Traffic1m).unwrap().collect().unwrap();
        assert!(traffic_after.equals_missing(&traffic_before), "other tables are left as they were");

        // A site's zone set later: its cohorts move to its days (9:00 UTC
        // is 23:00 the day before in Honolulu, 11:00 is 1:00).
        let zones = crate::zones::Zones::new(Some("Pacific/Honolulu"), &Default::default()).unwrap();
        let in_honolulu = GoldConfig { zones, ..config.clone() };
        let utc_days = scan_table(&dir.0, GoldTable::RetentionDaily).unwrap().collect().unwrap();
        let manifest = Manifest::load(&dir.0).unwrap();
        recompute(&dir.0, manifest, &in_honolulu, &FROM_SESSIONS, &mut |_, _| {}).unwrap();
        let local_days = scan_table(&dir.0, GoldTable::RetentionDaily).unwrap().collect().unwrap();
        assert_eq!((utc_days.height(), local_days.height()), (1, 2), "{utc_days}\n{local_days}");
        for (table, lf) in all_tables(silver(&events), &in_honolulu).unwrap() {
            if FROM_SESSIONS.contains(&table) {
                let written = scan_table(&dir.0, table).unwrap().collect().unwrap().drop("dt").unwrap();
                let expected = lf.collect().unwrap();
                assert!(by_all_columns(written).equals_missing(&by_all_columns(expected)), "{}", table.name());
            }
        }

        // Tables that depend on sessions or all of Silver are refused by name.
        let manifest = Manifest::load(&dir.0).unwrap();
        let err = recompute(&dir.0, manifest, &config, &[GoldTable::Sessions], &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("sessions cannot be recomputed alone"), "{err}");
    }
}
