//! A structural pre-pass over a request body: walks every field of the message as `kafka-protocol`
//! will read it, and refuses the body if any array (at any depth) claims more elements than the bytes
//! left could hold, or if the body ends early. A body that passes has every array length backed by
//! real elements, so the crate's `Vec::with_capacity(count)` allocates for elements that exist.
//!
//! Each API describes its request as a [`Schema`] (`super::schemas`): fields in wire order, each with
//! the versions that carry it. From the schema's first flexible version on, strings, byte arrays and
//! arrays use compact (varint) lengths and every structure ends with a tagged-field section, exactly
//! as in the generated decoders. Varints are read the crate's way ([`super::read_unsigned_varint`]).
//!
//! Tagged fields are skipped by their declared size. The crate decodes the few tags it knows by type
//! instead; in the requests walked here none of those carries an array, so a tag whose size lies
//! cannot smuggle an unchecked array past this walk.

use std::fmt;

use super::read_unsigned_varint;

/// What one field is on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// 1 byte (also booleans).
    I8,
    /// 2 bytes.
    I16,
    /// 4 bytes.
    I32,
    /// 8 bytes.
    I64,
    /// 16 bytes.
    Uuid,
    /// A string, nullable or not (the crate refuses a null where none is allowed; the walk does not
    /// need to).
    Str,
    /// A nullable byte array (records).
    Bytes,
    /// An array of `i32`.
    Int32Array,
    /// An array of strings (nullable or not).
    StrArray,
    /// An array of structures with these fields.
    Array(&'static [Field]),
}

/// One field of a request structure.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The field's name, for error messages.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// First version that carries it.
    pub min_version: i16,
    /// Last version that carries it.
    pub max_version: i16,
}

/// A field present from `min_version` on.
pub const fn since(name: &'static str, kind: Kind, min_version: i16) -> Field {
    Field { name, kind, min_version, max_version: i16::MAX }
}

/// A field present in every version.
pub const fn always(name: &'static str, kind: Kind) -> Field {
    since(name, kind, 0)
}

/// A field present in `min_version..=max_version`.
pub const fn between(name: &'static str, kind: Kind, min_version: i16, max_version: i16) -> Field {
    Field { name, kind, min_version, max_version }
}

/// A request body's layout.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The top-level fields.
    pub fields: &'static [Field],
    /// The first flexible version (compact lengths and tagged fields).
    pub first_flexible_version: i16,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// An array claims more elements than the remaining bytes could hold.
    ArrayTooLong {
        /// The array field.
        field: &'static str,
        /// Elements claimed.
        count: u64,
        /// Bytes left after the length prefix.
        remaining_bytes: usize,
        /// The least an element takes.
        min_element_bytes: usize,
    },
    /// The body ends inside this field.
    Truncated {
        /// The field.
        field: &'static str,
    },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::ArrayTooLong { field, count, remaining_bytes, min_element_bytes } => write!(
                f,
                "{field}: array claims {count} elements of at least {min_element_bytes} bytes but only \
                 {remaining_bytes} bytes remain"
            ),
            BodyError::Truncated { field } => write!(f, "the body ends inside {field}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Walks `body` as `schema` at `version`. Returns how many bytes the message takes (trailing bytes
/// are allowed, as Kafka's parsers allow them).
pub fn check_body(schema: &Schema, version: i16, body: &[u8]) -> Result<usize, BodyError> {
    let mut walker = Walker { buf: body, flexible: version >= schema.first_flexible_version, version };
    walker.structure(schema.fields, "request")?;
    Ok(body.len() - walker.buf.len())
}

struct Walker<'a> {
    buf: &'a [u8],
    flexible: bool,
    version: i16,
}

