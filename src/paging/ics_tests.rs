use super::*;
use crate::paging::Rotation;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn new_york() -> Rotation {
    Rotation {
        name: "primary".into(),
        tz: "America/New_York".parse().unwrap(),
        handoff: "0 0 9 * * Mon".parse().unwrap(),
        start: utc("2026-03-02T09:00:00-05:00"),
        participants: vec!["alice".into(), "bob".into()],
        overrides: vec![],
    }
}

fn feed(r: &Rotation, from: &str, to: &str) -> String {
    let (from, to) = (utc(from), utc(to));
    let shifts: Vec<Shift> = r
        .shifts_between(from, to)
        .into_iter()
        .map(|on_call| Shift { tz: r.tz, on_call })
        .collect();
    render("primary", &shifts, from, to, from)
}

#[test]
fn shifts_keep_their_wall_clock_across_the_spring_change() {
    let text = feed(&new_york(), "2026-03-01T00:00:00Z", "2026-03-20T00:00:00Z");
    // 09:00 EST on Mar 2, 09:00 EDT on Mar 9 (after the change on Mar 8) and Mar 16.
    for line in [
        "DTSTART;TZID=America/New_York:20260302T090000",
        "DTEND;TZID=America/New_York:20260309T090000",
        "DTSTART;TZID=America/New_York:20260309T090000",
        "DTSTART;TZID=America/New_York:20260316T090000",
        "SUMMARY:On call: bob (primary)",
    ] {
        assert!(
            text.contains(&format!("{line}\r\n")),
            "{line} missing:\n{text}"
        );
    }
    // The zone: EST at the start, EDT from 02:00 local on Mar 8.
    assert!(text.contains(
        "BEGIN:DAYLIGHT\r\nDTSTART:20260308T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\n"
    ), "{text}");
    assert!(
        text.contains("TZOFFSETFROM:-0500\r\nTZOFFSETTO:-0500\r\n"),
        "{text}"
    );
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 3);
    assert!(text.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
    assert!(text.ends_with("END:VCALENDAR\r\n"));
}

#[test]
fn a_shift_starting_in_the_repeated_hour_is_given_in_utc() {
    // Nov 1 2026, 01:30 happens twice in New York; the second is 06:30Z.
    let r = Rotation {
        handoff: "0 30 1 * * *".parse().unwrap(),
        start: utc("2026-10-31T01:30:00-04:00"),
        ..new_york()
    };
    let late = utc("2026-11-01T06:30:00Z");
    assert_eq!(when(r.tz, late), ":20261101T063000Z");
    assert_eq!(
        when(r.tz, utc("2026-11-01T05:30:00Z")),
        ";TZID=America/New_York:20261101T013000"
    );
}

#[test]
fn long_lines_fold_and_text_is_escaped() {
    let mut out = String::new();
    fold(&mut out, &format!("SUMMARY:{}", "é".repeat(60)));
    for line in out.split("\r\n") {
        assert!(line.len() <= 75, "{line:?}");
    }
    assert_eq!(escape("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
    assert_eq!(offset_text(-4 * 3600), "-0400");
    assert_eq!(offset_text(5 * 3600 + 45 * 60), "+0545");
}
