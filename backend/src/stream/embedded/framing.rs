//! How records are framed inside an entry (one redb value holding a run of
//! consecutive records of a partition), and their CRC-32 checksums.

use super::{StreamError, ENTRY_HEADER_LEN, MAX_ENTRY_BYTES, MAX_RECORD_BYTES, RECORD_HEADER_LEN};
use bytes::Bytes;

/// Encodes one record, checksum first:
///
/// ```text
/// crc32: u32 LE | key length: u32 LE | value length: u32 LE | key | value
/// ```
///
/// The CRC-32 (IEEE) covers everything after itself.
pub(super) fn encode_record(key: &[u8], value: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut bytes = Vec::with_capacity(RECORD_HEADER_LEN + key.len() + value.len());
    append_record(&mut bytes, key, value)?;
    Ok(bytes)
}

/// [`encode_record`] onto the end of `bytes`, so a run of records is framed
/// without a buffer per record.
pub(super) fn append_record(bytes: &mut Vec<u8>, key: &[u8], value: &[u8]) -> Result<(), StreamError> {
    let size = key.len() + value.len();
    if size > MAX_RECORD_BYTES {
        return Err(StreamError::BadRequest(format!(
            "record of {size} bytes is larger than the limit of {MAX_RECORD_BYTES}"
        )));
    }
    let start = bytes.len();
    // Both lengths fit in u32: their sum is at most MAX_RECORD_BYTES.
    bytes.reserve(RECORD_HEADER_LEN + size);
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(value);
    let checksum = crc32fast::hash(&bytes[start + 4..]);
    bytes[start..start + 4].copy_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// Entry format 1 (written before chunks): the records one after another.
pub(super) const PLAIN_ENTRY: u8 = 1;

/// Entry format 2: the records in chunks, each compressed on its own.
pub(super) const CHUNKED_ENTRY: u8 = 2;

/// Chunk header: codec (1) + record count (4) + raw length (4) + stored length (4).
const CHUNK_HEADER_LEN: usize = 13;

/// A chunk's records stored as they are (compression did not make them smaller).
const STORED: u8 = 0;

/// A chunk's records as one LZ4 block.
const LZ4: u8 = 1;

/// A chunk is closed once its records reach [`MAX_ENTRY_BYTES`], so no chunk
/// holds more than that plus one record. A chunk header claiming more is
/// damage, and is refused before anything is allocated for it.
const MAX_CHUNK_RAW_BYTES: usize = MAX_ENTRY_BYTES + RECORD_HEADER_LEN + MAX_RECORD_BYTES;

/// Records of one partition framed one after another, compressed together
/// when [`ChunkBuilder::finish`] is called. Producers build their chunks on their
/// own tasks, so the single writer only copies compressed bytes.
///
/// Why compress: a durable commit's time is mostly the bytes it writes and
/// syncs (this machine's disk syncs ~300 MB/s), and events of one visitor
/// repeat most of their bytes (site, page URLs, user agent): LZ4 shrinks a
/// batch of them about fourfold for a few microseconds per record.
#[derive(Default)]
pub(super) struct ChunkBuilder {
    count: u32,
    raw: Vec<u8>,
}

/// A finished chunk: its header and stored bytes, ready to go into an entry.
pub(super) struct Chunk {
    pub(super) count: u32,
    pub(super) raw_len: usize,
    pub(super) bytes: Vec<u8>,
}

impl ChunkBuilder {
    pub(super) fn push_record(&mut self, key: &[u8], value: &[u8]) -> Result<(), StreamError> {
        append_record(&mut self.raw, key, value)?;
        self.count += 1;
        Ok(())
    }

    /// Adds a record framed by [`encode_record`].
    pub(super) fn push_framed(&mut self, record: &[u8]) {
        self.raw.extend_from_slice(record);
        self.count += 1;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn is_full(&self) -> bool {
        self.raw.len() >= MAX_ENTRY_BYTES || self.count == u32::MAX
    }

    /// Compresses the records (keeping them as they are when that is not
    /// smaller) and leaves the builder empty.
    pub(super) fn finish(&mut self) -> Chunk {
        let raw = std::mem::take(&mut self.raw);
        let count = std::mem::take(&mut self.count);
        // Compress straight behind the header: no second copy of the bytes.
        let mut bytes = vec![0; CHUNK_HEADER_LEN + lz4_flex::block::get_maximum_output_size(raw.len())];
        let codec = match lz4_flex::block::compress_into(&raw, &mut bytes[CHUNK_HEADER_LEN..]) {
            Ok(n) if n < raw.len() => {
                bytes.truncate(CHUNK_HEADER_LEN + n);
                LZ4
            }
            _ => {
                bytes.truncate(CHUNK_HEADER_LEN);
                bytes.extend_from_slice(&raw);
                STORED
            }
        };
        let stored_len = bytes.len() - CHUNK_HEADER_LEN;
        bytes[0] = codec;
        bytes[1..5].copy_from_slice(&count.to_le_bytes());
        // Both fit in u32: a chunk holds at most MAX_CHUNK_RAW_BYTES.
        bytes[5..9].copy_from_slice(&(raw.len() as u32).to_le_bytes());
        bytes[9..13].copy_from_slice(&(stored_len as u32).to_le_bytes());
        Chunk { count, raw_len: raw.len(), bytes }
    }
}

/// Builds one entry, the value stored under the offset of its first record:
///
/// ```text
/// format 2: u8 | record count: u32 LE | chunk | chunk | ...
/// chunk:    codec: u8 (0 stored, 1 LZ4 block) | record count: u32 LE
///           | raw length: u32 LE | stored length: u32 LE | stored bytes
/// ```
///
/// A chunk's raw bytes are its records as [`encode_record`] made them, so
/// every record keeps its own checksum through compression. Every byte is
/// covered either by a record checksum or by the structure: a reader must
/// find chunks that decompress to exactly their raw length, and exactly
/// `count` well-formed records in them. (Format 1, still read, is the header
/// followed directly by the records.)
pub(super) struct EntryBuilder {
    pub(super) base: u64,
    pub(super) count: u32,
    raw_len: usize,
    bytes: Vec<u8>,
    /// Records pushed one by one (retention and `forget` rewriting an
    /// entry), compressed together when the entry is finished.
    loose: ChunkBuilder,
}

impl EntryBuilder {
    pub(super) fn new(base: u64) -> EntryBuilder {
        let mut bytes = Vec::with_capacity(4096);
        bytes.push(CHUNKED_ENTRY);
        bytes.extend_from_slice(&[0; 4]);
        EntryBuilder { base, count: 0, raw_len: 0, bytes, loose: ChunkBuilder::default() }
    }

    pub(super) fn has_room(&self) -> bool {
        self.raw_len < MAX_ENTRY_BYTES && self.count < u32::MAX / 2
    }

    /// Adds one record framed by [`encode_record`].
    pub(super) fn push(&mut self, record: &[u8]) {
        self.loose.push_framed(record);
        self.count += 1;
        self.raw_len += record.len();
        if self.loose.is_full() {
            self.close_loose();
        }
    }

    /// Adds a producer's chunk as it is.
    pub(super) fn push_chunk(&mut self, chunk: &Chunk) {
        self.close_loose();
        self.bytes.extend_from_slice(&chunk.bytes);
        self.count += chunk.count;
        self.raw_len += chunk.raw_len;
    }

    fn close_loose(&mut self) {
        if !self.loose.is_empty() {
            let chunk = self.loose.finish();
            self.bytes.extend_from_slice(&chunk.bytes);
        }
    }

    /// The key (offset of the first record) and the stored bytes.
    pub(super) fn finish(mut self) -> (u64, Vec<u8>) {
        self.close_loose();
        self.bytes[1..ENTRY_HEADER_LEN].copy_from_slice(&self.count.to_le_bytes());
        (self.base, self.bytes)
    }
}

/// The record count an entry's header claims, without reading its records.
pub(super) fn entry_count(entry: &[u8]) -> Result<u32, String> {
    if entry.len() < ENTRY_HEADER_LEN {
        return Err(format!("entry of {} bytes is shorter than its header", entry.len()));
    }
    if entry[0] != PLAIN_ENTRY && entry[0] != CHUNKED_ENTRY {
        return Err(format!("unknown entry format {}", entry[0]));
    }
    Ok(read_u32(entry, 1))
}

/// An entry's records, decompressed: as they are in a format-1 entry,
/// decoded from a format-2 one. Chunks are decoded up to the first damaged
/// one; its problem is reported after the records before it.
pub(super) struct EntryBody<'a> {
    count: u32,
    records: Records<'a>,
    damage: Option<String>,
}

/// Where an entry's records are: borrowed from bytes the caller holds (the
/// scans of `forget`), or in a buffer readers hand on in slices
/// ([`EntryBody::share`]): a fetch of a million records was a million
/// allocations and copies, a third of reading the log.
enum Records<'a> {
    Borrowed(&'a [u8]),
    Shared(Bytes),
}

impl<'a> EntryBody<'a> {
    pub(super) fn open(entry: &'a [u8]) -> Result<EntryBody<'a>, String> {
        let count = entry_count(entry)?;
        let rest = &entry[ENTRY_HEADER_LEN..];
        if entry[0] == PLAIN_ENTRY {
            return Ok(EntryBody { count, records: Records::Borrowed(rest), damage: None });
        }
        Ok(EntryBody::decoded(rest, count))
    }

    /// [`EntryBody::open`] of an entry the body then owns, so that its
    /// records can be [shared](EntryBody::share) without copies.
    pub(super) fn open_shared(mut entry: Bytes) -> Result<EntryBody<'static>, String> {
        let count = entry_count(&entry)?;
        if entry[0] == PLAIN_ENTRY {
            // The header off the front; the records stay where they are.
            let records = entry.split_off(ENTRY_HEADER_LEN);
            return Ok(EntryBody { count, records: Records::Shared(records), damage: None });
        }
        Ok(EntryBody::decoded(&entry[ENTRY_HEADER_LEN..], count))
    }

    fn decoded<'b>(chunks: &[u8], count: u32) -> EntryBody<'b> {
        let mut records = Vec::new();
        let damage = decode_chunks(chunks, count, &mut records).err();
        EntryBody { count, records: Records::Shared(records.into()), damage }
    }

    pub(super) fn reader(&self) -> EntryReader<'_> {
        let rest = match &self.records {
            Records::Borrowed(bytes) => bytes,
            Records::Shared(bytes) => &bytes[..],
        };
        EntryReader { count: self.count, remaining: self.count, rest, damage: self.damage.as_deref() }
    }

    /// `part` of a record this body's reader returned: a slice of the
    /// body's buffer, or a copy when the records are borrowed.
    pub(super) fn share(&self, part: &[u8]) -> Bytes {
        match &self.records {
            Records::Borrowed(_) => Bytes::copy_from_slice(part),
            Records::Shared(bytes) => bytes.slice_ref(part),
        }
    }
}

