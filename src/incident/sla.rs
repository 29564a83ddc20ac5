//! "Below SLA", measured: each service's availability per region over a rolling 30 days,
//! and how fast it burns its error budget (multi-window burn-rate alerting, as in the SRE
//! workbook).
//!
//! Good and bad events come from tocsin's own probes (each result is one event for its
//! `service` and `region` labels) and from rules marked `availability: true` (each minute
//! one event per rule, service and region: bad while one of its impacts there is active).
//! They are counted per minute for the last 6 hours (the 1h and 6h windows) and per hour
//! for 30 days (the availability), so memory stays bounded however many events arrive:
//! at most 360 + 720 buckets per service and region.
//!
//! Pure: handed the time, it reads no clock and does no I/O; the engine persists it whole
//! as JSON (see [`Availability::to_json`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Minutes kept per series: the longest burn window (6h).
pub const MINUTES_KEPT: i64 = 6 * 60;
/// Hours kept per series: the availability window (30 days).
pub const HOURS_KEPT: i64 = 30 * 24;

/// One window of the burn rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    OneHour,
    SixHours,
    ThirtyDays,
}

impl Window {
    pub fn label(self) -> &'static str {
        match self {
            Window::OneHour => "1h",
            Window::SixHours => "6h",
            Window::ThirtyDays => "30d",
        }
    }
}

/// Good and bad events in one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub good: u64,
    pub bad: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.good += other.good;
        self.bad += other.bad;
    }

    fn sub(&mut self, other: Counts) {
        self.good = self.good.saturating_sub(other.good);
        self.bad = self.bad.saturating_sub(other.bad);
    }

    fn total(self) -> u64 {
        self.good + self.bad
    }

    /// The share of good events; `None` without events.
    pub fn ratio(self) -> Option<f64> {
        (self.total() > 0).then(|| self.good as f64 / self.total() as f64)
    }
}

/// One service in one region.
#[derive(Clone, Debug, Default, PartialEq)]
struct Series {
    /// By minute since the epoch.
    minutes: BTreeMap<i64, Counts>,
    /// By hour since the epoch.
    hours: BTreeMap<i64, Counts>,
    /// The sums of `minutes` and of `hours`: the 6h and 30d windows without a scan.
    minutes_total: Counts,
    hours_total: Counts,
}

impl Series {
    fn of(minutes: BTreeMap<i64, Counts>, hours: BTreeMap<i64, Counts>) -> Series {
        Series {
            minutes_total: sum(minutes.values()),
            hours_total: sum(hours.values()),
            minutes,
            hours,
        }
    }

    fn add(&mut self, at: DateTime<Utc>, counts: Counts) {
        let minute = minute_of(at);
        self.minutes.entry(minute).or_default().add(counts);
        self.hours
            .entry(minute.div_euclid(60))
            .or_default()
            .add(counts);
        self.minutes_total.add(counts);
        self.hours_total.add(counts);
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let minute = minute_of(now);
        let gone = drop_before(&mut self.minutes, minute - MINUTES_KEPT + 1);
        self.minutes_total.sub(gone);
        let gone = drop_before(&mut self.hours, minute.div_euclid(60) - HOURS_KEPT + 1);
        self.hours_total.sub(gone);
    }

    fn is_empty(&self) -> bool {
        self.minutes.is_empty() && self.hours.is_empty()
    }

    /// The events of `window` ending at `now` (the current minute or hour included).
    fn counts(&self, window: Window, now: DateTime<Utc>) -> Counts {
        let minute = minute_of(now);
        let (buckets, total, from, to) = match window {
            Window::OneHour => (&self.minutes, None, minute - 59, minute),
            Window::SixHours => (
                &self.minutes,
                Some(self.minutes_total),
                minute - MINUTES_KEPT + 1,
                minute,
            ),
            Window::ThirtyDays => {
                let hour = minute.div_euclid(60);
                (
                    &self.hours,
                    Some(self.hours_total),
                    hour - HOURS_KEPT + 1,
                    hour,
                )
            }
        };
        // Every bucket kept is in the window (as after a prune at `now`): its running sum.
        let within = |bucket: Option<(&i64, &Counts)>, ok: fn(i64, i64) -> bool, bound| {
            bucket.is_none_or(|(at, _)| ok(*at, bound))
        };
        if let Some(total) = total.filter(|_| {
            within(buckets.first_key_value(), |at, from| at >= from, from)
                && within(buckets.last_key_value(), |at, to| at <= to, to)
        }) {
            return total;
        }
        sum(buckets.range(from..=to).map(|(_, c)| c))
    }
}