impl Walker<'_> {
    fn skip(&mut self, bytes: usize, field: &'static str) -> Result<(), BodyError> {
        if self.buf.len() < bytes {
            return Err(BodyError::Truncated { field });
        }
        self.buf = &self.buf[bytes..];
        Ok(())
    }

    fn varint(&mut self, field: &'static str) -> Result<u32, BodyError> {
        let (value, bytes) = read_unsigned_varint(self.buf).ok_or(BodyError::Truncated { field })?;
        self.buf = &self.buf[bytes..];
        Ok(value)
    }

    fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BodyError> {
        let bytes = self.buf.first_chunk::<N>().copied().ok_or(BodyError::Truncated { field })?;
        self.buf = &self.buf[N..];
        Ok(bytes)
    }

    /// A length prefix: `None` for null. Compact lengths are stored plus one.
    fn length(&mut self, field: &'static str, wide: bool) -> Result<Option<u64>, BodyError> {
        if self.flexible {
            return Ok(match self.varint(field)? {
                0 => None,
                encoded => Some(u64::from(encoded) - 1),
            });
        }
        let length = if wide {
            i64::from(i32::from_be_bytes(self.fixed::<4>(field)?))
        } else {
            i64::from(i16::from_be_bytes(self.fixed::<2>(field)?))
        };
        Ok(u64::try_from(length).ok())
    }

    fn count(&mut self, field: &'static str, min_element_bytes: usize) -> Result<u64, BodyError> {
        let Some(count) = self.length(field, true)? else { return Ok(0) };
        let remaining_bytes = self.buf.len();
        if count > (remaining_bytes / min_element_bytes) as u64 {
            return Err(BodyError::ArrayTooLong { field, count, remaining_bytes, min_element_bytes });
        }
        Ok(count)
    }

    fn structure(&mut self, fields: &'static [Field], name: &'static str) -> Result<(), BodyError> {
        let version = self.version;
        for field in fields.iter().filter(|field| field.min_version <= version && version <= field.max_version) {
            self.field(field)?;
        }
        if self.flexible {
            self.tagged_fields(name)?;
        }
        Ok(())
    }

    fn field(&mut self, field: &Field) -> Result<(), BodyError> {
        let name = field.name;
        match field.kind {
            Kind::I8 => self.skip(1, name),
            Kind::I16 => self.skip(2, name),
            Kind::I32 => self.skip(4, name),
            Kind::I64 => self.skip(8, name),
            Kind::Uuid => self.skip(16, name),
            Kind::Str => match self.length(name, false)? {
                Some(length) => self.skip(usize::try_from(length).unwrap_or(usize::MAX), name),
                None => Ok(()),
            },
            Kind::Bytes => match self.length(name, true)? {
                Some(length) => self.skip(usize::try_from(length).unwrap_or(usize::MAX), name),
                None => Ok(()),
            },
            Kind::Int32Array => {
                let count = self.count(name, 4)?;
                self.skip(count as usize * 4, name)
            }
            Kind::StrArray => {
                let count = self.count(name, if self.flexible { 1 } else { 2 })?;
                for _ in 0..count {
                    self.field(&Field { kind: Kind::Str, ..*field })?;
                }
                Ok(())
            }
            Kind::Array(fields) => {
                let min_element_bytes = if self.flexible { 1 } else { 1.max(min_fixed_bytes(fields, self.version)) };
                let count = self.count(name, min_element_bytes)?;
                for _ in 0..count {
                    self.structure(fields, name)?;
                }
                Ok(())
            }
        }
    }

    fn tagged_fields(&mut self, name: &'static str) -> Result<(), BodyError> {
        let count = self.varint(name)?;
        // Each tagged field takes at least two bytes (tag and size).
        if u64::from(count) > (self.buf.len() / 2) as u64 {
            return Err(BodyError::ArrayTooLong {
                field: name,
                count: u64::from(count),
                remaining_bytes: self.buf.len(),
                min_element_bytes: 2,
            });
        }
        for _ in 0..count {
            self.varint(name)?;
            let size = self.varint(name)?;
            self.skip(size as usize, name)?;
        }
        Ok(())
    }
}

/// The least bytes an element with these fields takes in a non-flexible version: its fixed-size
/// fields plus the length prefixes of the others.
fn min_fixed_bytes(fields: &[Field], version: i16) -> usize {
    fields
        .iter()
        .filter(|field| field.min_version <= version && version <= field.max_version)
        .map(|field| match field.kind {
            Kind::I8 => 1,
            Kind::I16 | Kind::Str => 2,
            Kind::I32 | Kind::Bytes | Kind::Int32Array | Kind::StrArray | Kind::Array(_) => 4,
            Kind::I64 => 8,
            Kind::Uuid => 16,
        })
        .sum()
}