/// Appends the raw records of every chunk to `out`, stopping at the first
/// chunk that does not decode (a stored chunk cut short keeps what is left).
fn decode_chunks(mut rest: &[u8], count: u32, out: &mut Vec<u8>) -> Result<(), String> {
    let mut records = 0u64;
    let mut chunk = 0;
    while !rest.is_empty() {
        chunk += 1;
        if rest.len() < CHUNK_HEADER_LEN {
            return Err(format!("entry ends inside the header of chunk {chunk}"));
        }
        let (codec, chunk_count) = (rest[0], read_u32(rest, 1));
        let (raw_len, stored_len) = (read_u32(rest, 5) as usize, read_u32(rest, 9) as usize);
        if raw_len > MAX_CHUNK_RAW_BYTES {
            return Err(format!("chunk {chunk} claims {raw_len} bytes of records, more than a chunk holds"));
        }
        let body = &rest[CHUNK_HEADER_LEN..];
        let stored = &body[..stored_len.min(body.len())];
        match codec {
            STORED => {
                out.extend_from_slice(stored);
                if stored_len != raw_len {
                    return Err(format!("stored chunk {chunk} claims {stored_len} bytes for {raw_len} of records"));
                }
            }
            LZ4 => {
                let start = out.len();
                out.resize(start + raw_len, 0);
                let decoded = lz4_flex::block::decompress_into(stored, &mut out[start..]);
                if !matches!(decoded, Ok(n) if n == raw_len) || stored.len() < stored_len {
                    out.truncate(start);
                    return Err(format!("compressed chunk {chunk} does not decompress to its {raw_len} bytes"));
                }
            }
            other => return Err(format!("chunk {chunk} has unknown codec {other}")),
        }
        if body.len() < stored_len {
            return Err(format!("entry ends inside chunk {chunk}"));
        }
        rest = &body[stored_len..];
        records += u64::from(chunk_count);
    }
    if records != u64::from(count) {
        return Err(format!("chunks hold {records} records, the header announces {count}"));
    }
    Ok(())
}