fn sum<'a>(buckets: impl Iterator<Item = &'a Counts>) -> Counts {
    let mut total = Counts::default();
    for counts in buckets {
        total.add(*counts);
    }
    total
}

/// Remove the buckets before `first` (usually none: then nothing moves); returns their sum.
fn drop_before(buckets: &mut BTreeMap<i64, Counts>, first: i64) -> Counts {
    if buckets.first_key_value().is_none_or(|(at, _)| *at >= first) {
        return Counts::default();
    }
    let kept = buckets.split_off(&first);
    let gone = sum(buckets.values());
    *buckets = kept;
    gone
}

fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// What the engine measured for one service in one region at one time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub service: String,
    pub region: String,
    /// The catalog's `sla` of the service, in percent (99.9).
    pub sla: f64,
    /// The share of good events over 30 days (0 to 1).
    pub availability: f64,
    /// Error ratio over the window divided by the error budget (1 - sla).
    pub burn_1h: f64,
    pub burn_6h: f64,
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = if self.region.is_empty() {
            self.service.clone()
        } else {
            format!("{}/{}", self.service, self.region)
        };
        write!(
            f,
            "{place} availability {} over 30d (SLA {}%); burn {:.1}x over 1h, {:.1}x over 6h",
            percent(self.availability),
            self.sla,
            self.burn_1h,
            self.burn_6h
        )
    }
}

/// A ratio as a percentage with two decimals, never rounded up (99.999% is not "100.00%").
pub fn percent(ratio: f64) -> String {
    let hundredths = (ratio * 10_000.0).floor() / 100.0;
    format!("{hundredths:.2}%")
}

/// The burn-rate thresholds: an SLA breaches when both windows burn faster than theirs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Over 1 hour (the workbook's 14.4: 2% of a 30-day budget in one hour).
    pub fast: f64,
    /// Over 6 hours (the workbook's 6: 5% of a 30-day budget in six hours).
    pub slow: f64,
}

impl Measurement {
    /// Multi-window burn-rate alerting: both windows over their thresholds.
    pub fn breaches(&self, thresholds: Thresholds) -> bool {
        self.burn_1h > thresholds.fast && self.burn_6h > thresholds.slow
    }
}

/// An availability indicator: a rule marked `availability: true` that has seen a signal of
/// this service and region.
pub type Indicator = (String, String, String);

/// Every service's availability per region.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Availability {
    series: BTreeMap<(String, String), Series>,
    indicators: BTreeSet<Indicator>,
    /// Minutes before this one have had their indicator events.
    counted_until: Option<i64>,
}

