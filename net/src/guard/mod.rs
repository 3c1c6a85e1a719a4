//! Cheap checks on a request body before `kafka-protocol` decodes it.
//!
//! The crate's array decoders call `Vec::with_capacity(n)` with the element count the client sent,
//! before reading a single element: a 4-byte body claiming 2^31 - 1 entries asks the allocator for
//! tens of gigabytes, which aborts the process. Every element takes at least one byte of the body (for
//! most element types, more), so a count larger than `remaining bytes / minimum element size` is a lie
//! that can be refused from the prefix alone. Handlers call [`check_array_prefix`] on each array
//! they let the crate decode, at the array's position in the body, before decoding.
//!
//! With the check, the crate's up-front allocation is at most the body size times
//! `size_of::<Element>() / min_element_bytes`: bounded by the frame limit, no longer by the client's
//! claim.
//!
//! Requests with nested arrays (Produce, Fetch, ListOffsets, CreateTopics) are checked whole by
//! [`walk::check_body`], which walks every field against the request's layout in [`schemas`] and
//! checks every array prefix at every depth.

use std::fmt;

pub mod schemas;
pub mod walk;

pub use walk::{check_body, BodyError, Schema};

/// An array length prefix that cannot be true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayTooLong {
    /// Elements claimed.
    pub count: u64,
    /// Bytes left in the body after the prefix.
    pub remaining_bytes: usize,
    /// The least an element of this array can take, in bytes.
    pub min_element_bytes: usize,
}

impl fmt::Display for ArrayTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "array claims {} elements of at least {} bytes but only {} bytes remain",
            self.count, self.min_element_bytes, self.remaining_bytes
        )
    }
}

impl std::error::Error for ArrayTooLong {}

/// Checks the array length prefix at the front of `buf`: an `i32` count, or for `compact` (flexible
/// versions) an unsigned varint holding count + 1. A null array (-1, or compact 0) and a prefix that is
/// cut short pass: they allocate nothing, and the decoder reports truncation itself. The varint is
/// read the way the crate reads it ([`read_unsigned_varint`]), not the way Kafka would.
///
/// # Panics
/// If `min_element_bytes` is 0: every array element occupies at least one byte.
pub fn check_array_prefix(buf: &[u8], compact: bool, min_element_bytes: usize) -> Result<(), ArrayTooLong> {
    assert!(min_element_bytes > 0, "array elements take at least one byte");
    let (count, prefix_bytes) = if compact {
        match read_unsigned_varint(buf) {
            Some((0, _)) | None => return Ok(()),
            Some((encoded, prefix_bytes)) => (u64::from(encoded) - 1, prefix_bytes),
        }
    } else {
        match buf.first_chunk::<4>().map(|prefix| i32::from_be_bytes(*prefix)) {
            Some(count) if count >= 0 => (count as u64, 4),
            _ => return Ok(()),
        }
    };
    let remaining_bytes = buf.len() - prefix_bytes;
    if count > (remaining_bytes / min_element_bytes) as u64 {
        return Err(ArrayTooLong { count, remaining_bytes, min_element_bytes });
    }
    Ok(())
}

/// An unsigned varint exactly as `kafka-protocol` 0.18 reads it, and how many bytes it took: at most
/// five bytes, the fifth read whatever its continuation bit, bits beyond 32 dropped. (Kafka itself
/// rejects such varints; the crate does not, so the check must see the count the crate will use.)
/// `None` if `buf` ends inside it.
pub fn read_unsigned_varint(buf: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (index, byte) in buf.iter().take(5).enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 || index == 4 {
            return Some((value, index + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_counts_are_refused_from_the_prefix() {
        let error = check_array_prefix(&[0x7f, 0xff, 0xff, 0xff], false, 1).unwrap_err();
        assert_eq!(error, ArrayTooLong { count: i32::MAX as u64, remaining_bytes: 0, min_element_bytes: 1 });
        // Compact: 0xffffffff - 1 elements claimed, in a varint Kafka would reject but the crate reads.
        assert!(check_array_prefix(&[0xff, 0xff, 0xff, 0xff, 0x0f], true, 1).is_err());
        assert!(check_array_prefix(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], true, 1).is_err());
        // 3 elements of at least 2 bytes need 6 bytes.
        assert!(check_array_prefix(&[0, 0, 0, 3, 0, 0, 0, 0, 0], false, 2).is_err());
        assert!(check_array_prefix(&[4, 0, 0, 0, 0, 0], true, 2).is_err());
    }

    #[test]
    fn plausible_null_and_truncated_prefixes_pass() {
        assert!(check_array_prefix(&[0, 0, 0, 3, 0, 0, 0, 0, 0, 0], false, 2).is_ok());
        assert!(check_array_prefix(&[0xff, 0xff, 0xff, 0xff], false, 2).is_ok(), "null");
        assert!(check_array_prefix(&[0x00], true, 2).is_ok(), "compact null");
        assert!(check_array_prefix(&[0x01], true, 2).is_ok(), "compact empty");
        assert!(check_array_prefix(&[0, 0], false, 2).is_ok(), "truncated prefix");
        assert!(check_array_prefix(&[0x80, 0x80], true, 2).is_ok(), "truncated varint");
        assert!(check_array_prefix(&[], true, 1).is_ok());
    }

    #[test]
    fn varints_decode_like_kafka() {
        assert_eq!(read_unsigned_varint(&[0x00]), Some((0, 1)));
        assert_eq!(read_unsigned_varint(&[0x7f, 0xaa]), Some((127, 1)));
        assert_eq!(read_unsigned_varint(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(read_unsigned_varint(&[0xff, 0xff, 0xff, 0xff, 0x0f]), Some((u32::MAX, 5)));
        // What the crate makes of varints Kafka would reject: high bits dropped, five bytes at most.
        assert_eq!(read_unsigned_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]), Some((u32::MAX, 5)));
        assert_eq!(read_unsigned_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), Some((u32::MAX, 5)));
        assert_eq!(read_unsigned_varint(&[0x80, 0x80, 0x80, 0x80, 0x80]), Some((0, 5)));
        assert_eq!(read_unsigned_varint(&[0x80, 0x80, 0x80, 0x80]), None, "cut short");
    }
}
