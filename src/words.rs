//! Words for people: a count with its noun in the right number, for every message the
//! engine and the CLI print.

/// A count with its noun: "no incidents", "1 incident", "2 incidents". `one` and `many` are
/// the noun's two forms ("entry", "entries").
pub fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        0 => format!("no {many}"),
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_words() {
        assert_eq!(count(0, "incident", "incidents"), "no incidents");
        assert_eq!(count(1, "incident", "incidents"), "1 incident");
        assert_eq!(count(2, "incident", "incidents"), "2 incidents");
        assert_eq!(count(1, "entry", "entries"), "1 entry");
        assert_eq!(count(12, "entry", "entries"), "12 entries");
    }
}
