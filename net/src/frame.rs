//! Bounded framing: a Kafka frame is a big-endian `i32` size followed by that many bytes.
//!
//! The size prefix is checked on its own, before the caller reserves or allocates anything for
//! the body, so a client cannot make the broker allocate more than `max_frame_bytes`
//! (Kafka's `socket.request.max.bytes`) by lying about a frame's length.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes in the size prefix that starts every frame.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 104_857_600;

/// Why a frame was refused. Either one ends the connection: after a bad prefix the stream has
/// no trustworthy frame boundary left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The prefix announced more bytes (`size`) than the limit (`max`), both in bytes.
    TooLarge {
        /// Announced body size, in bytes.
        size: usize,
        /// The configured limit, in bytes.
        max: usize,
    },
    /// The prefix was negative.
    NegativeSize(i32),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds the {max}-byte limit")
            }
            FrameError::NegativeSize(size) => write!(f, "frame size prefix is negative ({size})"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits complete frames off a connection's read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames whose body is larger than `max_frame_bytes`.
    ///
    /// # Panics
    /// If `max_frame_bytes` does not fit the protocol's `i32` size prefix: that is a
    /// configuration bug, caught at startup.
    pub fn new(max_frame_bytes: usize) -> Self {
        assert!(
            i32::try_from(max_frame_bytes).is_ok(),
            "max_frame_bytes {max_frame_bytes} does not fit an i32 size prefix"
        );
        Self { max_frame_bytes }
    }

    /// The largest frame body accepted, in bytes.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Splits one complete frame body (without its size prefix) off the front of `buf`.
    ///
    /// Returns `Ok(None)` while the frame is incomplete, leaving `buf` untouched. The frame
    /// shares `buf`'s allocation (no copy). On `Err` nothing is consumed; the caller must close
    /// the connection.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(size_bytes) = self.body_size(buf)? else {
            return Ok(None);
        };
        if buf.len() - SIZE_PREFIX_BYTES < size_bytes {
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_BYTES);
        Ok(Some(buf.split_to(size_bytes).freeze()))
    }

    /// How many more bytes `buf` needs before [`decode`](Self::decode) can return the frame at
    /// its front; `0` when that frame is complete.
    ///
    /// Until the prefix is whole this asks only for the rest of the prefix, so the answer is
    /// never more than `max_frame_bytes`. Reserving it admits a frame the client has only
    /// announced: the caller should charge its memory budget first.
    pub fn bytes_needed(&self, buf: &[u8]) -> Result<usize, FrameError> {
        match self.body_size(buf)? {
            None => Ok(SIZE_PREFIX_BYTES - buf.len()),
            Some(size_bytes) => Ok((SIZE_PREFIX_BYTES + size_bytes).saturating_sub(buf.len())),
        }
    }

    /// The body size from the prefix at the front of `buf`, validated; `None` if the prefix is
    /// not all there yet.
    pub fn body_size(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buf.first_chunk::<SIZE_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let size = i32::from_be_bytes(*prefix);
        let Ok(size_bytes) = usize::try_from(size) else {
            return Err(FrameError::NegativeSize(size));
        };
        if size_bytes > self.max_frame_bytes {
            return Err(FrameError::TooLarge { size: size_bytes, max: self.max_frame_bytes });
        }
        Ok(Some(size_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_one_frame_and_keeps_the_rest() {
        let decoder = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 0xaa, 0xbb, 0xcc, 0, 0][..]);
        let frame = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&frame[..], &[0xaa, 0xbb, 0xcc]);
        assert_eq!(&buf[..], &[0, 0]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(decoder.bytes_needed(&buf).unwrap(), 2);
    }

    #[test]
    fn frame_shares_the_read_buffer_allocation() {
        let decoder = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 7, 8][..]);
        let body_ptr = buf[SIZE_PREFIX_BYTES..].as_ptr();
        let frame = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.as_ptr(), body_ptr);
    }

    #[test]
    fn incomplete_frame_is_left_alone_byte_by_byte() {
        let decoder = FrameDecoder::new(64);
        let wire = [0u8, 0, 0, 5, 1, 2, 3, 4, 5];
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            let needed = decoder.bytes_needed(&buf).unwrap();
            if i < SIZE_PREFIX_BYTES {
                assert_eq!(needed, SIZE_PREFIX_BYTES - i);
            } else {
                assert_eq!(needed, wire.len() - i);
            }
            assert_eq!(decoder.decode(&mut buf).unwrap(), None);
            assert_eq!(buf.len(), i, "an incomplete frame must not be consumed");
            buf.extend_from_slice(&[*byte]);
        }
        assert_eq!(decoder.bytes_needed(&buf).unwrap(), 0);
        let frame = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, 3, 4, 5]);
        assert!(buf.is_empty());
    }

    #[test]
    fn zero_size_frame_is_an_empty_body() {
        let decoder = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Bytes::new()));
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_frame_is_refused_from_the_prefix_alone() {
        let decoder = FrameDecoder::new(100);
        // 101 bytes announced, none of the body sent.
        let mut buf = BytesMut::with_capacity(SIZE_PREFIX_BYTES);
        buf.extend_from_slice(&[0x00, 0x00, 0x00, 0x65]);
        let capacity_before = buf.capacity();
        let expected = FrameError::TooLarge { size: 101, max: 100 };
        assert_eq!(decoder.bytes_needed(&buf), Err(expected));
        assert_eq!(decoder.decode(&mut buf), Err(expected));
        assert_eq!(buf.capacity(), capacity_before, "nothing reserved for the body");
        assert_eq!(&buf[..], &[0x00, 0x00, 0x00, 0x65], "nothing consumed");
    }

    #[test]
    fn frame_of_exactly_max_is_accepted() {
        let decoder = FrameDecoder::new(3);
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3][..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().as_deref(), Some(&[1, 2, 3][..]));
    }

    #[test]
    fn i32_max_announcement_is_refused_under_the_default_limit() {
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(FrameError::TooLarge { size: i32::MAX as usize, max: DEFAULT_MAX_FRAME_BYTES })
        );
    }

    #[test]
    fn negative_size_is_refused() {
        let decoder = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0x00][..]);
        assert_eq!(decoder.decode(&mut buf), Err(FrameError::NegativeSize(-1)));
        let mut buf = BytesMut::from(&[0x80, 0x00, 0x00, 0x00][..]);
        assert_eq!(decoder.bytes_needed(&buf), Err(FrameError::NegativeSize(i32::MIN)));
        assert_eq!(decoder.decode(&mut buf), Err(FrameError::NegativeSize(i32::MIN)));
    }

    #[test]
    #[should_panic(expected = "does not fit an i32")]
    fn limit_beyond_i32_is_a_configuration_bug() {
        let _ = FrameDecoder::new(i32::MAX as usize + 1);
    }
}
