//! `clickstream forget`: honour a deletion request (GDPR art. 17, CCPA) for
//! one person of one site.
//!
//! A person is every anonymous id and user id that were ever seen together
//! on the site: forgetting a visitor who signed in also forgets that user's
//! other devices, and forgetting a user forgets the anonymous ids they used
//! (as PostHog deletes a person with all their distinct ids). Their rows go
//! from Bronze, Silver and rejects, their records from the embedded log,
//! their ids from the alert log; Gold is rebuilt from what remains.
//!
//! The steps, each safe to run again, so a crash halfway is finished by
//! running the same command again:
//! 1. find the person's ids (Bronze, Silver and the log);
//! 2. remember the event ids being removed (`_state/forgotten/`), so that
//!    dedup treats them as seen: a replay of a log this command cannot edit
//!    (Fluvio's) or a tracker's late retry does not bring them back;
//! 3. tombstone their records in the embedded log (a new file, see
//!    [`crate::stream::forget_records`]);
//! 4. rewrite every file holding their rows without them, all in one
//!    atomic commit ([`Commit`]) that also marks Gold as not current;
//! 5. rebuild Gold from Silver (a crash before it ends is caught up by the
//!    next `serve`/`aggregate`, because Gold is marked not current);
//! 6. delete compaction's retired copies and the ids in the alert log;
//! 7. append an audit line to `_state/forget-audit.jsonl`. It holds a
//!    fingerprint of the request (SHA-256), never the ids themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aggregate::dedup::write_forgotten;
use crate::aggregate::AggregateConfig;
use crate::storage::layout::{parquet_files, REPLAY_DIR};
use crate::storage::scan::{has_files, scan_files, scan_table};
use crate::storage::{Commit, Manifest, PipelineError, Role, Table, TableDir};
use crate::stream::Topic;

/// Who to forget, as the request names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// An `anonymous_id` (the tracker's visitor id).
    Visitor(String),
    /// A `user_id` (the site's own id of a signed-in user).
    User(String),
}

impl Subject {
    fn kind(&self) -> &'static str {
        match self {
            Subject::Visitor(_) => "visitor",
            Subject::User(_) => "user",
        }
    }

    fn id(&self) -> &str {
        match self {
            Subject::Visitor(id) | Subject::User(id) => id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgetRequest {
    pub site_id: String,
    pub subject: Subject,
}

impl ForgetRequest {
    /// What the audit log keeps of the request: enough to answer "was this
    /// request carried out?" (hash the same request again), not the id.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for part in [self.site_id.as_str(), self.subject.kind(), self.subject.id()] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hex::encode(hash.finalize())
    }
}

/// Every id of one person on one site.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Person {
    pub site_id: String,
    pub anonymous_ids: BTreeSet<String>,
    pub user_ids: BTreeSet<String>,
}

impl Person {
    /// Event rows (Bronze, Silver) of the person.
    fn event_rows(&self) -> Expr {
        col("site_id")
            .eq(lit(self.site_id.clone()))
            .and(is_in("anonymous_id", &self.anonymous_ids).or(is_in("user_id", &self.user_ids)))
            .fill_null(lit(false))
    }

    /// Rejected rows of the person: by their visitor, or, when the event
    /// was too broken to read one, by any of their ids quoted in its text.
    fn reject_rows(&self) -> Expr {
        let mut in_payload = lit(false);
        for id in self.ids() {
            in_payload = in_payload.or(col("payload").str().contains_literal(lit(quoted(id))));
        }
        col("site_id")
            .eq(lit(self.site_id.clone()))
            .and(is_in("anonymous_id", &self.anonymous_ids).or(in_payload))
            .fill_null(lit(false))
    }

    /// The same rules for a record of the log.
    fn holds_record(&self, topic: Topic, value: &[u8]) -> bool {
        let Some(who) = RecordWho::read(topic, value) else { return false };
        if who.site_id.as_deref() != Some(self.site_id.as_str()) {
            return false;
        }
        let anon = who.anonymous_id.as_ref().is_some_and(|a| self.anonymous_ids.contains(a));
        match topic {
            Topic::Events => anon || who.user_id.as_ref().is_some_and(|u| self.user_ids.contains(u)),
            Topic::Rejects => {
                anon || who.payload.as_deref().is_some_and(|p| self.ids().any(|id| p.contains(&quoted(id))))
            }
        }
    }

