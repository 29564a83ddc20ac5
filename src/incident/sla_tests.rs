use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 10, 0, 0).unwrap()
}

const WORKBOOK: Thresholds = Thresholds {
    fast: 14.4,
    slow: 6.0,
};

/// A probe every 15 s from `from` for `span`, failing when `fails(i)` for the i-th one.
fn probe(
    a: &mut Availability,
    from: DateTime<Utc>,
    span: Duration,
    fails: impl Fn(i64) -> bool,
) -> DateTime<Utc> {
    let n = span.num_seconds() / 15;
    for i in 0..n {
        a.record(
            "storage",
            "eu-west",
            !fails(i),
            from + Duration::seconds(15 * i),
        );
    }
    from + Duration::seconds(15 * n)
}

#[test]
fn a_fast_burn_breaches_both_windows() {
    let mut a = Availability::default();
    // Six good hours, then five minutes of one probe in two failing.
    let now = probe(&mut a, t0(), Duration::hours(6), |_| false);
    let now = probe(&mut a, now, Duration::minutes(5), |i| i % 2 == 0);
    let m = a.measure("storage", "eu-west", 99.9, now).unwrap();
    // 10 bad of the ~240 probes of the last hour (whole minutes), of the ~1440 of 6 hours.
    assert!((41.0..43.0).contains(&m.burn_1h), "{m:?}");
    assert!((6.9..7.0).contains(&m.burn_6h), "{m:?}");
    assert!(m.breaches(WORKBOOK), "{m}");
    assert!(m.availability < 1.0 && m.availability > 0.99);
}

#[test]
fn a_slow_burn_within_budget_never_breaches() {
    let mut a = Availability::default();
    // One failure an hour for a day: 1 in 240, a 4.2x burn over 1h.
    let mut now = t0();
    for _ in 0..24 {
        now = probe(&mut a, now, Duration::hours(1), |i| i == 0);
        let m = a.measure("storage", "eu-west", 99.9, now).unwrap();
        assert!(!m.breaches(WORKBOOK), "{m}");
    }
    let m = a
        .measure("storage", "eu-west", 99.9, now - Duration::seconds(1))
        .unwrap();
    assert!((4.1..4.3).contains(&m.burn_1h), "{m:?}");
    assert!((m.availability - 239.0 / 240.0).abs() < 1e-9, "{m:?}");
}

#[test]
fn a_short_blip_burns_the_hour_but_not_six() {
    let mut a = Availability::default();
    let now = probe(&mut a, t0(), Duration::hours(6), |_| false);
    // Four failures in a row: 4/240 over 1h is 16.7x, 4/1440 over 6h is 2.8x.
    let now = probe(&mut a, now, Duration::minutes(1), |_| true);
    let m = a.measure("storage", "eu-west", 99.9, now).unwrap();
    assert!(m.burn_1h > 14.4 && m.burn_6h < 6.0, "{m:?}");
    assert!(!m.breaches(WORKBOOK));
}

#[test]
fn old_events_leave_the_windows() {
    let mut a = Availability::default();
    let now = probe(&mut a, t0(), Duration::minutes(10), |_| true);
    let later = now + Duration::hours(2);
    a.record("storage", "eu-west", true, later);
    let m = a.measure("storage", "eu-west", 99.9, later).unwrap();
    assert_eq!(m.burn_1h, 0.0, "the failures are over an hour old");
    assert!(m.burn_6h > 6.0);
    assert_eq!(
        a.counts("storage", "eu-west", Window::ThirtyDays, later)
            .bad,
        40
    );
    let month = later + Duration::days(30);
    a.prune(month);
    assert!(a.measure("storage", "eu-west", 99.9, month).is_none());
    assert_eq!(a.series().count(), 0, "nothing left in 30 days");
}

#[test]
fn memory_stays_bounded_by_the_buckets() {
    let mut a = Availability::default();
    probe(&mut a, t0(), Duration::days(31), |i| i % 100 == 0);
    let series = &a.series[&("storage".to_string(), "eu-west".to_string())];
    assert!(series.minutes.len() <= MINUTES_KEPT as usize);
    assert!(series.hours.len() <= HOURS_KEPT as usize);
}

#[test]
fn no_measurement_without_events_or_budget() {
    let mut a = Availability::default();
    assert!(a.measure("storage", "eu-west", 99.9, t0()).is_none());
    a.record("storage", "eu-west", true, t0());
    assert!(a.measure("storage", "eu-west", 100.0, t0()).is_none());
    assert!(a.measure("storage", "eu-east", 99.9, t0()).is_none());
}

#[test]
fn indicators_count_each_minute_once() {
    let mut a = Availability::default();
    a.add_indicator("ApiErrors", "api", "eu-west");
    a.add_indicator("ApiErrors", "api", "eu-west");
    for m in 1..=60 {
        let now = t0() + Duration::minutes(m);
        // Bad for the last 6 minutes of the hour.
        a.count_minute(now, |_| m > 54);
        a.count_minute(now, |_| true);
    }
    let now = t0() + Duration::minutes(60);
    let hours = a.counts("api", "eu-west", Window::SixHours, now);
    assert_eq!((hours.good, hours.bad), (54, 6));
    a.retain_indicators(|rule| rule != "ApiErrors");
    assert_eq!(a.indicators().count(), 0);
}

#[test]
fn it_survives_its_json() {
    let mut a = Availability::default();
    let now = probe(&mut a, t0(), Duration::hours(2), |i| i % 7 == 0);
    a.add_indicator("ApiErrors", "api", "");
    a.count_minute(now, |_| false);
    let back = Availability::from_json(&a.to_json()).unwrap();
    assert_eq!(back, a);
    assert_eq!(
        back.measure("storage", "eu-west", 99.9, now),
        a.measure("storage", "eu-west", 99.9, now)
    );
    assert!(Availability::from_json("{\"series\": 3}").is_err());
}

#[test]
fn the_measurement_reads_as_the_page_says_it() {
    let m = Measurement {
        service: "storage".into(),
        region: "eu-west".into(),
        sla: 99.9,
        availability: 0.992_19,
        burn_1h: 16.23,
        burn_6h: 7.38,
    };
    assert_eq!(
        m.to_string(),
        "storage/eu-west availability 99.21% over 30d (SLA 99.9%); burn 16.2x over 1h, 7.4x over 6h"
    );
    assert_eq!(percent(0.999_99), "99.99%");
    assert_eq!(percent(1.0), "100.00%");
}

#[test]
fn a_burn_exactly_at_its_threshold_does_not_breach() {
    let mut a = Availability::default();
    for i in 0..12 {
        a.record(
            "storage",
            "eu-west",
            i % 2 == 0,
            t0() + Duration::seconds(i),
        );
    }
    let m = a
        .measure("storage", "eu-west", 90.0, t0() + Duration::seconds(12))
        .unwrap();
    assert_eq!((m.availability, m.burn_1h, m.burn_6h), (0.5, 5.0, 5.0));
    assert!(!m.breaches(Thresholds {
        fast: 5.0,
        slow: 5.0
    }));
}