impl Availability {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.indicators.is_empty()
    }

    /// One good or bad event for `service` in `region` (empty: no region) at `at`.
    pub fn record(&mut self, service: &str, region: &str, good: bool, at: DateTime<Utc>) {
        let counts = if good {
            Counts { good: 1, bad: 0 }
        } else {
            Counts { good: 0, bad: 1 }
        };
        let series = self
            .series
            .entry((service.to_string(), region.to_string()))
            .or_default();
        series.add(at, counts);
        series.prune(at);
    }

    /// Rule `rule` is an availability indicator of `service` in `region` from now on.
    pub fn add_indicator(&mut self, rule: &str, service: &str, region: &str) {
        let key = (rule.to_string(), service.to_string(), region.to_string());
        if !self.indicators.contains(&key) {
            self.indicators.insert(key);
        }
    }

    /// Keep only the indicators of rules still marked `availability: true`.
    pub fn retain_indicators(&mut self, keep: impl Fn(&str) -> bool) {
        self.indicators.retain(|(rule, _, _)| keep(rule));
    }

    pub fn indicators(&self) -> impl Iterator<Item = &Indicator> {
        self.indicators.iter()
    }

    /// The minute that ended at `now` counts once for each indicator: bad when `is_bad`
    /// says so. Minutes the engine was not running are not counted (nobody watched them).
    pub fn count_minute(&mut self, now: DateTime<Utc>, is_bad: impl Fn(&Indicator) -> bool) {
        let minute = minute_of(now);
        if self.counted_until.is_some_and(|until| until >= minute) {
            return;
        }
        self.counted_until = Some(minute);
        let at = DateTime::from_timestamp((minute - 1) * 60, 0).unwrap_or(now);
        let events: Vec<(String, String, bool)> = self
            .indicators
            .iter()
            .map(|key| (key.1.clone(), key.2.clone(), !is_bad(key)))
            .collect();
        for (service, region, good) in events {
            self.record(&service, &region, good, at);
        }
    }

    /// Drop what has fallen out of every window.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        for series in self.series.values_mut() {
            series.prune(now);
        }
        self.series.retain(|_, s| !s.is_empty());
    }

    /// The events of `service` in `region` over `window` ending at `now`.
    pub fn counts(
        &self,
        service: &str,
        region: &str,
        window: Window,
        now: DateTime<Utc>,
    ) -> Counts {
        self.series
            .get(&(service.to_string(), region.to_string()))
            .map(|s| s.counts(window, now))
            .unwrap_or_default()
    }

    /// The availability and burn rates of `service` in `region` against `sla` (percent);
    /// `None` without any event in 30 days or without a budget (an SLA of 100% or more).
    pub fn measure(
        &self,
        service: &str,
        region: &str,
        sla: f64,
        now: DateTime<Utc>,
    ) -> Option<Measurement> {
        let budget = (100.0 - sla) / 100.0;
        if budget <= 0.0 {
            return None;
        }
        let availability = self
            .counts(service, region, Window::ThirtyDays, now)
            .ratio()?;
        let burn = |window| {
            let counts = self.counts(service, region, window, now);
            match counts.total() {
                0 => 0.0,
                total => counts.bad as f64 / total as f64 / budget,
            }
        };
        Some(Measurement {
            service: service.to_string(),
            region: region.to_string(),
            sla,
            availability,
            burn_1h: burn(Window::OneHour),
            burn_6h: burn(Window::SixHours),
        })
    }

    /// Every (service, region) with events in the last 30 days.
    pub fn series(&self) -> impl Iterator<Item = (&str, &str)> {
        self.series.keys().map(|(s, r)| (s.as_str(), r.as_str()))
    }

    pub fn to_json(&self) -> String {
        let stored = Stored {
            series: self
                .series
                .iter()
                .map(|((service, region), s)| StoredSeries {
                    service: service.clone(),
                    region: region.clone(),
                    minutes: rows(&s.minutes),
                    hours: rows(&s.hours),
                })
                .collect(),
            indicators: self.indicators.iter().cloned().collect(),
            counted_until: self.counted_until,
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Availability, String> {
        let stored: Stored = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let buckets = |rows: Vec<[i64; 3]>| {
            rows.into_iter()
                .map(|[at, good, bad]| {
                    let counts = Counts {
                        good: good.max(0) as u64,
                        bad: bad.max(0) as u64,
                    };
                    (at, counts)
                })
                .collect()
        };
        Ok(Availability {
            series: stored
                .series
                .into_iter()
                .map(|s| {
                    let series = Series::of(buckets(s.minutes), buckets(s.hours));
                    ((s.service, s.region), series)
                })
                .collect(),
            indicators: stored.indicators.into_iter().collect(),
            counted_until: stored.counted_until,
        })
    }
}

fn rows(buckets: &BTreeMap<i64, Counts>) -> Vec<[i64; 3]> {
    buckets
        .iter()
        .map(|(at, c)| [*at, c.good as i64, c.bad as i64])
        .collect()
}

/// The stored form: buckets as `[minute or hour since the epoch, good, bad]`.
#[derive(Serialize, Deserialize)]
struct Stored {
    series: Vec<StoredSeries>,
    #[serde(default)]
    indicators: Vec<Indicator>,
    #[serde(default)]
    counted_until: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct StoredSeries {
    service: String,
    region: String,
    minutes: Vec<[i64; 3]>,
    hours: Vec<[i64; 3]>,
}

#[cfg(test)]
#[path = "sla_tests.rs"]
mod tests;