    fn ids(&self) -> impl Iterator<Item = &String> {
        self.anonymous_ids.iter().chain(&self.user_ids)
    }

    fn is_empty(&self) -> bool {
        self.anonymous_ids.is_empty() && self.user_ids.is_empty()
    }
}

/// The fields of a log record (an event or a bad row) that say whose it is.
#[derive(Deserialize)]
struct RecordWho {
    site_id: Option<String>,
    event_id: Option<String>,
    anonymous_id: Option<String>,
    user_id: Option<String>,
    payload: Option<String>,
}

impl RecordWho {
    /// An event record (binary or JSON) or a bad row's (JSON).
    fn read(topic: Topic, value: &[u8]) -> Option<RecordWho> {
        match topic {
            Topic::Events => {
                let e = clickstream_schema::EnrichedEvent::from_record(value).ok()?;
                Some(RecordWho {
                    site_id: Some(e.site_id.into_owned()),
                    event_id: Some(e.event_id.into_owned()),
                    anonymous_id: Some(e.anonymous_id.into_owned()),
                    user_id: e.user_id.map(std::borrow::Cow::into_owned),
                    payload: None,
                })
            }
            Topic::Rejects => serde_json::from_slice(value).ok(),
        }
    }
}

/// An id as it appears in JSON text.
fn quoted(id: &str) -> String {
    serde_json::to_string(id).unwrap_or_default()
}

fn is_in(column: &str, values: &BTreeSet<String>) -> Expr {
    let values = Series::new("values".into(), values.iter().map(String::as_str).collect::<Vec<_>>());
    col(column).is_in(lit(values).implode(false), false)
}

/// What a forget did: printed, and appended to the audit log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ForgetReport {
    pub at: String,
    pub site_id: String,
    pub kind: &'static str,
    pub fingerprint: String,
    pub anonymous_ids: usize,
    pub user_ids: usize,
    /// Rows removed per table (`bronze`, `silver`, `rejects`).
    pub rows_removed: BTreeMap<String, u64>,
    pub files_rewritten: usize,
    pub log_records_forgotten: u64,
    pub event_ids_remembered: usize,
    pub gold_files_rebuilt: usize,
    pub alert_lines_redacted: usize,
    pub retired_copies_removed: usize,
}

impl ForgetReport {
    pub fn total_rows(&self) -> u64 {
        self.rows_removed.values().sum()
    }
}

impl std::fmt::Display for ForgetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows: Vec<String> = self.rows_removed.iter().map(|(t, n)| format!("{t} {n}")).collect();
        write!(
            f,
            "forgot {} of site {} ({} anonymous ids, {} user ids): rows removed {}, {} files rewritten, \
             {} log records tombstoned, {} event ids kept as forgotten, Gold rebuilt ({} files)",
            self.kind,
            self.site_id,
            self.anonymous_ids,
            self.user_ids,
            rows.join(", "),
            self.files_rewritten,
            self.log_records_forgotten,
            self.event_ids_remembered,
            self.gold_files_rebuilt
        )
    }
}

/// Where the audit lines go.
pub fn audit_path(data_dir: &Path) -> PathBuf {
    data_dir.join("_state/forget-audit.jsonl")
}

