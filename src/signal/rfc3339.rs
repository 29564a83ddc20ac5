//! `DateTime<Utc>` fields to JSON as chrono's serde writes them (RFC 3339 in UTC with `Z`,
//! the fraction in 0, 3, 6 or 9 digits as it needs), byte for byte, without `fmt`. chrono
//! goes through `collect_str` and the formatting machinery; each new alert's rows carry six
//! timestamps, on the ingest path. Reading them back is chrono's, unchanged.
//!
//! For a `serialize_with` on the hot rows' fields: [`serialize`], and [`serialize_opt`] for
//! an `Option`. Times chrono writes in another shape (years outside 0–9999, a leap second)
//! are left to chrono.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `serialize_with` for a `DateTime<Utc>`.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 30];
    match write(at, &mut text) {
        Some(len) => {
            serializer.serialize_str(std::str::from_utf8(&text[..len]).expect("RFC 3339 is ASCII"))
        }
        None => at.serialize(serializer),
    }
}

/// `serialize_with` for an `Option<DateTime<Utc>>`.
pub fn serialize_opt<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    /// A time to serialize as above, inside `Some`.
    struct Fast<'a>(&'a DateTime<Utc>);
    impl Serialize for Fast<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }
    match at {
        Some(at) => serializer.serialize_some(&Fast(at)),
        None => serializer.serialize_none(),
    }
}

/// `at` as `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z` into `out`; its length, or `None`
/// for a time chrono writes otherwise.
fn write(at: &DateTime<Utc>, out: &mut [u8; 30]) -> Option<usize> {
    let year = at.year();
    let nanos = at.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    put(out, 0, year.unsigned_abs(), 4);
    out[4] = b'-';
    put(out, 5, at.month(), 2);
    out[7] = b'-';
    put(out, 8, at.day(), 2);
    out[10] = b'T';
    put(out, 11, at.hour(), 2);
    out[13] = b':';
    put(out, 14, at.minute(), 2);
    out[16] = b':';
    put(out, 17, at.second(), 2);
    let mut len = 19;
    let (fraction, digits) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    if digits > 0 {
        out[len] = b'.';
        put(out, len + 1, fraction, digits);
        len += 1 + digits;
    }
    out[len] = b'Z';
    Some(len + 1)
}

/// `value`'s last `digits` decimal digits, zero-padded, at `out[at..]`.
fn put(out: &mut [u8; 30], at: usize, mut value: u32, digits: usize) {
    for i in (at..at + digits).rev() {
        out[i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(Serialize)]
    struct Fast {
        #[serde(serialize_with = "serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "serialize_opt")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chrono {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    /// Byte for byte what chrono writes, over every fraction shape, both ends of the years
    /// written plainly, the times chrono writes otherwise, and `None`.
    #[test]
    fn writes_what_chrono_writes() {
        let mut times = vec![
            Utc.with_ymd_and_hms(2026, 12, 5, 12, 39, 57).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 30, 12, 0, 0).unwrap(),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ];
        let base = times[0];
        for nanos in [
            1,
            9,
            10,
            999,
            1_000,
            1_001,
            120_000,
            999_999,
            1_000_000,
            5_000_000,
            100_000_000,
            123_456_789,
            999_999_999,
        ] {
            times.push(base + chrono::Duration::nanoseconds(nanos));
        }
        // A leap second, which chrono writes as :60.
        times.push(
            Utc.from_utc_datetime(
                &chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                    .unwrap()
                    .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                    .unwrap(),
            ),
        );
        // And a spread of ordinary ones.
        let mut t = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        for i in 0..2_000i64 {
            t += chrono::Duration::nanoseconds(i * 7_919_000_003 + i * i * 1_000_000_007);
            times.push(t);
        }
        for at in times {
            // Years 0–9999 without a leap second take the fast way, not chrono's.
            let plain = (0..=9999).contains(&at.year()) && at.nanosecond() < 1_000_000_000;
            assert_eq!(write(&at, &mut [0; 30]).is_some(), plain, "{at:?}");
            for maybe in [None, Some(at)] {
                assert_eq!(
                    serde_json::to_string(&Fast { at, maybe }).unwrap(),
                    serde_json::to_string(&Chrono { at, maybe }).unwrap(),
                    "{at:?}"
                );
            }
        }
    }
}
