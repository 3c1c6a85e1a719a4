use super::*;
use crate::batch::{build_batch, compute_crc, BatchOptions};
use crate::record::{RecordIter, RecordSpec};
use proptest::prelude::*;

const CAP: usize = 1 << 20;
const CODECS: [Compression; 4] = [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Mixed text and noise, long enough to span several snappy (32 KiB) and lz4 (64 KiB) blocks.
fn sample(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|i| {
            if (i / 1000) % 2 == 0 {
                b"spate-kafka-"[i % 12]
            } else {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            }
        })
        .collect()
}

// Vectors written by the reference tools (Python's gzip with mtime 0, the lz4 and zstd CLIs reading stdin, so the
// zstd frame carries no content size), each of "hello kafka".
#[test]
fn decodes_vectors_from_reference_implementations() {
    let gzip = hex("1f8b0800000000000203cb48cdc9c957c84e4ccb4e0400d175816c0b000000");
    let lz4 = hex("04224d186440a70b00008068656c6c6f206b61666b61000000008411881b");
    let zstd = hex("28b52ffd045859000068656c6c6f206b61666b617cc9a62d");
    assert_eq!(decompress_records(Compression::Gzip, &gzip, CAP).unwrap(), b"hello kafka");
    assert_eq!(decompress_records(Compression::Lz4, &lz4, CAP).unwrap(), b"hello kafka");
    assert_eq!(decompress_records(Compression::Zstd, &zstd, CAP).unwrap(), b"hello kafka");
    // Concatenated gzip members read as one stream, as GZIPInputStream reads them.
    let twice = [gzip.as_slice(), gzip.as_slice()].concat();
    assert_eq!(decompress_records(Compression::Gzip, &twice, CAP).unwrap(), b"hello kafkahello kafka");
}

#[test]
fn decodes_a_hand_built_xerial_snappy_stream_and_a_raw_block() {
    // A raw snappy block for "hello": uncompressed length varint 5, then a literal tag ((5 - 1) << 2) and the bytes.
    let hello = [0x05, 0x10, b'h', b'e', b'l', b'l', b'o'];
    let world = [0x05, 0x10, b'w', b'o', b'r', b'l', b'd'];
    let mut xerial = vec![0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0x00];
    xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]); // version 1, compatible version 1
    xerial.extend_from_slice(&[0, 0, 0, 7]);
    xerial.extend_from_slice(&hello);
    xerial.extend_from_slice(&[0, 0, 0, 7]);
    xerial.extend_from_slice(&world);
    assert_eq!(decompress_records(Compression::Snappy, &xerial, CAP).unwrap(), b"helloworld");
    // librdkafka's raw form: one block, no framing.
    assert_eq!(decompress_records(Compression::Snappy, &hello, CAP).unwrap(), b"hello");
    // The compressor writes exactly this framing.
    let ours = compress_records(Compression::Snappy, b"hello").unwrap();
    assert_eq!(&ours[..16], &xerial[..16]);
    assert_eq!(decompress_records(Compression::Snappy, &ours, CAP).unwrap(), b"hello");
    // A block length running past the end, or negative, is corrupt.
    let mut truncated = xerial.clone();
    truncated.truncate(xerial.len() - 1);
    assert_eq!(decompress_records(Compression::Snappy, &truncated, CAP), Err(ErrorCode::CorruptMessage));
    let mut negative = xerial[..16].to_vec();
    negative.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(decompress_records(Compression::Snappy, &negative, CAP), Err(ErrorCode::CorruptMessage));
}

