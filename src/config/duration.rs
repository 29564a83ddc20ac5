//! Prometheus-style durations: `30s`, `5m`, `1h30m`, `250ms`, `2d`, `1w`.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time written the way Prometheus writes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

impl Duration {
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    pub fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    pub fn std(self) -> std::time::Duration {
        self.0
    }

    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || {
            format!(
                "invalid duration {text:?}: expected numbers with units ms, s, m, h, d, w or y, \
                 largest first, e.g. 30s, 5m, 1h30m"
            )
        };
        if text == "0" {
            return Ok(Duration::ZERO);
        }
        let mut rest = text;
        let mut total_ms: u64 = 0;
        // Index into UNITS of the last unit used: each must be smaller than the one before.
        let mut last_unit: Option<usize> = None;
        if rest.is_empty() {
            return Err(expected());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(expected());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| expected())?;
            rest = &rest[digits..];
            // "ms" must be tried before "m".
            let (unit_index, unit_len) = if rest.starts_with("ms") {
                (6, 2)
            } else {
                match UNITS
                    .iter()
                    .position(|(u, _)| u.len() == 1 && rest.starts_with(u))
                {
                    Some(i) => (i, 1),
                    None => return Err(expected()),
                }
            };
            if last_unit.is_some_and(|last| unit_index <= last) {
                return Err(expected());
            }
            last_unit = Some(unit_index);
            rest = &rest[unit_len..];
            total_ms = number
                .checked_mul(UNITS[unit_index].1)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        }
        if total_ms > MAX_MS {
            return Err(format!(
                "invalid duration {text:?}: too large, at most 100y"
            ));
        }
        Ok(Duration::from_millis(total_ms))
    }
}

/// The longest duration accepted: every time the engine computes (now + a window + a delay …)
/// stays far inside what a date can hold, so no duration the check passes can overflow a
/// time in the engine loop (`resolve_after: 100000000y` would).
const MAX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            // Years and weeks read worse than days in output.
            if unit == "y" || unit == "w" {
                continue;
            }
            if ms >= size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 5m or 1h30m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                if v == 0 {
                    Ok(Duration::ZERO)
                } else {
                    Err(E::custom(format!(
                        "invalid duration {v}: a duration needs a unit, e.g. {v}s or {v}m"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                if v < 0 {
                    Err(E::custom(format!(
                        "invalid duration {v}: must not be negative"
                    )))
                } else {
                    self.visit_u64(v as u64)
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!("30s".parse::<Duration>().unwrap(), Duration::from_secs(30));
        assert_eq!(
            "1h30m".parse::<Duration>().unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            "1m500ms".parse::<Duration>().unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!(
            "2d".parse::<Duration>().unwrap(),
            Duration::from_secs(172_800)
        );
        assert_eq!("0".parse::<Duration>().unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "5", "5x", "m5", "1m1h", "1s1s", "-5s", "1.5h", "5 m"] {
            let err = bad.parse::<Duration>().unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn refuses_more_than_a_century() {
        assert_eq!(
            "100y".parse::<Duration>().unwrap(),
            Duration::from_secs(100 * 365 * 24 * 3600)
        );
        for huge in ["101y", "100y1ms", "100000000y", "18446744073709551615ms"] {
            let err = huge.parse::<Duration>().unwrap_err();
            assert!(err.contains("too large"), "{huge}: {err}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for text in ["1h30m", "45s", "250ms", "2d3h"] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
    }
}
