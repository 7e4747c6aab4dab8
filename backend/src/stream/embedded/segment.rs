//! The log's files: segments of frames, appended and synced in one write per
//! group commit.
//!
//! # File layout
//!
//! `dir/<20-digit sequence>.seg`, oldest first. Each segment starts with a
//! 16-byte header (magic, format) and a checkpoint frame, then any number of
//! batch frames:
//!
//! ```text
//! header:     b"clicklog" | format: u32 LE | 0: u32
//! frame:      body length: u32 LE | body crc32: u32 LE | kind: u8 | 0 0 0
//!             | header crc32: u32 LE (over the 12 bytes before it) | body
//! checkpoint: partitions: u32 | entry format: u8
//!             | per slot: first kept offset: u64, end offset: u64 | offsets
//! batch:      entry count: u32 | per entry: slot: u32, first offset: u64,
//!             length: u32, entry bytes (framing.rs) | offsets | marks
//! offsets:    count: u32 | per consumer position: name length: u16, name,
//!             next offset: u64
//! marks:      count: u32 | per retention mark: slot: u32, first kept offset: u64
//! ```
//!
//! A checkpoint is the whole state outside the records (partition count,
//! retention marks, end offsets, consumer positions) as of the segment's
//! start, so older segments can be deleted without losing any of it.
//!
//! # Why a torn tail is cut and other damage is not
//!
//! A crash can leave the last frame of the last segment half written; it was
//! never acknowledged (the writer answers after the sync), so recovery cuts
//! it off. A frame that fails its checksum with intact frames after it is
//! damage, not a torn write: it is kept, and the record checksums inside
//! its entries tell the reader which records to quarantine.
//!
//! After the last frame there may be zeros: the appender writes them ahead
//! of time (writer.rs, `zero_ahead`). A frame header never is all zeros (its
//! checksum would not match), so the scan stops there; zeros alone are kept,
//! anything else after the last frame is a torn write and is cut, zeros
//! and all.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::framing::{entry_count, read_u32};

pub(super) const MAGIC: &[u8; 8] = b"clicklog";

/// The segment format this build writes and reads.
pub(super) const SEGMENT_FORMAT: u32 = 1;

pub(super) const FILE_HEADER_LEN: usize = 16;
pub(super) const FRAME_HEADER_LEN: usize = 16;

pub(super) const CHECKPOINT: u8 = 1;
pub(super) const BATCH: u8 = 2;

/// The largest frame body recovery accepts: a commit holds at most
/// `MAX_BYTES_PER_COMMIT` plus one request, and requests are bounded by the
/// record limit. Anything claiming more is garbage, not a frame.
pub(super) const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

pub(super) fn segment_name(sequence: u64) -> String {
    format!("{sequence:020}.seg")
}

/// The sequence numbers of the segments in `dir`, oldest first. Leftover
/// temporary files are removed (they never held acknowledged records).
pub(super) fn list_segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut sequences = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".seg.tmp") {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        if let Some(sequence) = name.strip_suffix(".seg").and_then(|s| s.parse::<u64>().ok()) {
            sequences.push(sequence);
        }
    }
    sequences.sort_unstable();
    Ok(sequences)
}

pub(super) fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(segment_name(sequence))
}

/// Writes a whole segment file durably: under a temporary name, synced,
/// then renamed over `path` and the directory synced. Readers (and a crash)
/// see the old file or the new one, never part of it.
pub(super) fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("seg.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

pub(super) fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0; FILE_HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_FORMAT.to_le_bytes());
    header
}

/// Builds a frame in place: `begin` reserves its header, the caller appends
/// the body, `end` fills the header in.
pub(super) struct FrameWriter {
    start: usize,
    kind: u8,
}

impl FrameWriter {
    pub(super) fn begin(out: &mut Vec<u8>, kind: u8) -> FrameWriter {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        FrameWriter { start, kind }
    }

