//! The binary stream record of an enriched event.
//!
//! The aggregator used to read each event back from JSON (about 1.3 KB per
//! event), which was half of its time from the log to Silver. The record is
//! now the event's fields in declaration order, each in a plain binary form,
//! so decoding is a walk over the bytes that borrows every string:
//!
//! ```text
//! version: u8 (= 3) | field | field | ...
//! text:     varint length | UTF-8 bytes
//! optional: 0 (absent) | 1 then the value
//! i64, f64: 8 bytes little-endian;  u32: 4 bytes;  bool: 1 byte
//! event type: its index in EventType::ALL (u8)
//! ```
//!
//! The props come after the page's fields, preceded by their count (u8),
//! in the contract's order: a prop appended to the contract changes
//! nothing here, and a record written before it reads with that prop
//! absent. Version 2 had no count: its twelve props always followed.
//!
//! The first byte tells the formats apart: a JSON record (format 1, still in
//! logs written before) starts with `{`, a binary one with its version. Any
//! other new field means a new version number, so old records keep their
//! meaning.

use std::borrow::Cow;
use std::fmt;

/// The version byte of the current binary record.
pub const RECORD_VERSION: u8 = 3;
/// The binary record before its props were counted (logs written before
/// `page_leave`'s props), still read.
pub const RECORD_V2: u8 = 2;
/// How many props a version 2 record holds.
pub const RECORD_V2_PROPS: usize = 12;

/// Why a record could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError(pub String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

/// Appends fields to a record.
pub struct RecordWriter<'o>(pub &'o mut Vec<u8>);

impl RecordWriter<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }

    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    /// Bytes as text is written: varint length, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.0.extend_from_slice(v);
    }

    fn len(&mut self, len: usize) {
        let mut len = len as u64;
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                self.0.push(byte);
                break;
            }
            self.0.push(byte | 0x80);
        }
    }

    /// An optional value: a presence byte, then the value.
    pub fn opt<T>(&mut self, v: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                write(self, v);
            }
        }
    }
}

/// Reads fields off a record, borrowing its strings.
pub struct RecordReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> RecordReader<'a> {
    pub fn new(bytes: &'a [u8]) -> RecordReader<'a> {
        RecordReader { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or_else(|| {
            RecordError(format!("record ends at byte {} inside a field of {n} bytes", self.bytes.len()))
        })?;
        let part = &self.bytes[self.at..end];
        self.at = end;
        Ok(part)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    pub fn bool(&mut self) -> Result<bool, RecordError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(RecordError(format!("byte {other} at {} is not a boolean", self.at - 1))),
        }
    }

    pub fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn f64(&mut self) -> Result<f64, RecordError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn str(&mut self) -> Result<Cow<'a, str>, RecordError> {
        let bytes = self.bytes()?;
        let at = self.at - bytes.len();
        std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|e| RecordError(format!("text at byte {at} is not UTF-8: {e}")))
    }

    /// Bytes written by [`RecordWriter::bytes`].
    pub fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let mut len: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            len |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                let len = usize::try_from(len).map_err(|_| RecordError(format!("a field of {len} bytes")))?;
                return self.take(len);
            }
        }
        Err(RecordError(format!("a length at byte {} runs past 64 bits", self.at)))
    }

    pub fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Result<T, RecordError>) -> Result<Option<T>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            other => Err(RecordError(format!("byte {other} at {} is not a presence flag", self.at - 1))),
        }
    }

    /// Checks that every byte was read: a record with bytes left over was
    /// written by another version, and its fields were not the ones read.
    pub fn finish(self) -> Result<(), RecordError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(RecordError(format!("{} bytes left after the last field", self.bytes.len() - self.at)))
        }
    }
}

/// Writes a prop of the given kind (see [`crate::with_props`]).
#[doc(hidden)]
#[macro_export]
macro_rules! write_prop {
    (Text, $w:expr, $v:expr) => {
        $w.opt($v.as_deref(), $crate::record::RecordWriter::str)
    };
    (Url, $w:expr, $v:expr) => {
        $w.opt($v.as_deref(), $crate::record::RecordWriter::str)
    };
    (Number, $w:expr, $v:expr) => {
        $w.opt($v, $crate::record::RecordWriter::f64)
    };
    (Integer, $w:expr, $v:expr) => {
        $w.opt($v, $crate::record::RecordWriter::i64)
    };
}

/// Reads a prop of the given kind.
#[doc(hidden)]
#[macro_export]
macro_rules! read_prop {
    (Text, $r:expr) => {
        $r.opt($crate::record::RecordReader::str)?
    };
    (Url, $r:expr) => {
        $r.opt($crate::record::RecordReader::str)?
    };
    (Number, $r:expr) => {
        $r.opt($crate::record::RecordReader::f64)?
    };
    (Integer, $r:expr) => {
        $r.opt($crate::record::RecordReader::i64)?
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_kind_reads_back_and_truncation_is_an_error() {
        let mut bytes = Vec::new();
        let mut w = RecordWriter(&mut bytes);
        let long = "é".repeat(100); // a length over one varint byte
        w.str("");
        w.str(&long);
        w.opt(Some(-5i64), RecordWriter::i64);
        w.opt(None::<f64>, RecordWriter::f64);
        w.f64(2.5);
        w.u32(7);
        w.bool(true);
        let mut r = RecordReader::new(&bytes);
        assert_eq!(r.str().unwrap(), "");
        assert_eq!(r.str().unwrap(), long);
        assert_eq!(r.opt(RecordReader::i64).unwrap(), Some(-5));
        assert_eq!(r.opt(RecordReader::f64).unwrap(), None);
        assert_eq!(r.f64().unwrap(), 2.5);
        assert_eq!(r.u32().unwrap(), 7);
        assert!(r.bool().unwrap());
        r.finish().unwrap();

        for cut in 0..bytes.len() {
            let mut r = RecordReader::new(&bytes[..cut]);
            let read = (|| -> Result<(), RecordError> {
                r.str()?;
                r.str()?;
                r.opt(RecordReader::i64)?;
                r.opt(RecordReader::f64)?;
                r.f64()?;
                r.u32()?;
                r.bool()?;
                Ok(())
            })();
            assert!(read.is_err(), "a record cut at {cut} of {} bytes reads", bytes.len());
        }
    }

    #[test]
    fn text_that_is_not_utf8_is_refused() {
        let bytes = [2u8, 0xff, 0xfe];
        assert!(RecordReader::new(&bytes).str().unwrap_err().0.contains("UTF-8"));
    }
}
