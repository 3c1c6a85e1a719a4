//! Records inside an uncompressed v2 batch body, read in place.
//!
//! ```text
//! length varint | attributes i8 | timestamp_delta varlong | offset_delta varint
//! key_length varint | key | value_length varint | value | header_count varint | headers...
//! ```

use crate::error::ErrorCode;
use crate::varint::{read_varint, read_varlong};

/// One record, borrowed from the batch bytes. Headers keep their order and duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// A record to encode with [`crate::batch::build_batch`].
#[derive(Clone, Copy, Debug)]
pub struct RecordSpec<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
    pub timestamp_ms: i64,
}

impl RecordSpec<'_> {
    pub(crate) fn encoded_len_hint(&self) -> usize {
        16 + self.key.map_or(0, <[u8]>::len) + self.value.map_or(0, <[u8]>::len)
    }
}

/// Iterates the records of an uncompressed batch body (the bytes after the 61-byte header). A malformed record
/// yields `Err(InvalidRecord)` and ends the iteration.
pub struct RecordIter<'a> {
    body: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        RecordIter { body, pos: 0, failed: false }
    }

    fn parse_one(&mut self) -> Option<Record<'a>> {
        let length = read_varint(self.body, &mut self.pos)?;
        let start = self.pos;
        let end = start.checked_add(usize::try_from(length).ok()?)?;
        if end > self.body.len() {
            return None;
        }
        let record = &self.body[..end];
        let pos = &mut self.pos;
        let attributes = *record.get(*pos)? as i8;
        *pos += 1;
        let timestamp_delta = read_varlong(record, pos)?;
        let offset_delta = read_varint(record, pos)?;
        let key = read_nullable(record, pos)?;
        let value = read_nullable(record, pos)?;
        let header_count = read_varint(record, pos)?;
        if header_count < 0 {
            return None;
        }
        let mut headers = Vec::new();
        for _ in 0..header_count {
            let header_key = read_nullable(record, pos)??;
            let header_value = read_nullable(record, pos)?;
            headers.push((header_key, header_value));
        }
        if *pos != end {
            return None; // the length field disagrees with the contents
        }
        Some(Record { attributes, timestamp_delta, offset_delta, key, value, headers })
    }
}

/// `Some(None)` for a null (-1 length), `None` if malformed.
fn read_nullable<'a>(buf: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varint(buf, pos)?;
    if len < 0 {
        return (len == -1).then_some(None);
    }
    let end = pos.checked_add(len as usize)?;
    let bytes = buf.get(*pos..end)?;
    *pos = end;
    Some(Some(bytes))
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, ErrorCode>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.body.len() {
            return None;
        }
        match self.parse_one() {
            Some(record) => Some(Ok(record)),
            None => {
                self.failed = true;
                Some(Err(ErrorCode::InvalidRecord))
            }
        }
    }
}