    pub(super) fn end(self, out: &mut [u8]) {
        let body = &out[self.start + FRAME_HEADER_LEN..];
        let len = body.len() as u32;
        let body_crc = crc32fast::hash(body);
        let header = &mut out[self.start..self.start + FRAME_HEADER_LEN];
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&body_crc.to_le_bytes());
        header[8] = self.kind;
        let header_crc = crc32fast::hash(&header[..12]);
        header[12..16].copy_from_slice(&header_crc.to_le_bytes());
    }
}

pub(super) fn put_offsets<'a>(out: &mut Vec<u8>, offsets: impl ExactSizeIterator<Item = (&'a str, u64)>) {
    out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    for (name, next) in offsets {
        // Names are `group/topic/partition`; a group name is bounded by the
        // config, and a longer one is cut rather than breaking the frame.
        let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&next.to_le_bytes());
    }
}

/// The state a checkpoint frame records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Checkpoint {
    pub(super) partitions: u32,
    pub(super) entry_format: u8,
    /// Per slot, the first offset retention keeps.
    pub(super) starts: Vec<u64>,
    /// Per slot, the offset the next record gets.
    pub(super) ends: Vec<u64>,
    pub(super) offsets: BTreeMap<String, u64>,
}

pub(super) fn put_checkpoint(out: &mut Vec<u8>, checkpoint: &Checkpoint) {
    let frame = FrameWriter::begin(out, CHECKPOINT);
    out.extend_from_slice(&checkpoint.partitions.to_le_bytes());
    out.push(checkpoint.entry_format);
    for (start, end) in checkpoint.starts.iter().zip(&checkpoint.ends) {
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&end.to_le_bytes());
    }
    put_offsets(out, checkpoint.offsets.iter().map(|(name, next)| (name.as_str(), *next)));
    frame.end(out);
}

/// One entry of a batch frame, as found in a file: where its bytes are.
#[derive(Clone, Debug)]
pub(super) struct EntryAt {
    pub(super) slot: usize,
    pub(super) base: u64,
    /// Position of the entry's bytes in the file.
    pub(super) position: u64,
    pub(super) len: u32,
    /// The record count the entry's header claims, or why it cannot be read.
    pub(super) count: Result<u32, String>,
}

/// A frame's parsed body.
pub(super) enum Frame {
    Checkpoint(Checkpoint),
    Batch { entries: Vec<EntryAt>, offsets: Vec<(String, u64)>, marks: Vec<(usize, u64)> },
}

/// A cursor over a frame body; every read is bounds-checked.
struct Body<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or("frame body ends early")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(read_u32(self.take(4)?, 0))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn offsets(&mut self) -> Result<Vec<(String, u64)>, String> {
        let count = self.u32()? as usize;
        let mut offsets = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let len = usize::from(self.u16()?);
            let name = String::from_utf8_lossy(self.take(len)?).into_owned();
            offsets.push((name, self.u64()?));
        }
        Ok(offsets)
    }
}

/// Parses a frame body that starts at `position` in its file.
pub(super) fn parse_frame(kind: u8, body: &[u8], position: u64, slots: usize) -> Result<Frame, String> {
    let mut body = Body { bytes: body, at: 0 };
    match kind {
        CHECKPOINT => {
            let partitions = body.u32()?;
            let entry_format = body.u8()?;
            let count = 2 * partitions as usize;
            let mut starts = Vec::with_capacity(count.min(1 << 16));
            let mut ends = Vec::with_capacity(count.min(1 << 16));
            for _ in 0..count {
                starts.push(body.u64()?);
                ends.push(body.u64()?);
            }
            let offsets = body.offsets()?.into_iter().collect();
            Ok(Frame::Checkpoint(Checkpoint { partitions, entry_format, starts, ends, offsets }))
        }
        BATCH => {
            let count = body.u32()? as usize;
            let mut entries = Vec::with_capacity(count.min(4096));
            for _ in 0..count {
                let slot = body.u32()? as usize;
                let base = body.u64()?;
                let len = body.u32()?;
                let at = body.at;
                let count = entry_count(body.take(len as usize)?);
                if slot >= slots {
                    return Err(format!("an entry names slot {slot} of {slots}"));
                }
                entries.push(EntryAt { slot, base, position: position + at as u64, len, count });
            }
            let offsets = body.offsets()?;
            let marks_count = body.u32()? as usize;
            let mut marks = Vec::with_capacity(marks_count.min(4096));
            for _ in 0..marks_count {
                let slot = body.u32()? as usize;
                if slot >= slots {
                    return Err(format!("a retention mark names slot {slot} of {slots}"));
                }
                marks.push((slot, body.u64()?));
            }
            Ok(Frame::Batch { entries, offsets, marks })
        }
        other => Err(format!("unknown frame kind {other}")),
    }
}