/// Forgets one person of one site in `config.data_dir`. The caller holds
/// the data directory (no `serve`/`aggregate` may write it meanwhile:
/// [`crate::storage::lock::Ownership`]). `now_ms` stamps the audit line.
pub fn forget(config: &AggregateConfig, request: &ForgetRequest, now_ms: i64) -> Result<ForgetReport, PipelineError> {
    let data_dir = config.data_dir.as_path();
    let task = |m: String| PipelineError::Task(m);
    if !Role::consumers(data_dir).is_empty() {
        return Err(task(format!(
            "{} is written by partition consumers: forget rewrites the layout of one aggregator only",
            data_dir.display()
        )));
    }
    if data_dir.join(REPLAY_DIR).exists() {
        return Err(task(format!(
            "a replay is under way in {}: finish it (`clickstream replay`) before forgetting anyone",
            data_dir.join(REPLAY_DIR).display()
        )));
    }
    let (mut manifest, _) = Manifest::recover(data_dir)?;
    crate::storage::compact::recover(data_dir)?;
    let log_dir = data_dir.join("log");

    // 1. Who: the request's id, then every id seen together with it.
    let person = resolve(data_dir, &log_dir, request)?;
    let mut report = ForgetReport {
        at: crate::api::iso(now_ms),
        site_id: request.site_id.clone(),
        kind: request.subject.kind(),
        fingerprint: request.fingerprint(),
        anonymous_ids: person.anonymous_ids.len(),
        user_ids: person.user_ids.len(),
        ..ForgetReport::default()
    };

    // 2. Their event ids, kept before anything is removed.
    let mut ids = Vec::new();
    for table in [Table::Bronze, Table::Silver] {
        if has_files(data_dir, table) {
            let df = scan_table(data_dir, table)?
                .filter(person.event_rows())
                .select([col("site_id"), col("event_id")])
                .unique(None, UniqueKeepStrategy::Any)
                .collect()?;
            ids.push(df);
        }
    }
    let mut log_ids: Vec<(String, String)> = Vec::new();
    crate::stream::visit_records(&log_dir, &mut |topic, value| {
        if topic == Topic::Events && person.holds_record(topic, value) {
            if let Some(RecordWho { site_id: Some(site), event_id: Some(id), .. }) = RecordWho::read(topic, value) {
                log_ids.push((site, id));
            }
        }
    })?;
    let (sites, events): (Vec<String>, Vec<String>) = log_ids.into_iter().unzip();
    ids.push(df!("site_id" => sites, "event_id" => events)?);
    let mut forgotten = concat_frames(ids)?.unique_stable(None, UniqueKeepStrategy::Any, None)?;
    report.event_ids_remembered = forgotten.height();
    if forgotten.height() > 0 {
        write_forgotten(data_dir, &mut forgotten, now_ms)?;
    }

    // 3. The log.
    report.log_records_forgotten =
        crate::stream::forget_records(&log_dir, &mut |topic, value| person.holds_record(topic, value))?;

    // 4. Bronze, Silver and rejects, in one commit.
    let mut commit = Commit::new(data_dir, manifest.seq + 1);
    let mut next = manifest.clone();
    for (table, rows) in [
        (Table::Bronze, person.event_rows()),
        (Table::Silver, person.event_rows()),
        (Table::Rejects, person.reject_rows()),
    ] {
        let (files, removed) = rewrite_without(data_dir, table, &rows, &mut commit)?;
        report.files_rewritten += files;
        report.rows_removed.insert(table_name(table).into(), removed);
        let total = match table {
            Table::Bronze => &mut next.totals.bronze_rows,
            Table::Silver => &mut next.totals.silver_rows,
            Table::Rejects => &mut next.totals.reject_rows,
        };
        *total = total.saturating_sub(removed);
    }
    if config.gold.is_some() && report.total_rows() > 0 {
        next.gold_current = false;
    }
    if report.files_rewritten > 0 || next != manifest {
        manifest = commit.commit(next, now_ms)?;
    }

    // 5. Gold, from what Silver holds now.
    if let Some(gold) = config.gold.as_ref().filter(|_| !manifest.gold_is_current()) {
        let (_, files) = crate::gold::refresh::build(data_dir, manifest, gold, &mut |_, _| {})?;
        report.gold_files_rebuilt = files;
    }

    // 6. Copies and mentions elsewhere.
    report.retired_copies_removed = crate::storage::compact::remove_all_retired(data_dir)?;
    report.alert_lines_redacted = redact_alert_log(data_dir, &person)?;

    // 7. The audit line.
    append_audit(data_dir, &report)?;
    Ok(report)
}

fn table_name(table: Table) -> &'static str {
    match table {
        Table::Bronze => "bronze",
        Table::Silver => "silver",
        Table::Rejects => "rejects",
    }
}

