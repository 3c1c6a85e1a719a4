//! The records section of a compressed batch (the bytes after the 61-byte header), in Kafka's codecs.
//!
//! | codec  | on the wire |
//! |--------|-------------|
//! | gzip   | a gzip stream (RFC 1952); concatenated members are accepted, as Java's `GZIPInputStream` does |
//! | snappy | the Java client's xerial framing: magic `82 'SNAPPY' 00`, version i32, compatible-version i32, then repeated `[i32 length][raw snappy block]`; librdkafka may also write one raw snappy block, accepted when the magic is absent |
//! | lz4    | the LZ4 frame format (not the raw block format); header checksums must be correct, which they are for every magic 2 producer |
//! | zstd   | a zstd stream, decoded streaming because producers need not record the content size |
//!
//! Decompression is bounded: `max_output_bytes` is a hard cap on the inflated size and input that would inflate
//! past it is refused with `CorruptMessage`, so a small hostile batch (a decompression bomb) cannot make the broker
//! allocate without limit. Malformed input of any codec is also `CorruptMessage`; nothing here panics on input.
//!
//! The compressors write what the Java client writes, for the broker's own recompression: gzip at the default
//! level, snappy in xerial framing with 32 KiB blocks, lz4 frames with independent 64 KiB blocks, zstd at level 3.

use crate::batch::{BatchHeader, Compression, BATCH_HEADER_LEN};
use crate::error::ErrorCode;
use std::borrow::Cow;
use std::io::{Read, Write};

/// The xerial (snappy-java) stream magic, followed by the version and compatible-version ints.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = XERIAL_MAGIC.len() + 8;
/// snappy-java's default block size (`SnappyOutputStream.DEFAULT_BLOCK_SIZE`).
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;
const ZSTD_LEVEL: i32 = 3;

/// Inflates a batch's records section. `Compression::None` returns a copy. Errors: `CorruptMessage` for
/// malformed input or output beyond `max_output_bytes` (the cap is hard: the output never grows past it).
pub fn decompress_records(
    compression: Compression,
    compressed: &[u8],
    max_output_bytes: usize,
) -> Result<Vec<u8>, ErrorCode> {
    if compression == Compression::None {
        return if compressed.len() <= max_output_bytes {
            Ok(compressed.to_vec())
        } else {
            Err(ErrorCode::CorruptMessage)
        };
    }
    // Every compressor writes at least a header, so nothing at all is not a valid stream of any codec.
    if compressed.is_empty() {
        return Err(ErrorCode::CorruptMessage);
    }
    match compression {
        Compression::None => unreachable!("handled above"),
        Compression::Gzip => read_capped(flate2::read::MultiGzDecoder::new(compressed), max_output_bytes),
        Compression::Snappy => snappy_decompress(compressed, max_output_bytes),
        Compression::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(compressed), max_output_bytes),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(compressed).map_err(|_| ErrorCode::CorruptMessage)?;
            read_capped(decoder, max_output_bytes)
        }
    }
}

/// The uncompressed records section of a whole batch (`batch` starts at its base offset): borrowed for
/// uncompressed batches, inflated (within `max_output_bytes`) otherwise. `UnsupportedCompressionType` for the
/// reserved codec values.
pub fn batch_records<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
    max_output_bytes: usize,
) -> Result<Cow<'a, [u8]>, ErrorCode> {
    let body = batch.get(BATCH_HEADER_LEN..).ok_or(ErrorCode::CorruptMessage)?;
    match header.compression() {
        None => Err(ErrorCode::UnsupportedCompressionType),
        Some(Compression::None) => Ok(Cow::Borrowed(body)),
        Some(codec) => decompress_records(codec, body, max_output_bytes).map(Cow::Owned),
    }
}

/// Compresses a records section as the Java producer would. `Compression::None` returns a copy.
pub fn compress_records(compression: Compression, raw: &[u8]) -> Result<Vec<u8>, ErrorCode> {
    compress_records_at(compression, raw, None)
}