#[test]
fn streams_encoded_by_the_codec_crates_decode() {
    let raw = sample(200_000);
    let gzip = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let raw_snappy = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let lz4 = {
        // Default frame settings (4 MiB linked blocks), unlike what compress_records writes.
        let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let zstd = {
        // Streaming encoder without a pledged size: the frame has no content size, as some producers write it.
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        e.include_contentsize(false).unwrap();
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    assert_eq!(decompress_records(Compression::Gzip, &gzip, CAP).unwrap(), raw);
    assert_eq!(decompress_records(Compression::Snappy, &raw_snappy, CAP).unwrap(), raw);
    assert_eq!(decompress_records(Compression::Lz4, &lz4, CAP).unwrap(), raw);
    assert_eq!(decompress_records(Compression::Zstd, &zstd, CAP).unwrap(), raw);
}

#[test]
fn compressors_round_trip_and_write_kafka_framing() {
    for len in [0, 1, 100, 32 * 1024, 32 * 1024 + 1, 64 * 1024 + 7, 300_000] {
        let raw = sample(len);
        for codec in CODECS {
            let compressed = compress_records(codec, &raw).unwrap();
            assert_eq!(decompress_records(codec, &compressed, CAP).unwrap(), raw, "{codec:?} {len}");
        }
    }
    let raw = sample(100_000);
    // Snappy: xerial header, then 32 KiB input blocks.
    let snappy = compress_records(Compression::Snappy, &raw).unwrap();
    assert_eq!(snappy[..8], XERIAL_MAGIC);
    let first_len = i32::from_be_bytes(snappy[16..20].try_into().unwrap()) as usize;
    assert_eq!(snap::raw::decompress_len(&snappy[20..20 + first_len]).unwrap(), 32 * 1024);
    // Lz4: frame magic, FLG version 01 with independent blocks, BD for 64 KiB blocks.
    let lz4 = compress_records(Compression::Lz4, &raw).unwrap();
    assert_eq!(lz4[..4], [0x04, 0x22, 0x4d, 0x18]);
    assert_eq!(lz4[4] & 0xe0, 0x60);
    assert_eq!(lz4[5], 0x40);
    assert_eq!(compress_records(Compression::Gzip, b"x").unwrap()[..2], [0x1f, 0x8b]);
    assert_eq!(compress_records(Compression::Zstd, b"x").unwrap()[..4], [0x28, 0xb5, 0x2f, 0xfd]);
    assert_eq!(compress_records(Compression::None, b"x").unwrap(), b"x");
}

#[test]
fn the_output_cap_is_hard_for_every_codec() {
    let bomb = vec![0u8; 4 << 20];
    for codec in CODECS {
        let compressed = compress_records(codec, &bomb).unwrap();
        assert!(compressed.len() < 300 * 1024, "{codec:?} compresses zeros well");
        assert_eq!(decompress_records(codec, &compressed, (4 << 20) - 1), Err(ErrorCode::CorruptMessage), "{codec:?}");
        assert_eq!(decompress_records(codec, &compressed, 1024), Err(ErrorCode::CorruptMessage), "{codec:?}");
        assert_eq!(decompress_records(codec, &compressed, 4 << 20).unwrap().len(), 4 << 20, "{codec:?}");
    }
    // A raw snappy block declaring a huge length is refused before anything is allocated.
    let mut huge = Vec::new();
    crate::varint::write_varint(&mut huge, i32::MAX);
    huge.push(0x00);
    assert_eq!(decompress_records(Compression::Snappy, &huge, CAP), Err(ErrorCode::CorruptMessage));
    assert_eq!(decompress_records(Compression::None, b"abc", 2), Err(ErrorCode::CorruptMessage));
    assert_eq!(decompress_records(Compression::None, b"abc", 3).unwrap(), b"abc");
}

#[test]
fn empty_and_truncated_streams_are_corrupt() {
    let raw = sample(50_000);
    for codec in CODECS {
        assert_eq!(decompress_records(codec, &[], CAP), Err(ErrorCode::CorruptMessage), "{codec:?}");
        let compressed = compress_records(codec, &raw).unwrap();
        let cut = &compressed[..compressed.len() / 2];
        assert_eq!(decompress_records(codec, cut, CAP), Err(ErrorCode::CorruptMessage), "{codec:?}");
    }
}

#[test]
fn batch_records_inflates_a_compressed_batch_body() {
    let specs: Vec<RecordSpec<'_>> =
        (0..5).map(|i| RecordSpec { key: None, value: Some(b"value"), headers: &[], timestamp_ms: 1000 + i }).collect();
    let plain = build_batch(&specs, BatchOptions::default());
    let header = BatchHeader::parse(&plain).unwrap();
    assert!(matches!(batch_records(&header, &plain, CAP).unwrap(), Cow::Borrowed(_)));
    for codec in CODECS {
        let mut batch = plain[..BATCH_HEADER_LEN].to_vec();
        batch.extend_from_slice(&compress_records(codec, &plain[BATCH_HEADER_LEN..]).unwrap());
        batch[21..23].copy_from_slice(&(codec as i16).to_be_bytes());
        let batch_length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let header = crate::BatchView::check_stored(&batch).unwrap().header;
        assert_eq!(header.compression(), Some(codec));
        let body = batch_records(&header, &batch, CAP).unwrap();
        let deltas: Vec<i64> = RecordIter::new(&body).map(|r| r.unwrap().timestamp_delta).collect();
        assert_eq!(deltas, [0, 1, 2, 3, 4], "{codec:?}");
    }
    let mut reserved = plain.clone();
    reserved[21..23].copy_from_slice(&5i16.to_be_bytes());
    let header = BatchHeader::parse(&reserved).unwrap();
    assert_eq!(batch_records(&header, &reserved, CAP), Err(ErrorCode::UnsupportedCompressionType));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes, and valid streams with bytes flipped, never panic and never exceed the cap.
    #[test]
    fn garbage_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..512), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for codec in CODECS {
            if let Ok(out) = decompress_records(codec, &garbage, 4096) {
                prop_assert!(out.len() <= 4096);
            }
            // Behind a valid codec header, too, so the decoders get past their magic checks.
            let mut damaged = compress_records(codec, &raw).unwrap();
            for &(at, xor) in &flips {
                let len = damaged.len();
                damaged[at % len] ^= xor;
            }
            if let Ok(out) = decompress_records(codec, &damaged, 4096) {
                prop_assert!(out.len() <= 4096);
            }
            let mut framed = compress_records(codec, &[]).unwrap();
            framed.truncate(framed.len().min(16));
            framed.extend_from_slice(&garbage);
            let _ = decompress_records(codec, &framed, 4096);
        }
    }
}
