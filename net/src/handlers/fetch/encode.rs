//! The Fetch response, encoded without copying records.
//!
//! `kafka-protocol`'s encoder writes a partition's `records` (an `Option<Bytes>`) into the output
//! buffer, which would copy every fetched byte once more in user space, and one partition's batches
//! would first have to be concatenated into one `Bytes` (another copy). This encoder writes the same
//! bytes as the crate (the tests compare them for every version) but as a list of chunks: the small
//! fields go into a buffer, and each stored batch is appended as the `Bytes` the batch cache or the
//! direct read returned, shared, never copied. The connection hands the chunks to one vectored write.
//!
//! Layout (FetchResponse.json; flexible from v12): response header (correlation id; v12+ an empty tag
//! section), throttle_time_ms, v7+ error_code and session_id, then the topics (v0–12 by name, v13+ by
//! id), each with its partitions: index, error, high watermark, last stable offset, v5+ log start
//! offset, aborted transactions, v11+ preferred read replica, records, v12+ empty tag sections.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::frame::SIZE_PREFIX_BYTES;
use crate::response::EncodeError;

/// The whole response, ready to encode.
#[derive(Debug, Clone, Default)]
pub struct FetchAnswer {
    /// Top-level error (v7+).
    pub error_code: i16,
    /// The fetch session id (always 0: sessionless).
    pub session_id: i32,
    /// Topics in request order.
    pub topics: Vec<TopicAnswer>,
}

/// One topic of the response.
#[derive(Debug, Clone, Default)]
pub struct TopicAnswer {
    /// The name (v0–12).
    pub name: String,
    /// The id (v13+).
    pub topic_id: Uuid,
    /// Partitions in request order.
    pub partitions: Vec<PartitionAnswer>,
}

/// One partition of the response.
#[derive(Debug, Clone, Default)]
pub struct PartitionAnswer {
    /// The partition.
    pub index: i32,
    /// Its error code.
    pub error_code: i16,
    /// High watermark (-1 with an error).
    pub high_watermark: i64,
    /// Last stable offset (= high watermark: no transactions).
    pub last_stable_offset: i64,
    /// Log start offset (v5+; -1 with an error).
    pub log_start_offset: i64,
    /// `Some(empty)` for read_committed requests, `None` (null) otherwise, as Kafka answers.
    pub aborted_transactions: Option<()>,
    /// Stored batches, back to back.
    pub records: Vec<Bytes>,
}

/// First flexible version.
const FIRST_FLEXIBLE_VERSION: i16 = 12;

/// Small fields buffered, shared slices appended as they are.
struct Chunks {
    buffer: BytesMut,
    chunks: Vec<Bytes>,
    flexible: bool,
}

impl Chunks {
    fn share(&mut self, bytes: &Bytes) {
        if bytes.is_empty() {
            return;
        }
        if !self.buffer.is_empty() {
            self.chunks.push(self.buffer.split().freeze());
        }
        self.chunks.push(bytes.clone());
    }

    fn varint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.buffer.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.buffer.put_u8(value as u8);
    }

    /// An array or nullable-field length: compact (`n + 1`, 0 for null) or `i32` (-1 for null).
    fn length(&mut self, length: Option<usize>) -> Result<(), EncodeError> {
        let too_large = |size_bytes| EncodeError::FrameTooLarge { size_bytes };
        match (self.flexible, length) {
            (true, None) => self.varint(0),
            (true, Some(n)) => self.varint(u32::try_from(n + 1).map_err(|_| too_large(n))?),
            (false, None) => self.buffer.put_i32(-1),
            (false, Some(n)) => self.buffer.put_i32(i32::try_from(n).map_err(|_| too_large(n))?),
        }
        Ok(())
    }

    fn string(&mut self, text: &str) -> Result<(), EncodeError> {
        if self.flexible {
            self.length(Some(text.len()))?;
        } else {
            let length =
                i16::try_from(text.len()).map_err(|_| EncodeError::FrameTooLarge { size_bytes: text.len() })?;
            self.buffer.put_i16(length);
        }
        self.buffer.put_slice(text.as_bytes());
        Ok(())
    }

    fn no_tags(&mut self) {
        if self.flexible {
            self.buffer.put_u8(0);
        }
    }
}