/// Like [`compress_records`], at `level` (Kafka's `compression.<codec>.level`; `None`: the codec's
/// default). gzip takes 1–9, lz4 1–17 (3 and up is LZ4HC, as in Kafka's Java codec; written with
/// liblz4, since lz4_flex has no high-compression mode) and zstd its own range; snappy has none.
pub fn compress_records_at(compression: Compression, raw: &[u8], level: Option<i32>) -> Result<Vec<u8>, ErrorCode> {
    let failed = |_| ErrorCode::UnknownServerError;
    match compression {
        Compression::None => Ok(raw.to_vec()),
        Compression::Gzip => {
            let gzip_level = match level {
                Some(level @ 1..=9) => flate2::Compression::new(level as u32),
                _ => flate2::Compression::default(),
            };
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), gzip_level);
            encoder.write_all(raw).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
        Compression::Snappy => snappy_compress_xerial(raw),
        Compression::Lz4 if level.is_some() => lz4_compress_at(raw, level.unwrap_or(LZ4_LEVEL)),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(raw).map_err(failed)?;
            encoder.finish().map_err(|_| ErrorCode::UnknownServerError)
        }
        Compression::Zstd => zstd::stream::encode_all(raw, level.unwrap_or(ZSTD_LEVEL)).map_err(failed),
    }
}

/// Kafka's `compression.lz4.level` default.
const LZ4_LEVEL: i32 = 9;

/// An LZ4 frame as Kafka writes one (64 KiB independent blocks, no checksums but the header's) at `level`.
fn lz4_compress_at(raw: &[u8], level: i32) -> Result<Vec<u8>, ErrorCode> {
    let failed = |_| ErrorCode::UnknownServerError;
    let mut encoder = lz4::EncoderBuilder::new()
        .block_size(lz4::BlockSize::Max64KB)
        .block_mode(lz4::BlockMode::Independent)
        .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
        .checksum(lz4::ContentChecksum::NoChecksum)
        .level(u32::try_from(level.clamp(1, 17)).unwrap_or(9))
        .build(Vec::with_capacity(raw.len() / 2 + 64))
        .map_err(failed)?;
    encoder.write_all(raw).map_err(failed)?;
    let (out, finished) = encoder.finish();
    finished.map_err(failed)?;
    Ok(out)
}

/// Reads `reader` to its end, refusing more than `max` bytes (it reads at most one byte past the cap).
fn read_capped(reader: impl Read, max: usize) -> Result<Vec<u8>, ErrorCode> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut out).map_err(|_| ErrorCode::CorruptMessage)?;
    if out.len() > max {
        return Err(ErrorCode::CorruptMessage);
    }
    Ok(out)
}

fn snappy_decompress(compressed: &[u8], max: usize) -> Result<Vec<u8>, ErrorCode> {
    let mut out = Vec::new();
    if compressed.len() >= XERIAL_HEADER_LEN && compressed[..XERIAL_MAGIC.len()] == XERIAL_MAGIC {
        // Version and compatible version are not checked, as snappy-java and librdkafka do not check them.
        let mut rest = &compressed[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else { return Err(ErrorCode::CorruptMessage) };
            let len = usize::try_from(i32::from_be_bytes(*len)).map_err(|_| ErrorCode::CorruptMessage)?;
            if len > tail.len() {
                return Err(ErrorCode::CorruptMessage);
            }
            let (block, tail) = tail.split_at(len);
            snappy_block(block, &mut out, max)?;
            rest = tail;
        }
    } else {
        snappy_block(compressed, &mut out, max)?;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its declared length against the cap before allocating.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), ErrorCode> {
    let len = snap::raw::decompress_len(block).map_err(|_| ErrorCode::CorruptMessage)?;
    if len > max.saturating_sub(out.len()) {
        return Err(ErrorCode::CorruptMessage);
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written =
        snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|_| ErrorCode::CorruptMessage)?;
    if written != len {
        return Err(ErrorCode::CorruptMessage);
    }
    Ok(())
}

fn snappy_compress_xerial(raw: &[u8]) -> Result<Vec<u8>, ErrorCode> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + snap::raw::max_compress_len(raw.len().min(XERIAL_BLOCK_SIZE)));
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes()); // version
    out.extend_from_slice(&1i32.to_be_bytes()); // compatible version
    let mut encoder = snap::raw::Encoder::new();
    for chunk in raw.chunks(XERIAL_BLOCK_SIZE) {
        let block = encoder.compress_vec(chunk).map_err(|_| ErrorCode::UnknownServerError)?;
        let len = i32::try_from(block.len()).map_err(|_| ErrorCode::UnknownServerError)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "compression_tests.rs"]
mod tests;
