//! One micro-batch, on a blocking thread: decode the records (on all
//! cores), write Bronze, Silver (deduplicated) and rejects, refresh Gold,
//! and commit it all with the new offsets. The [`super::runner`] decides
//! when and with what; this is the what.

use std::collections::BTreeMap;
use std::time::Instant;

use clickstream_schema::{BadRow, EnrichedEvent};
use polars::prelude::*;
use rayon::prelude::*;

use super::bronze::{BronzeBuilder, LogEvent};
use super::dedup::{event_key, SeenEvents};
use super::gold_step::{GoldConfig, GoldStep};
use super::rejects::{rejects_frame, LogBadRow};
use super::runner::StepReport;
use super::silver::{silver, IS_NEW};
use crate::storage::{Commit, CrashPoint, Manifest, PipelineError, Role, Table};
use crate::stream::Fetched;

/// What one micro-batch's write needs besides its records.
pub(super) struct MicroBatch<'a> {
    pub data_dir: &'a std::path::Path,
    pub role: Role,
    pub gold: Option<&'a GoldConfig>,
    pub now: i64,
    pub crash: Option<CrashPoint>,
    pub panic_at: Option<CrashPoint>,
}

impl MicroBatch<'_> {
    /// Decodes, transforms and writes one micro-batch, then commits it with
    /// `next` offsets. Runs on a blocking thread (Polars and fsync).
    pub(super) fn write(
        &self,
        mut next: Manifest,
        events: Vec<Fetched>,
        rejects: Vec<Fetched>,
        seen: &mut SeenEvents,
    ) -> Result<(Manifest, StepReport), PipelineError> {
        let (data_dir, gold, now) = (self.data_dir, self.gold, self.now);
        let mut report = StepReport { events_read: events.len(), rejects_read: rejects.len(), ..StepReport::default() };
        let mut timer = Instant::now();
        let mut lap = || {
            let now = Instant::now();
            let d = now - timer;
            timer = now;
            d
        };

        let Decoded { frames: bronze_parts, keys, mut bad_rows } = decode_events(events, now)?;
        for f in rejects {
            let row = match &f.damage {
                Some(damage) => corrupt(&f, damage, now),
                None => {
                    serde_json::from_slice::<BadRow>(&f.value).unwrap_or_else(|e| undecodable(&f, &e.to_string(), now))
                }
            };
            bad_rows.push(LogBadRow { partition: f.partition, offset: f.offset, row });
        }
        report.corrupt_records = bad_rows.iter().filter(|b| b.row.reason == CORRUPT_RECORD).count();
        for bad in bad_rows.iter().filter(|b| b.row.reason == CORRUPT_RECORD) {
            tracing::warn!(partition = bad.partition, offset = bad.offset, detail = %bad.row.detail, "quarantined a damaged log record in rejects");
        }
        report.timings.decode = lap();

        let mut commit = Commit::of(data_dir, self.role.clone(), next.seq + 1).crashing_at(self.crash, self.panic_at);
        let mut fresh_silver = None;
        if !bronze_parts.is_empty() {
            let mut parts = bronze_parts.into_iter();
            let mut bronze = parts.next().expect("non-empty");
            for part in parts {
                bronze.vstack_mut_owned(part)?;
            }
            report.bronze_rows = bronze.height();
            write_partitioned(&mut commit, Table::Bronze, &mut bronze, "received_at", "bronze", &mut report)?;
            report.timings.bronze_write = lap();

            // `seen` now holds the batch: if the batch fails, the runner
            // drops it and loads it again from what was committed.
            let is_new = seen.mark_new_keyed(data_dir, &bronze, &keys, IS_NEW, now)?;
            bronze.with_column(is_new)?;
            let mut silver_df = silver(bronze.lazy()).collect()?;
            report.silver_rows = silver_df.height();
            report.duplicates = report.bronze_rows - report.silver_rows;
            report.timings.silver = lap();
            write_partitioned(&mut commit, Table::Silver, &mut silver_df, "event_ts", "silver", &mut report)?;
            fresh_silver = Some(silver_df);
        }
        if !bad_rows.is_empty() {
            let mut df = rejects_frame(&bad_rows)?;
            report.reject_rows = df.height();
            write_partitioned(&mut commit, Table::Rejects, &mut df, "received_at", "rejects", &mut report)?;
        }
        report.timings.silver_write = lap();
        commit.crash_point(CrashPoint::SilverWritten)?;

        // Gold: rewrite the hours the new Silver rows (and the watermark's
        // move) touch, in the same commit.
        match (&fresh_silver, gold) {
            (Some(fresh), Some(gold)) => {
                report.gold_files = gold.after_silver(data_dir, &mut commit, &mut next, fresh)?;
                report.timings.gold = lap();
            }
            // Gold no longer covers all of Silver.
            (Some(_), None) => next.gold_current = false,
            _ => {}
        }

        next.totals.bronze_rows += report.bronze_rows as u64;
        next.totals.silver_rows += report.silver_rows as u64;
        next.totals.reject_rows += report.reject_rows as u64;
        next.totals.duplicates += report.duplicates as u64;
        let manifest = commit.commit(next, now)?;
        seen.prune(now);
        report.timings.commit = lap();
        Ok((manifest, report))
    }
}

/// Records per decode chunk: large enough to amortise a frame's fixed cost
/// (and to keep the chunks of a batch's frame few), small enough that both
/// cores get several.
const DECODE_CHUNK: usize = 32_768;