/// The complete response frame (size prefix included) as chunks.
pub fn encode(version: i16, correlation_id: i32, answer: &FetchAnswer) -> Result<Vec<Bytes>, EncodeError> {
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let mut out = Chunks { buffer: BytesMut::with_capacity(256), chunks: Vec::new(), flexible };
    out.buffer.put_i32(0); // size prefix, filled in below
    out.buffer.put_i32(correlation_id);
    out.no_tags(); // response header v1 from the first flexible version
    out.buffer.put_i32(0); // throttle_time_ms
    if version >= 7 {
        out.buffer.put_i16(answer.error_code);
        out.buffer.put_i32(answer.session_id);
    }
    out.length(Some(answer.topics.len()))?;
    for topic in &answer.topics {
        if version <= 12 {
            out.string(&topic.name)?;
        } else {
            out.buffer.put_slice(topic.topic_id.as_bytes());
        }
        out.length(Some(topic.partitions.len()))?;
        for partition in &topic.partitions {
            out.buffer.put_i32(partition.index);
            out.buffer.put_i16(partition.error_code);
            out.buffer.put_i64(partition.high_watermark);
            out.buffer.put_i64(partition.last_stable_offset);
            if version >= 5 {
                out.buffer.put_i64(partition.log_start_offset);
            }
            out.length(partition.aborted_transactions.map(|()| 0))?;
            if version >= 11 {
                out.buffer.put_i32(-1); // preferred_read_replica
            }
            let records_bytes: usize = partition.records.iter().map(Bytes::len).sum();
            out.length(Some(records_bytes))?;
            for batch in &partition.records {
                out.share(batch);
            }
            out.no_tags();
        }
        out.no_tags();
    }
    out.no_tags();
    let Chunks { buffer, mut chunks, .. } = out;
    if !buffer.is_empty() {
        chunks.push(buffer.freeze());
    }
    let size_bytes: usize = chunks.iter().map(Bytes::len).sum::<usize>() - SIZE_PREFIX_BYTES;
    let size = i32::try_from(size_bytes).map_err(|_| EncodeError::FrameTooLarge { size_bytes })?;
    // The prefix is the first four bytes of the first chunk, which nothing else shares yet.
    let mut first = BytesMut::from(&chunks[0][..]);
    first[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    chunks[0] = first.freeze();
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiKey, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::response::encode_response;

    fn sample(read_committed: bool) -> FetchAnswer {
        let batch = |fill: u8, len: usize| Bytes::from(vec![fill; len]);
        let partition = |index, error_code, records: Vec<Bytes>| PartitionAnswer {
            index,
            error_code,
            high_watermark: 100 + i64::from(index),
            last_stable_offset: 100 + i64::from(index),
            log_start_offset: 3,
            aborted_transactions: read_committed.then_some(()),
            records,
        };
        FetchAnswer {
            error_code: 0,
            session_id: 0,
            topics: vec![
                TopicAnswer {
                    name: "orders".into(),
                    topic_id: Uuid::from_u128(42),
                    partitions: vec![
                        partition(0, 0, vec![batch(1, 70), batch(2, 300)]),
                        partition(1, 1, Vec::new()),
                        partition(2, 0, vec![batch(3, 200)]),
                    ],
                },
                TopicAnswer { name: "empty".into(), topic_id: Uuid::from_u128(43), partitions: Vec::new() },
            ],
        }
    }

    /// The same response built for the crate's encoder (records concatenated: the copy this module
    /// avoids).
    fn crate_response(version: i16, answer: &FetchAnswer) -> FetchResponse {
        let topics = answer
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let partition = PartitionData::default()
                            .with_partition_index(p.index)
                            .with_error_code(p.error_code)
                            .with_high_watermark(p.high_watermark)
                            .with_last_stable_offset(p.last_stable_offset)
                            .with_aborted_transactions(p.aborted_transactions.map(|()| Vec::new()))
                            .with_records(Some(Bytes::from(p.records.concat())));
                        if version >= 5 {
                            partition.with_log_start_offset(p.log_start_offset)
                        } else {
                            partition
                        }
                    })
                    .collect();
                let response = FetchableTopicResponse::default().with_partitions(partitions);
                if version <= 12 {
                    response.with_topic(TopicName(StrBytes::from_string(topic.name.clone())))
                } else {
                    response.with_topic_id(topic.topic_id)
                }
            })
            .collect();
        FetchResponse::default()
            .with_error_code(answer.error_code)
            .with_session_id(answer.session_id)
            .with_responses(topics)
    }

    #[test]
    fn matches_the_crate_byte_for_byte_at_every_version() {
        for version in 4..=16 {
            for read_committed in [false, true] {
                let answer = sample(read_committed);
                let chunks = encode(version, 77, &answer).unwrap();
                let mut expected = BytesMut::new();
                encode_response(&mut expected, ApiKey::Fetch, version, 77, &crate_response(version, &answer)).unwrap();
                assert_eq!(chunks.concat(), expected.to_vec(), "v{version} read_committed={read_committed}");
            }
        }
    }

    #[test]
    fn records_are_shared_not_copied() {
        let answer = sample(false);
        let chunks = encode(12, 1, &answer).unwrap();
        let stored = &answer.topics[0].partitions[0].records[1];
        assert!(
            chunks.iter().any(|chunk| chunk.as_ptr() == stored.as_ptr() && chunk.len() == stored.len()),
            "the 300-byte batch is sent from its own buffer"
        );
    }

    #[test]
    fn top_level_error_with_no_topics() {
        let answer = FetchAnswer { error_code: 70, session_id: 0, topics: Vec::new() };
        for version in 7..=16 {
            let mut expected = BytesMut::new();
            encode_response(&mut expected, ApiKey::Fetch, version, 5, &crate_response(version, &answer)).unwrap();
            assert_eq!(encode(version, 5, &answer).unwrap().concat(), expected.to_vec(), "v{version}");
        }
    }
}
