//! How records are framed inside an entry (one redb value holding a run of
//! consecutive records of a partition), and their CRC-32 checksums.

use super::{StreamError, ENTRY_HEADER_LEN, ENTRY_VERSION, MAX_ENTRY_BYTES, MAX_RECORD_BYTES, RECORD_HEADER_LEN};

/// Encodes one record, checksum first:
///
/// ```text
/// crc32: u32 LE | key length: u32 LE | value length: u32 LE | key | value
/// ```
///
/// The CRC-32 (IEEE) covers everything after itself.
pub(super) fn encode_record(key: &[u8], value: &[u8]) -> Result<Vec<u8>, StreamError> {
    let size = key.len() + value.len();
    if size > MAX_RECORD_BYTES {
        return Err(StreamError::BadRequest(format!(
            "record of {size} bytes is larger than the limit of {MAX_RECORD_BYTES}"
        )));
    }
    // Both lengths fit in u32: their sum is at most MAX_RECORD_BYTES.
    let mut bytes = Vec::with_capacity(RECORD_HEADER_LEN + size);
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(value);
    let checksum = crc32fast::hash(&bytes[4..]);
    bytes[..4].copy_from_slice(&checksum.to_le_bytes());
    Ok(bytes)
}

/// Builds one entry, the value stored under the offset of its first record:
///
/// ```text
/// version: u8 | record count: u32 LE | record | record | ...
/// ```
///
/// Each record is as [`encode_record`] made it. Every byte is covered either
/// by a record checksum or by the structure: a reader walking the entry must
/// find exactly `count` well-formed records and nothing after them.
pub(super) struct EntryBuilder {
    pub(super) base: u64,
    pub(super) count: u32,
    pub(super) bytes: Vec<u8>,
}

impl EntryBuilder {
    pub(super) fn new(base: u64) -> EntryBuilder {
        let mut bytes = Vec::with_capacity(4096);
        bytes.push(ENTRY_VERSION);
        bytes.extend_from_slice(&[0; 4]);
        EntryBuilder { base, count: 0, bytes }
    }

    pub(super) fn has_room(&self) -> bool {
        self.bytes.len() < MAX_ENTRY_BYTES && self.count < u32::MAX
    }

    pub(super) fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.count += 1;
    }

    /// The key (offset of the first record) and the stored bytes.
    pub(super) fn finish(mut self) -> (u64, Vec<u8>) {
        self.bytes[1..ENTRY_HEADER_LEN].copy_from_slice(&self.count.to_le_bytes());
        (self.base, self.bytes)
    }
}

/// Walks the records of a stored entry, checking its structure on the way.
/// Problems come back as a plain description; callers add where.
pub(super) struct EntryReader<'a> {
    /// The record count the header claims.
    pub(super) count: u32,
    remaining: u32,
    rest: &'a [u8],
}

/// One record inside an entry, not yet checked against its checksum.
pub(super) struct RawRecord<'a> {
    pub(super) bytes: &'a [u8],
}

pub(super) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl<'a> EntryReader<'a> {
    pub(super) fn new(entry: &'a [u8]) -> Result<EntryReader<'a>, String> {
        if entry.len() < ENTRY_HEADER_LEN {
            return Err(format!("entry of {} bytes is shorter than its header", entry.len()));
        }
        if entry[0] != ENTRY_VERSION {
            return Err(format!("unknown entry format {}", entry[0]));
        }
        let count = read_u32(entry, 1);
        Ok(EntryReader { count, remaining: count, rest: &entry[ENTRY_HEADER_LEN..] })
    }

    /// The next record, or `None` after the last one.
    pub(super) fn next_record(&mut self) -> Result<Option<RawRecord<'a>>, String> {
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
pub(super) fn checked_record_count(entry: &[u8]) -> Result<u32, String> {
    let mut reader = EntryReader::new(entry)?;
    while let Some(record) = reader.next_record()? {
        record.checked()?;
    }
    Ok(reader.count)
}