/// What reading one segment found.
pub(super) struct Scanned {
    /// Frames in file order, each with the position of its header.
    pub(super) frames: Vec<(u64, Frame)>,
    /// Where the intact frames end: the file is cut here when this is the
    /// last segment and bytes follow (a torn write).
    pub(super) valid_len: u64,
    pub(super) file_len: u64,
    /// Frames kept despite a body checksum mismatch, for the warning.
    pub(super) damaged_frames: usize,
    /// The whole file, which entry positions point into.
    pub(super) bytes: Vec<u8>,
}

/// Reads a whole segment. `slots` bounds the slot numbers frames may name
/// (unknown until the first checkpoint: then `usize::MAX`).
pub(super) fn scan(path: &Path, mut slots: usize) -> Result<Scanned, String> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| format!("reading: {e}"))?;
    let file_len = bytes.len() as u64;
    if bytes.len() < FILE_HEADER_LEN {
        // A segment created but never written past its header (a crash
        // while rolling): nothing in it was acknowledged.
        return Ok(Scanned { frames: Vec::new(), valid_len: 0, file_len, damaged_frames: 0, bytes });
    }
    if &bytes[..8] != MAGIC {
        return Err("not a clickstream log segment (bad magic)".to_string());
    }
    let format = read_u32(&bytes, 8);
    if format > SEGMENT_FORMAT {
        return Err(format!(
            "log format {format}, this build reads formats up to {SEGMENT_FORMAT} (a newer clickstream wrote it)"
        ));
    }
    let mut frames = Vec::new();
    let mut at = FILE_HEADER_LEN;
    let mut damaged_frames = 0;
    // A frame whose body fails its checksum is kept once another frame
    // follows it (a torn write can only be the last one); at the end of
    // the file it is the torn write, and is cut.
    let mut pending_damaged: Option<(u64, Frame)> = None;
    while let Some(header) = bytes.get(at..at + FRAME_HEADER_LEN) {
        if crc32fast::hash(&header[..12]) != read_u32(header, 12) {
            break;
        }
        let len = read_u32(header, 0) as usize;
        if len > MAX_FRAME_BYTES {
            break;
        }
        let Some(body) = bytes.get(at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + len) else {
            break;
        };
        let intact = crc32fast::hash(body) == read_u32(header, 4);
        let Ok(frame) = parse_frame(header[8], body, (at + FRAME_HEADER_LEN) as u64, slots) else {
            break;
        };
        if let Frame::Checkpoint(checkpoint) = &frame {
            slots = 2 * checkpoint.partitions as usize;
        }
        if let Some(earlier) = pending_damaged.take() {
            damaged_frames += 1;
            frames.push(earlier);
        }
        if intact {
            frames.push((at as u64, frame));
        } else {
            pending_damaged = Some((at as u64, frame));
        }
        at += FRAME_HEADER_LEN + len;
    }
    let valid_len = match &pending_damaged {
        Some((header_at, _)) => *header_at,
        None => at as u64,
    };
    Ok(Scanned { frames, valid_len, file_len, damaged_frames, bytes })
}