/// Walks the records of a stored entry, checking its structure on the way.
/// Problems come back as a plain description; callers add where.
pub(super) struct EntryReader<'a> {
    /// The record count the header claims.
    pub(super) count: u32,
    remaining: u32,
    rest: &'a [u8],
    /// Why the records stop early (a chunk that did not decode).
    damage: Option<&'a str>,
}

/// One record inside an entry, not yet checked against its checksum.
pub(super) struct RawRecord<'a> {
    pub(super) bytes: &'a [u8],
}

pub(super) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl<'a> EntryReader<'a> {
    /// The next record, or `None` after the last one.
    pub(super) fn next_record(&mut self) -> Result<Option<RawRecord<'a>>, String> {
        if let Some(damage) = self.damage.filter(|_| self.rest.len() < RECORD_HEADER_LEN) {
            return Err(damage.to_string());
        }
        if self.remaining == 0 {
            if self.rest.is_empty() {
                return Ok(None);
            }
            return Err(format!(
                "{} stray bytes after the {} records the header announces",
                self.rest.len(),
                self.count
            ));
        }
        if self.rest.len() < RECORD_HEADER_LEN {
            return Err(format!(
                "entry ends inside the header of record {} of {}",
                self.count - self.remaining + 1,
                self.count
            ));
        }
        let key_len = read_u32(self.rest, 4) as usize;
        let value_len = read_u32(self.rest, 8) as usize;
        let size = RECORD_HEADER_LEN
            .checked_add(key_len)
            .and_then(|size| size.checked_add(value_len))
            .filter(|size| *size <= self.rest.len())
            .ok_or_else(|| {
                format!(
                    "record {} of {} claims {key_len} + {value_len} bytes, more than the entry holds",
                    self.count - self.remaining + 1,
                    self.count
                )
            })?;
        let (record, rest) = self.rest.split_at(size);
        self.rest = rest;
        self.remaining -= 1;
        Ok(Some(RawRecord { bytes: record }))
    }
}

impl<'a> RawRecord<'a> {
    /// Checks the checksum and returns (key, value).
    pub(super) fn checked(&self) -> Result<(&'a [u8], &'a [u8]), String> {
        let stored = read_u32(self.bytes, 0);
        let computed = crc32fast::hash(&self.bytes[4..]);
        if stored != computed {
            return Err(format!("checksum mismatch (stored {stored:08x}, computed {computed:08x})"));
        }
        let key_len = read_u32(self.bytes, 4) as usize;
        Ok(self.bytes[RECORD_HEADER_LEN..].split_at(key_len))
    }
}

/// Walks a whole entry, checking every record, and returns its record count.
#[cfg(test)]
pub(super) fn checked_record_count(entry: &[u8]) -> Result<u32, String> {
    let body = EntryBody::open(entry)?;
    let mut reader = body.reader();
    while let Some(record) = reader.next_record()? {
        record.checked()?;
    }
    Ok(reader.count)
}
