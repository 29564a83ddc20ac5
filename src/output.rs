//! A command's output on stdout. A reader that goes away (`tocsin incidents list | head -1`)
//! ends the output quietly: the rest is not written, and the command ends with the status it
//! would have had. (`println!` panics there, with a backtrace hint.)

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout took no more: nothing else is written.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `text` to stdout, at once.
pub fn write(text: &str) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != ErrorKind::BrokenPipe {
            eprintln!("tocsin: cannot write the output: {e}");
        }
    }
}

/// `println!` through [`write`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Rows under a header, each column as wide as its widest cell and two spaces apart, for a
/// person to read; no borders, and no spaces at the ends of lines.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row.clone());
    }
    let last = header.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
    }
    table.trim_fmt() + "\n"
}

/// How the CLI shows a time: in one zone, to the second, with the zone named
/// ("2026-01-05 04:00:00 EST").
#[derive(Clone, Debug)]
pub enum Times {
    /// The UTC the API speaks (`--utc`).
    Utc,
    /// A zone of the time zone database: `$TZ`, else the system's.
    Zone(chrono_tz::Tz),
    /// A zone the database does not name (a POSIX `$TZ` such as `XYZ+3`): chrono's reading
    /// of it, shown with its offset.
    Local,
}

impl Times {
    /// The reader's zone: `$TZ` (as the C library reads it, a leading `:` allowed), else the
    /// system's zone, else UTC.
    pub fn local() -> Times {
        let name = match std::env::var("TZ") {
            Ok(tz) if !tz.trim().is_empty() => tz.trim().trim_start_matches(':').to_string(),
            _ => match iana_time_zone::get_timezone() {
                Ok(name) => name,
                Err(_) => return Times::Utc,
            },
        };
        if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
            return Times::Zone(tz);
        }
        // A path into the zone database ("/usr/share/zoneinfo/Europe/Paris").
        if let Some((_, tail)) = name.split_once("zoneinfo/") {
            if let Ok(tz) = tail.parse::<chrono_tz::Tz>() {
                return Times::Zone(tz);
            }
        }
        Times::Local
    }

    /// `t` in this zone: "2026-01-05 04:00:00 EST".
    pub fn show(&self, t: chrono::DateTime<chrono::Utc>) -> String {
        const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
        match self {
            Times::Utc => format!("{} UTC", t.format(FORMAT)),
            Times::Zone(tz) => t
                .with_timezone(tz)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string(),
            Times::Local => t
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string(),
        }
    }

    /// An RFC 3339 time from the API, shown in this zone; anything else as it is.
    pub fn show_text(&self, text: &str) -> String {
        match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => self.show(t.with_timezone(&chrono::Utc)),
            Err(_) => text.to_string(),
        }
    }
}

/// The zone this command shows times in, chosen once from `--utc` at start.
static TIMES: std::sync::OnceLock<Times> = std::sync::OnceLock::new();

/// Show times in UTC (`--utc`) or in the reader's zone, for the rest of the command.
pub fn choose_times(utc: bool) {
    let _ = TIMES.set(if utc { Times::Utc } else { Times::local() });
}

/// The zone chosen by [`choose_times`] (the reader's, when nothing was chosen).
pub fn times() -> &'static Times {
    // Unit tests read UTC, whatever the zone of the machine that runs them.
    TIMES.get_or_init(|| {
        if cfg!(test) {
            Times::Utc
        } else {
            Times::local()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_under_the_header() {
        let out = table(
            &["ID", "TITLE"],
            &[
                vec!["12".into(), "storage down".into()],
                vec!["3".into(), "slow".into()],
            ],
        );
        assert_eq!(out, "ID  TITLE\n12  storage down\n3   slow\n");
    }

    #[test]
    fn times_are_shown_in_the_zone_to_the_second_with_its_name() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00.250Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let new_york = Times::Zone(chrono_tz::America::New_York);
        assert_eq!(new_york.show(t), "2026-01-05 04:00:00 EST");
        assert_eq!(Times::Utc.show(t), "2026-01-05 09:00:00 UTC");
        // Summer time is named as such.
        assert_eq!(
            new_york.show_text("2026-07-01T12:00:00Z"),
            "2026-07-01 08:00:00 EDT"
        );
        assert_eq!(new_york.show_text("-"), "-");
    }
}