/// The person: the request's id, and every id linked to it through events
/// that carry both an anonymous id and a user id.
fn resolve(data_dir: &Path, log_dir: &Path, request: &ForgetRequest) -> Result<Person, PipelineError> {
    let site = request.site_id.as_str();
    // (anonymous id, user id) pairs of the site's signed-in events.
    let mut links: BTreeSet<(String, String)> = BTreeSet::new();
    for table in [Table::Bronze, Table::Silver] {
        if !has_files(data_dir, table) {
            continue;
        }
        let pairs = scan_table(data_dir, table)?
            .filter(col("site_id").eq(lit(site)).and(col("user_id").is_not_null()))
            .select([col("anonymous_id"), col("user_id")])
            .unique(None, UniqueKeepStrategy::Any)
            .collect()?;
        let anon = pairs.column("anonymous_id")?.str()?;
        let user = pairs.column("user_id")?.str()?;
        for (a, u) in anon.iter().zip(user.iter()) {
            if let (Some(a), Some(u)) = (a, u) {
                links.insert((a.to_string(), u.to_string()));
            }
        }
    }
    crate::stream::visit_records(log_dir, &mut |topic, value| {
        if topic != Topic::Events {
            return;
        }
        if let Some(RecordWho { site_id: Some(s), anonymous_id: Some(a), user_id: Some(u), .. }) =
            RecordWho::read(topic, value)
        {
            if s == site {
                links.insert((a, u));
            }
        }
    })?;

    let mut person = Person { site_id: site.to_string(), ..Person::default() };
    match &request.subject {
        Subject::Visitor(id) => person.anonymous_ids.insert(id.clone()),
        Subject::User(id) => person.user_ids.insert(id.clone()),
    };
    // Follow the links until no new id turns up.
    loop {
        let before = person.anonymous_ids.len() + person.user_ids.len();
        for (a, u) in &links {
            if person.anonymous_ids.contains(a) || person.user_ids.contains(u) {
                person.anonymous_ids.insert(a.clone());
                person.user_ids.insert(u.clone());
            }
        }
        if person.anonymous_ids.len() + person.user_ids.len() == before {
            break;
        }
    }
    debug_assert!(!person.is_empty());
    Ok(person)
}

/// Writes, into `commit`, each file of `table` that holds `rows` without
/// them (a file left empty keeps its schema and no row). Returns the files
/// rewritten and the rows removed.
fn rewrite_without(
    data_dir: &Path,
    table: Table,
    rows: &Expr,
    commit: &mut Commit,
) -> Result<(usize, u64), PipelineError> {
    let (mut files, mut removed) = (0, 0);
    for file in parquet_files(&data_dir.join(table.dir())) {
        // As written (no partition columns from the path); only the
        // columns the rule reads, until the file turns out to hold a row.
        let Some(scan) = scan_files(std::slice::from_ref(&file))? else { continue };
        let hits = scan.clone().filter(rows.clone()).select([len().alias("rows")]).collect()?;
        let hits = hits.column("rows")?.get(0)?.try_extract::<u64>()?;
        if hits == 0 {
            continue;
        }
        let mut df = scan.filter(rows.clone().not()).collect()?;
        let rel = file.strip_prefix(data_dir).unwrap_or(&file).to_path_buf();
        commit.write_parquet_at(&rel, &mut df)?;
        files += 1;
        removed += hits;
    }
    Ok((files, removed))
}

fn concat_frames(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let lazy: Vec<LazyFrame> = frames
        .into_iter()
        .map(|df| df.lazy().select([col("site_id").cast(DataType::String), col("event_id").cast(DataType::String)]))
        .collect();
    concat(lazy, UnionArgs::default())?.collect()
}

/// Replaces the person's anonymous ids in the alert log (bot alerts list
/// visitors) with `[forgotten]`. Returns the lines changed.
fn redact_alert_log(data_dir: &Path, person: &Person) -> Result<usize, PipelineError> {
    let path = crate::alerts::deliver::log_path(data_dir);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(0) };
    let mut changed = 0;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut redacted = line.to_string();
        for id in &person.anonymous_ids {
            redacted = redacted.replace(id.as_str(), "[forgotten]");
        }
        changed += usize::from(redacted != line);
        out.push_str(&redacted);
        out.push('\n');
    }
    if changed > 0 {
        let tmp = path.with_extension("log.forget.tmp");
        let io = |what: String| move |source| PipelineError::Io { context: what, source };
        let mut file = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        file.write_all(out.as_bytes()).map_err(io(format!("writing {}", tmp.display())))?;
        file.sync_all().map_err(io(format!("syncing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("replacing {}", path.display())))?;
    }
    Ok(changed)
}

fn append_audit(data_dir: &Path, report: &ForgetReport) -> Result<(), PipelineError> {
    let path = audit_path(data_dir);
    let io = |what: String| move |source| PipelineError::Io { context: what, source };
    let line = serde_json::to_string(report).map_err(|e| PipelineError::Task(format!("audit line: {e}")))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    writeln!(file, "{line}").map_err(io(format!("writing {}", path.display())))?;
    file.sync_all().map_err(io(format!("syncing {}", path.display())))
}