/// A micro-batch's records, decoded.
struct Decoded {
    /// Bronze frames in log order.
    frames: Vec<DataFrame>,
    /// Each Bronze row's dedup key, in the frames' order: hashed here, on
    /// all cores, while the event's strings are at hand.
    keys: Vec<u128>,
    bad_rows: Vec<LogBadRow>,
}

/// Decodes event records into Bronze frames, in log order, on all cores.
/// Each chunk's records are dropped as soon as its frame is built, so peak
/// memory holds the columns, not the records twice. Undecodable records
/// become bad rows with their bytes: never drop what the stream
/// acknowledged.
fn decode_events(events: Vec<Fetched>, now: i64) -> Result<Decoded, PipelineError> {
    type Chunk = (Option<DataFrame>, Vec<u128>, Vec<LogBadRow>);
    fn decode_chunk(chunk: &[Fetched], now: i64) -> PolarsResult<Chunk> {
        // Each event borrows its strings from its record, and goes into the
        // columns as soon as it is decoded.
        let mut bronze = BronzeBuilder::with_capacity(chunk.len());
        let mut keys = Vec::with_capacity(chunk.len());
        let mut bad = Vec::new();
        for f in chunk {
            if let Some(damage) = &f.damage {
                bad.push(LogBadRow { partition: f.partition, offset: f.offset, row: corrupt(f, damage, now) });
                continue;
            }
            match EnrichedEvent::from_record(&f.value) {
                Ok(event) => {
                    keys.push(event_key(&event.site_id, &event.event_id));
                    bronze.push(&LogEvent { partition: f.partition, offset: f.offset, event });
                }
                Err(e) => bad.push(LogBadRow {
                    partition: f.partition,
                    offset: f.offset,
                    row: undecodable(f, &e.to_string(), now),
                }),
            }
        }
        let frame = if bronze.is_empty() { None } else { Some(bronze.finish(now)?) };
        Ok((frame, keys, bad))
    }

    // Chunks come back in log order, whichever core decoded them.
    let decoded: Vec<Chunk> = events
        .into_par_iter()
        .chunks(DECODE_CHUNK)
        .map(|chunk| decode_chunk(&chunk, now))
        .collect::<PolarsResult<_>>()?;
    let mut out = Decoded { frames: Vec::with_capacity(decoded.len()), keys: Vec::new(), bad_rows: Vec::new() };
    out.keys.reserve(decoded.iter().map(|(_, keys, _)| keys.len()).sum());
    for (df, keys, bad) in decoded {
        out.frames.extend(df);
        out.keys.extend(keys);
        out.bad_rows.extend(bad);
    }
    Ok(out)
}

/// Splits a frame by the table's partition of `ts_column` and writes one
/// file per partition.
pub(crate) fn write_partitioned(
    commit: &mut Commit,
    table: Table,
    df: &mut DataFrame,
    ts_column: &str,
    name: &str,
    report: &mut StepReport,
) -> Result<(), PipelineError> {
    if df.height() == 0 {
        return Ok(());
    }
    let ts = df.column(ts_column)?.cast(&DataType::Int64)?;
    let keys: Vec<i64> = ts.i64()?.iter().map(|t| table.partition_key(t.unwrap_or(0))).collect();
    let mut groups: BTreeMap<i64, Vec<IdxSize>> = BTreeMap::new();
    for (row, key) in keys.iter().enumerate() {
        groups.entry(*key).or_default().push(row as IdxSize);
    }
    if groups.len() == 1 {
        // The common case (a batch within one hour): no copy.
        let key = *groups.keys().next().expect("one group");
        commit.write_parquet(&table.partition_dir(table.partition_start(key)), name, df)?;
        report.files += 1;
        return Ok(());
    }
    for (key, rows) in groups {
        let idx = IdxCa::from_vec("idx".into(), rows);
        let mut part = df.take(&idx)?;
        commit.write_parquet(&table.partition_dir(table.partition_start(key)), name, &mut part)?;
        report.files += 1;
    }
    Ok(())
}

/// The reason of a bad row made from a log record that failed its checksum.
pub const CORRUPT_RECORD: &str = "corrupt_record";

/// A damaged log record, quarantined: its position in the detail, what is
/// left of its bytes as the payload.
fn corrupt(f: &Fetched, damage: &str, now: i64) -> BadRow {
    BadRow {
        reason: CORRUPT_RECORD.into(),
        detail: format!("damaged log record quarantined at partition {} offset {}: {damage}", f.partition, f.offset),
        ..undecodable(f, damage, now)
    }
}

fn undecodable(f: &Fetched, error: &str, now: i64) -> BadRow {
    BadRow {
        reason: "undecodable_record".into(),
        detail: format!("stream record could not be decoded: {error}"),
        payload: String::from_utf8_lossy(&f.value).into_owned(),
        received_at: now,
        site_id: String::new(),
        index: 0,
        event_id: None,
        anonymous_id: Some(String::from_utf8_lossy(&f.key).into_owned()),
        source: "backend".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_on_all_cores_keeps_log_order() {
        // Undecodable records (no frames to build) over several chunks:
        // their bad rows come back in the order of the log.
        let n = 3 * DECODE_CHUNK as u64 + 5;
        let events: Vec<Fetched> = (0..n)
            .map(|offset| Fetched {
                partition: (offset % 3) as u32,
                offset,
                key: Default::default(),
                value: b"{".to_vec().into(),
                damage: None,
            })
            .collect();
        let Decoded { frames, keys, bad_rows } = decode_events(events, 0).unwrap();
        assert!(frames.is_empty() && keys.is_empty());
        let offsets: Vec<u64> = bad_rows.iter().map(|b| b.offset).collect();
        assert_eq!(offsets, (0..n).collect::<Vec<_>>());
    }
}
