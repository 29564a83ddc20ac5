//! Cron expressions (seconds first, day names) evaluated in an IANA time zone.
//!
//! The `cron` crate numbers days of the week 1 = Sunday, while crontab users mean 0 = Sunday and
//! 1 = Monday. Numeric days are translated from crontab meaning into names, so `1-5` is Monday to
//! Friday as an SRE expects. Times are computed on the local wall clock and then placed in the
//! zone: a time that does not exist (spring forward) happens when the clock resumes, and a time
//! that exists twice (fall back) happens once, the first time.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{de, Deserialize, Deserializer};

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// A parsed cron expression, zone-less: combine with a zone through [`CronSpec::in_zone`].
#[derive(Clone, Debug)]
pub struct CronSpec {
    text: String,
    schedule: cron::Schedule,
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl CronSpec {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first firing strictly after `after`, in the zone `tz`.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Start two hours back on the wall clock so a fall-back hour is not skipped, then take
        // the first firing that lands after `after` in real time.
        let local = after.with_timezone(&tz).naive_local() - chrono::Duration::hours(2);
        let start = Utc.from_utc_datetime(&local);
        self.schedule
            .after(&start)
            .take(10_000)
            .filter_map(|naive| place_in_zone(tz, naive.naive_utc()))
            .find(|at| *at > after)
    }

    /// The last firing at or before `at`, in the zone `tz`.
    pub fn last_at_or_before(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz).naive_local() + chrono::Duration::hours(2);
        let start = Utc.from_utc_datetime(&local);
        self.schedule
            .after(&start)
            .rev()
            .take(10_000)
            .filter_map(|naive| place_in_zone(tz, naive.naive_utc()))
            .find(|fired| *fired <= at)
    }
}

/// Put a wall-clock time into a zone: gaps move forward to when the clock resumes, repeated
/// times take their first occurrence.
pub fn place_in_zone(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut probe = naive;
    // A DST gap is at most a few hours; step forward minute by minute until the time exists.
    for _ in 0..(4 * 60) {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
            LocalResult::None => {
                probe = (probe + chrono::Duration::minutes(1))
                    .with_second(0)
                    .unwrap_or(probe);
            }
        }
    }
    None
}

use chrono::Timelike;

impl FromStr for CronSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() == 5 {
            return Err(format!(
                "invalid cron expression {text:?}: it has 5 fields, but tocsin's cron has seconds \
                 first: \"sec min hour day-of-month month day-of-week\", e.g. \"0 0 9 * * Mon\""
            ));
        }
        if !(6..=7).contains(&fields.len()) {
            return Err(format!(
                "invalid cron expression {text:?}: expected 6 or 7 fields \
                 (sec min hour day-of-month month day-of-week [year]), found {}",
                fields.len()
            ));
        }
        let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        fields[5] = translate_day_of_week(&fields[5])
            .map_err(|why| format!("invalid cron expression {text:?}: {why}"))?;
        let schedule = cron::Schedule::from_str(&fields.join(" ")).map_err(|e| {
            // The crate's message draws a caret diagram over several lines; keep its verdict.
            let detail = e.to_string();
            let verdict = detail
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .unwrap_or("invalid")
                .to_string();
            format!("invalid cron expression {text:?}: {verdict}")
        })?;
        Ok(CronSpec {
            text: text.to_string(),
            schedule,
        })
    }
}

/// Translate crontab's numeric days (0 or 7 = Sunday, 1 = Monday) into day names; names,
/// `*` and `?` pass through.
fn translate_day_of_week(field: &str) -> Result<String, String> {
    if !field.bytes().any(|b| b.is_ascii_digit()) {
        return Ok(field.to_string());
    }
    if field.bytes().any(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "day-of-week {field:?} mixes numbers and names; use names such as Mon-Fri"
        ));
    }
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<usize>()
                    .map_err(|_| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step 0 in day-of-week {part:?}"));
        }
        let (low, high) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_day(a)?, parse_day(b)?)
        } else {
            let d = parse_day(range)?;
            (d, if part.contains('/') { 7 } else { d })
        };
        if low > high {
            return Err(format!("day-of-week range {range:?} runs backwards"));
        }
        for day in (low..=high).step_by(step) {
            days[day % 7] = true;
        }
    }
    let names: Vec<&str> = (0..7).filter(|d| days[*d]).map(|d| DAY_NAMES[d]).collect();
    Ok(names.join(","))
}

fn parse_day(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(d) if d <= 7 => Ok(d),
        _ => Err(format!(
            "day-of-week {text:?} is not 0-7 (0 and 7 are Sunday)"
        )),
    }
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CronSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// An IANA zone name such as `Asia/Shanghai`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Zone(pub Tz);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse::<Tz>().map(Zone).map_err(|_| {
            de::Error::custom(format!(
                "unknown time zone {text:?}: expected an IANA name such as Asia/Shanghai or UTC"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn numeric_days_mean_what_crontab_means() {
        assert_eq!(translate_day_of_week("1-5").unwrap(), "Mon,Tue,Wed,Thu,Fri");
        assert_eq!(translate_day_of_week("0").unwrap(), "Sun");
        assert_eq!(translate_day_of_week("7").unwrap(), "Sun");
        assert_eq!(translate_day_of_week("Mon-Fri").unwrap(), "Mon-Fri");
        assert!(translate_day_of_week("8").is_err());
    }

    #[test]
    fn five_fields_get_a_helpful_error() {
        let err = "0 9 * * 1".parse::<CronSpec>().unwrap_err();
        assert!(err.contains("seconds"), "{err}");
    }

    #[test]
    fn next_after_in_zone() {
        let spec: CronSpec = "0 0 9 * * Mon-Fri".parse().unwrap();
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        // Saturday 2026-01-10 12:00 Shanghai -> Monday 09:00 Shanghai = 01:00Z.
        let next = spec.next_after(tz, utc("2026-01-10T04:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-01-12T01:00:00Z"));
        let last = spec
            .last_at_or_before(tz, utc("2026-01-10T04:00:00Z"))
            .unwrap();
        assert_eq!(last, utc("2026-01-09T01:00:00Z"));
    }

    #[test]
    fn spring_forward_gap_fires_when_clock_resumes() {
        // New York skips 02:00-03:00 on 2026-03-08.
        let spec: CronSpec = "0 30 2 * * *".parse().unwrap();
        let tz: Tz = "America/New_York".parse().unwrap();
        let next = spec.next_after(tz, utc("2026-03-08T05:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-03-08T07:00:00Z")); // 03:00 EDT
    }

    #[test]
    fn fall_back_repeated_time_fires_once() {
        // New York repeats 01:00-02:00 on 2026-11-01.
        let spec: CronSpec = "0 30 1 * * *".parse().unwrap();
        let tz: Tz = "America/New_York".parse().unwrap();
        let first = spec.next_after(tz, utc("2026-11-01T04:00:00Z")).unwrap();
        assert_eq!(first, utc("2026-11-01T05:30:00Z")); // 01:30 EDT
        let second = spec.next_after(tz, first).unwrap();
        assert_eq!(second, utc("2026-11-02T06:30:00Z")); // next day 01:30 EST
    }
}
