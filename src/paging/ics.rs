//! On-call shifts as an iCalendar feed (RFC 5545) for calendar apps: one VEVENT per shift
//! in its schedule's time zone, with a VTIMEZONE that lists that zone's offsets and every
//! daylight-saving change in the feed's span, so each shift lands at the right instant on
//! both sides of a change.

use std::collections::BTreeSet;
use std::fmt::Write;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, Tz};

use super::OnCall;

/// One shift of the feed, in the time zone of its schedule.
#[derive(Clone, Debug)]
pub struct Shift {
    pub tz: Tz,
    pub on_call: OnCall,
}

/// The feed named `name` with `shifts` (those without an end end at `to`), for the span
/// `[from, to)`, made at `now`.
pub fn render(
    name: &str,
    shifts: &[Shift],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//tocsin//on-call//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        format!("X-WR-CALNAME:{}", escape(&format!("On call: {name}"))),
    ];
    let zones: BTreeSet<&str> = shifts.iter().map(|s| s.tz.name()).collect();
    for zone in zones {
        if let Ok(tz) = zone.parse::<Tz>() {
            let earliest = shifts
                .iter()
                .map(|s| s.on_call.since)
                .min()
                .unwrap_or(from)
                .min(from);
            lines.extend(vtimezone(tz, earliest - chrono::Duration::days(1), to));
        }
    }
    for shift in shifts {
        let oc = &shift.on_call;
        let end = oc.until.unwrap_or(to);
        lines.push("BEGIN:VEVENT".into());
        lines.push(format!(
            "UID:{}-{}-{}@tocsin",
            escape(&oc.schedule),
            oc.since.timestamp(),
            escape(&oc.responder)
        ));
        lines.push(format!("DTSTAMP:{}", utc_stamp(now)));
        lines.push(format!("DTSTART{}", when(shift.tz, oc.since)));
        lines.push(format!("DTEND{}", when(shift.tz, end)));
        lines.push(format!(
            "SUMMARY:{}",
            escape(&format!("On call: {} ({})", oc.responder, oc.schedule))
        ));
        lines.push(format!(
            "DESCRIPTION:{}",
            escape(&format!(
                "{} holds the pager of schedule {}.",
                oc.responder, oc.schedule
            ))
        ));
        lines.push("TRANSP:TRANSPARENT".into());
        lines.push("END:VEVENT".into());
    }
    lines.push("END:VCALENDAR".into());
    let mut out = String::new();
    for line in lines {
        fold(&mut out, &line);
    }
    out
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// `;TZID=zone:local` for an instant; in UTC (`:…Z`) when the local time names two
/// instants (the repeated hour when clocks go back) and this is the later one.
fn when(tz: Tz, t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&tz).naive_local();
    match tz.from_local_datetime(&local) {
        LocalResult::Ambiguous(first, _) if first.with_timezone(&Utc) != t => {
            format!(":{}", utc_stamp(t))
        }
        _ => format!(";TZID={}:{}", tz.name(), local.format("%Y%m%dT%H%M%S")),
    }
}

/// Seconds east of UTC at `t`, and whether daylight-saving time is in force.
fn offset_at(tz: Tz, t: DateTime<Utc>) -> (i32, bool) {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc());
    (
        offset.fix().local_minus_utc(),
        !offset.dst_offset().is_zero(),
    )
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    if s % 60 == 0 {
        format!("{sign}{:02}{:02}", s / 3600, (s % 3600) / 60)
    } else {
        format!("{sign}{:02}{:02}{:02}", s / 3600, (s % 3600) / 60, s % 60)
    }
}

/// The zone's VTIMEZONE for `[from, to]`: the offset in force at `from`, then each change.
fn vtimezone(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let mut out = vec!["BEGIN:VTIMEZONE".to_string(), format!("TZID:{}", tz.name())];
    let mut component = |at_local: NaiveDateTime, before: i32, (after, dst): (i32, bool)| {
        let kind = if dst { "DAYLIGHT" } else { "STANDARD" };
        out.push(format!("BEGIN:{kind}"));
        out.push(format!("DTSTART:{}", at_local.format("%Y%m%dT%H%M%S")));
        out.push(format!("TZOFFSETFROM:{}", offset_text(before)));
        out.push(format!("TZOFFSETTO:{}", offset_text(after)));
        out.push(format!("END:{kind}"));
    };
    let first = offset_at(tz, from);
    component(
        (from + chrono::Duration::seconds(i64::from(first.0))).naive_utc(),
        first.0,
        first,
    );
    let hour = chrono::Duration::hours(1);
    let mut t = from;
    let mut current = first;
    // Bounded: an hour at a time over the span.
    while t < to {
        let next = (t + hour).min(to);
        let there = offset_at(tz, next);
        if there != current {
            // The change is in (t, next]: find its second.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > chrono::Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            // DTSTART is the local time of the change by the offset before it.
            let local = (hi + chrono::Duration::seconds(i64::from(current.0))).naive_utc();
            component(local, current.0, there);
            current = there;
        }
        t = next;
    }
    out.push("END:VTIMEZONE".into());
    out
}

/// TEXT escaping of RFC 5545 (3.3.11).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Lines of at most 75 octets, continued with CRLF and a space (3.1), never inside a
/// character.
fn fold(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    let _ = write!(out, "\r\n");
}

#[cfg(test)]
#[path = "ics_tests.rs"]
mod tests;
