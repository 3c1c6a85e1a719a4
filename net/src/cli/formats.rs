//! Key and value formats (text on the terminal ↔ bytes in records) and ISO 8601 times.
//!
//! | format | produce: the text is | consume: the bytes are shown as |
//! | --- | --- | --- |
//! | `string` | sent as its UTF-8 bytes | text (invalid UTF-8 replaced with U+FFFD) |
//! | `json` | checked to be one JSON value, sent as is | the JSON value (embedded as JSON with `--json`) |
//! | `hex` | hex digits, decoded | lower-case hex |
//! | `base64` | standard base64 (padding optional), decoded | standard base64 with padding |

use clap::ValueEnum;
use serde_json::Value;

/// How a key or value is written on the terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    #[default]
    String,
    Json,
    Hex,
    Base64,
}

impl DataFormat {
    /// The record bytes for `text` typed in this format.
    pub fn parse(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            DataFormat::String => Ok(text.as_bytes().to_vec()),
            DataFormat::Json => match serde_json::from_str::<Value>(text) {
                Ok(_) => Ok(text.as_bytes().to_vec()),
                Err(error) => Err(format!("not JSON ({error})")),
            },
            DataFormat::Hex => hex_decode(text.trim()),
            DataFormat::Base64 => base64_decode(text.trim()),
        }
    }

    /// `bytes` as text in this format (JSON that does not parse is shown as a string).
    pub fn render(self, bytes: &[u8]) -> String {
        match self {
            DataFormat::String | DataFormat::Json => String::from_utf8_lossy(bytes).into_owned(),
            DataFormat::Hex => bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
            DataFormat::Base64 => base64_encode(bytes),
        }
    }

    /// `bytes` as a JSON value: parsed JSON for `json` (a string if it does not parse), a string otherwise.
    pub fn to_json(self, bytes: &[u8]) -> Value {
        if self == DataFormat::Json {
            if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
                return value;
            }
        }
        Value::String(self.render(bytes))
    }
}

fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err("hex needs an even number of digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|at| {
            text.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("not hex at character {}", at + 1))
        })
        .collect()
}

const BASE64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let triple = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for index in 0..4 {
            if index <= chunk.len() {
                text.push(char::from(BASE64_ALPHABET[((triple >> (18 - 6 * index)) & 0x3f) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.trim_end_matches('=');
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut accumulator, mut bits) = (0u32, 0u32);
    for (at, character) in digits.bytes().enumerate() {
        let value = BASE64_ALPHABET
            .iter()
            .position(|&digit| digit == character)
            .ok_or_else(|| format!("not base64 at character {}", at + 1))?;
        accumulator = (accumulator << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("base64 of a wrong length".into());
    }
    Ok(bytes)
}

/// Milliseconds since the Unix epoch for an ISO 8601 time: `2024-05-01`, `2024-05-01T12:30:00`,
/// with optional fractions of a second and a `Z` or `±HH:MM` offset (none means UTC); or a plain
/// number of milliseconds since the epoch.
pub fn parse_datetime_ms(text: &str) -> Result<i64, String> {
    let bad =
        || format!("{text:?} is not an ISO 8601 time (like 2024-05-01T12:30:00Z) or milliseconds since the epoch");
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00:00"));
    let date: Vec<&str> = date.split('-').collect();
    let [year, month, day] = date[..] else { return Err(bad()) };
    let (year, month, day): (i64, i64, i64) =
        (year.parse().map_err(|_| bad())?, month.parse().map_err(|_| bad())?, day.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, offset) = time.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let digits = offset[1..].replace(':', "");
        if digits.len() != 4 {
            return Err(bad());
        }
        let hours: i64 = digits[..2].parse().map_err(|_| bad())?;
        let minutes: i64 = digits[2..].parse().map_err(|_| bad())?;
        (clock, sign * (hours * 60 + minutes))
    } else {
        (time, 0)
    };
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let parts: Vec<&str> = clock.split(':').collect();
    let (hour, minute, second) = match parts[..] {
        [hour, minute] => (hour, minute, "0"),
        [hour, minute, second] => (hour, minute, second),
        _ => return Err(bad()),
    };
    let (hour, minute, second): (i64, i64, i64) =
        (hour.parse().map_err(|_| bad())?, minute.parse().map_err(|_| bad())?, second.parse().map_err(|_| bad())?);
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let millis: i64 = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        digits.parse().map_err(|_| bad())?
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// `2024-05-01T12:30:00.123Z` for milliseconds since the epoch.
pub fn format_datetime_ms(ms: i64) -> String {
    let (days, millis_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let seconds = millis_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        millis_of_day % 1000
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", &[0, 255, 128]] {
            for format in [DataFormat::Hex, DataFormat::Base64, DataFormat::String] {
                if format == DataFormat::String && std::str::from_utf8(bytes).is_err() {
                    continue;
                }
                assert_eq!(format.parse(&format.render(bytes)).unwrap(), bytes, "{format:?}");
            }
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(DataFormat::Base64.parse("Zm8").unwrap(), b"fo");
        assert!(DataFormat::Hex.parse("0g").is_err());
        assert!(DataFormat::Base64.parse("Z").is_err());
        assert!(DataFormat::Json.parse("{\"a\":").is_err());
        assert_eq!(DataFormat::Json.to_json(b"{\"a\":1}"), serde_json::json!({"a": 1}));
    }

    #[test]
    fn iso_8601_times() {
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_datetime_ms("2024-05-01T12:30:00.5Z").unwrap(), 1_714_566_600_500);
        assert_eq!(parse_datetime_ms("2024-05-01T14:30:00+02:00").unwrap(), 1_714_566_600_000);
        assert_eq!(parse_datetime_ms("2024-05-01").unwrap(), 1_714_521_600_000);
        assert_eq!(parse_datetime_ms("1714566600000").unwrap(), 1_714_566_600_000);
        assert!(parse_datetime_ms("yesterday").is_err());
        assert!(parse_datetime_ms("2024-13-01").is_err());
        assert_eq!(format_datetime_ms(1_714_566_600_500), "2024-05-01T12:30:00.500Z");
        assert_eq!(format_datetime_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
