//! Sparse offset and time indexes, in Kafka's on-disk formats.
//!
//! `.index`: 8-byte entries `(relative offset u32, file position u32)`, big-endian, where the offset is the
//! last offset of the batch that starts at that position. `.timeindex`: 12-byte entries
//! `(timestamp i64, relative offset u32)`, timestamps strictly increasing. Both are held in memory while the
//! segment is open and written whole when the segment is sealed or the log closes cleanly; after a crash the
//! active segment's indexes are rebuilt by scanning it.

/// Offset → file position, one entry every `index.interval.bytes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(last_offset, last_position)) = self.entries.last() {
            assert!(relative_offset > last_offset && position > last_position, "offset index must grow");
        }
        self.entries.push((relative_offset, position));
    }

    /// The file position from which a scan for `relative_offset` must start: the position of the last entry
    /// whose offset is below the target (its batch ends before the target), or 0.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self.entries.partition_point(|&(offset, _)| offset < relative_offset);
        // Entry offsets are batch *last* offsets, so the batch at entry i holds offsets <= entries[i].0; a
        // target equal to an entry's offset lies in that entry's batch.
        if after < self.entries.len() && self.entries[after].0 == relative_offset {
            return self.entries[after].1;
        }
        if after == 0 {
            0
        } else {
            self.entries[after - 1].1
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for &(offset, position) in &self.entries {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
        out
    }

    /// `None` if the bytes are not a well-formed index for a segment of `segment_len` bytes.
    pub fn decode(bytes: &[u8], segment_len: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for entry in bytes.chunks_exact(8) {
            let offset = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let position = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]);
            if u64::from(position) >= segment_len {
                return None;
            }
            if let Some((last_offset, last_position)) = index.last() {
                if offset <= last_offset || position <= last_position {
                    return None;
                }
            }
            index.entries.push((offset, position));
        }
        Some(index)
    }
}

/// Timestamp → offset, an entry whenever the segment's max timestamp grows at an index point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Adds an entry if `timestamp` is newer than the last one.
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(last_timestamp, _)) if timestamp <= last_timestamp => {}
            _ => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// The relative offset from which to search for the first record with a timestamp >= `timestamp`: the
    /// offset of the last entry whose timestamp is below it, or 0.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let after = self.entries.partition_point(|&(ts, _)| ts < timestamp);
        if after == 0 {
            0
        } else {
            self.entries[after - 1].1
        }
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for &(timestamp, offset) in &self.entries {
            out.extend_from_slice(&timestamp.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(12) {
            return None;
        }
        let mut index = TimeIndex::default();
        for entry in bytes.chunks_exact(12) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&entry[..8]);
            let timestamp = i64::from_be_bytes(ts);
            let offset = u32::from_be_bytes([entry[8], entry[9], entry[10], entry[11]]);
            if let Some((last_ts, last_offset)) = index.last() {
                if timestamp <= last_ts || offset < last_offset {
                    return None;
                }
            }
            index.entries.push((timestamp, offset));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_scan_start() {
        let mut index = OffsetIndex::default();
        index.push(9, 4096); // batch ending at offset 9 starts at 4096
        index.push(19, 8192);
        index.push(29, 12288);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 4096, "target is the entry's own batch");
        assert_eq!(index.lookup(10), 4096, "scan from the batch before: it ends at 9");
        assert_eq!(index.lookup(19), 8192);
        assert_eq!(index.lookup(25), 8192);
        assert_eq!(index.lookup(1_000), 12288);
    }

    #[test]
    fn offset_index_round_trips_and_rejects_garbage() {
        let mut index = OffsetIndex::default();
        index.push(3, 100);
        index.push(7, 900);
        let bytes = index.encode();
        assert_eq!(OffsetIndex::decode(&bytes, 1000), Some(index.clone()));
        assert_eq!(OffsetIndex::decode(&bytes, 900), None, "position past the segment end");
        assert_eq!(OffsetIndex::decode(&bytes[..7], 1000), None, "partial entry");
        let mut swapped = index.encode();
        swapped.rotate_left(8);
        assert_eq!(OffsetIndex::decode(&swapped, 1000), None, "not increasing");
    }

    #[test]
    fn time_index_lookup_and_round_trip() {
        let mut index = TimeIndex::default();
        index.maybe_push(100, 0);
        index.maybe_push(90, 5); // older timestamp: ignored
        index.maybe_push(200, 10);
        index.maybe_push(300, 20);
        assert_eq!(index.lookup(50), 0);
        assert_eq!(index.lookup(100), 0);
        assert_eq!(index.lookup(150), 0);
        assert_eq!(index.lookup(250), 10);
        assert_eq!(index.lookup(10_000), 20);
        assert_eq!(TimeIndex::decode(&index.encode()), Some(index.clone()));
        assert_eq!(TimeIndex::decode(&[0; 13]), None);
    }

    #[test]
    #[should_panic(expected = "offset index must grow")]
    fn offset_index_rejects_going_backwards() {
        let mut index = OffsetIndex::default();
        index.push(5, 100);
        index.push(4, 200);
    }
}
