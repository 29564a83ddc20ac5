//! Alertmanager-style label matchers: `service="storage"`, `region=~"china-.*"`, `env!="dev"`.
//!
//! Regexes are anchored at both ends, as in Prometheus and Alertmanager, and size-limited so a
//! hostile pattern cannot exhaust memory (the regex crate already runs in linear time).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Compiled regexes may use at most this much memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Groups and repetitions nest at most this deep. The regex crate allows 250, but
/// compiling recurses per level: `a` and 200 `*` (nested repetitions) overflow the 2 MiB
/// stack of a tokio worker thread, where a reload compiles the matchers, in a debug build.
const REGEX_NEST_LIMIT: u32 = 64;
/// Longest matcher accepted: its name and value together (the text is longer by its
/// operator, quotes and escapes).
const MAX_MATCHER_LEN: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    pub fn equal(name: &str, value: &str) -> Self {
        Matcher {
            name: name.to_string(),
            op: MatchOp::Equal,
            value: value.to_string(),
            regex: None,
        }
    }

    /// A matcher from its parts (as Alertmanager's API gives them), checked as if written.
    pub fn from_parts(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex: None,
        }
        .to_string()
        .parse()
    }

    /// Does a label value (empty when the label is absent, as in Prometheus) satisfy this?
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Match against a label lookup; a missing label counts as the empty string.
    pub fn matches<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matches_value(lookup(&self.name).unwrap_or(""))
    }
}

/// True when every matcher holds for the labels (plus any extra pseudo-labels).
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(|name| labels.get(name).map(String::as_str)))
}

impl FromStr for Matcher {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // The text may be up to twice as long: what it holds, printed back with its escapes.
        if text.len() > 2 * MAX_MATCHER_LEN + 16 {
            return Err(format!(
                "matcher is {} bytes long; at most {MAX_MATCHER_LEN} are allowed",
                text.len()
            ));
        }
        let expected = |why: &str| {
            format!(
                "invalid matcher {text:?}: {why}; expected name, one of = != =~ !~, and a quoted \
                 value, e.g. service=\"storage\" or region=~\"china-.*\""
            )
        };
        let trimmed = text.trim();
        if trimmed.starts_with('{') {
            return Err(format!(
                "invalid matcher {text:?}: write matchers without braces, one per list item, \
                 e.g. [ 'service=\"storage\"', 'region=~\"china-.*\"' ]"
            ));
        }
        let name_len = trimmed
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphabetic() || *c == '_' || (*i > 0 && c.is_ascii_digit())
            })
            .count();
        if name_len == 0 {
            return Err(expected("it does not start with a label name"));
        }
        let name = &trimmed[..name_len];
        let rest = trimmed[name_len..].trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else if rest.starts_with("~=") {
            return Err(expected("~= is not an operator (did you mean =~?)"));
        } else {
            return Err(expected(
                "no operator after the label name (label names are [a-zA-Z_][a-zA-Z0-9_]*)",
            ));
        };
        let rest = rest.trim();
        never_matching(text, name, op, rest)?;
        let value = if rest.starts_with('"') {
            parse_quoted(rest).map_err(|why| expected(&why))?
        } else if rest.contains(',') {
            return Err(expected(
                "the value must be quoted, and each matcher is a list item of its own",
            ));
        } else if rest.contains(['"', ' ', '{', '}']) {
            return Err(expected("the value must be quoted"));
        } else {
            rest.to_string()
        };
        if name.len() + value.len() > MAX_MATCHER_LEN {
            return Err(format!(
                "matcher is {} bytes long (its name and value); at most {MAX_MATCHER_LEN} are \
                 allowed",
                name.len() + value.len()
            ));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(compile_anchored(&value).map_err(|e| {
                    format!("invalid matcher {text:?}: bad regular expression: {e}")
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }
}

/// Matchers that parse but cannot mean what was written, and would never match what the
/// writer had in mind: `name==value` (the value would be `=value`), `name=!value`, a value in
/// single quotes (the quotes would be part of it), and `!~".*"` (every value matches `.*`).
fn never_matching(text: &str, name: &str, op: MatchOp, rest: &str) -> Result<(), String> {
    let bare = |v: &str| v.trim().trim_matches(['"', '\'']).to_string();
    let problem = match op {
        MatchOp::Equal if rest.starts_with('=') => Some(format!(
            "== is not an operator: write {name}=\"{}\"",
            bare(&rest[1..])
        )),
        MatchOp::Equal if rest.starts_with('!') => Some(format!(
            "=! is not an operator: write {name}!=\"{}\"",
            bare(&rest[1..])
        )),
        _ if rest.starts_with('\'') => Some(format!(
            "single quotes would be part of the value: write {name}{}\"{}\"",
            op.as_str(),
            bare(rest)
        )),
        MatchOp::NotRegex if matches!(rest, "\".*\"" | ".*") => Some(format!(
            "it can never match: every value, the empty one too, matches \".*\"; remove it \
             or write {name}!=\"\" for \"the label is set\""
        )),
        _ => None,
    };
    match problem {
        Some(why) => Err(format!("invalid matcher {text:?}: {why}")),
        None => Ok(()),
    }
}

/// Compile a regex anchored at both ends, with a memory limit.
pub fn compile_anchored(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .nest_limit(REGEX_NEST_LIMIT)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("pattern compiles to more than {limit} bytes; simplify it")
            }
            other => other
                .to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_string(),
        })
}

/// A double-quoted string with Go-style escapes (\" \\ \n \t), nothing after the closing quote.
fn parse_quoted(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text[1..].chars();
    loop {
        match chars.next() {
            None => return Err("the quoted value is not closed".into()),
            Some('"') => break,
            Some('\\') => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(c) => {
                    // Keep regex escapes such as \d intact.
                    out.push('\\');
                    out.push(c);
                }
                None => return Err("the quoted value is not closed".into()),
            },
            Some(c) => out.push(c),
        }
    }
    if !chars.as_str().trim().is_empty() {
        return Err("unexpected text after the closing quote".into());
    }
    Ok(out)
}

/// Written the way it is read (with the escapes [`parse_quoted`] knows), so what is printed
/// parses back to the same matcher; Rust's `{:?}` escapes (`\0`, `\u{b}`) would not (the
/// `matcher` fuzz target checks the round trip).
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        write!(f, "{}{}\"", self.name, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_four_operators() {
        let m: Matcher = r#"service="storage""#.parse().unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("service", MatchOp::Equal, "storage")
        );
        let m: Matcher = r#"region=~"china-.*""#.parse().unwrap();
        assert_eq!(m.op, MatchOp::Regex);
        let m: Matcher = r#"env!="dev""#.parse().unwrap();
        assert_eq!(m.op, MatchOp::NotEqual);
        let m: Matcher = r#"env !~ "dev|test""#.parse().unwrap();
        assert_eq!(m.op, MatchOp::NotRegex);
        let m: Matcher = "severity=3".parse().unwrap();
        assert_eq!(m.value, "3");
    }

    #[test]
    fn what_is_printed_parses_back_the_same() {
        for text in [
            r#"a="x\"y\\z""#,
            "a=\"x\\\"\0\0\u{b}\r\"", // the fuzzer's find: a="x\"<NUL><NUL><VT><CR>"
            r#"region=~"china-\d+""#,
            "note!=\"tab\there\nnewline\"",
            "service=storage",
        ] {
            let m: Matcher = text.parse().unwrap();
            let again: Matcher = m.to_string().parse().unwrap();
            assert_eq!(again, m, "{text:?} printed as {m}");
        }
    }

    #[test]
    fn regexes_are_anchored() {
        let m: Matcher = r#"region=~"china""#.parse().unwrap();
        assert!(m.matches_value("china"));
        assert!(!m.matches_value("china-east"));
        let m: Matcher = r#"severity=~"0|1|2""#.parse().unwrap();
        assert!(m.matches_value("1"));
        assert!(!m.matches_value("12"));
    }

    #[test]
    fn missing_label_is_empty() {
        let m: Matcher = r#"env!="dev""#.parse().unwrap();
        assert!(all_match(std::slice::from_ref(&m), &labels(&[])));
        let m: Matcher = r#"env="""#.parse().unwrap();
        assert!(all_match(&[m], &labels(&[("a", "b")])));
    }

    #[test]
    fn rejects_bad_matchers() {
        for bad in [
            "",
            "=\"x\"",
            "service",
            "service==\"x\"x",
            "service=\"unclosed",
            "region=~\"(\"",
            "9service=\"x\"",
        ] {
            assert!(bad.parse::<Matcher>().is_err(), "{bad} should fail");
        }
        let err = "region=~\"(\"".parse::<Matcher>().unwrap_err();
        assert!(err.contains("bad regular expression"), "{err}");
    }

    #[test]
    fn matchers_that_could_never_match_say_what_to_write() {
        for (bad, says) in [
            (
                "service==storage",
                "== is not an operator: write service=\"storage\"",
            ),
            (r#"service=="storage""#, "write service=\"storage\""),
            (
                "service=!dev",
                "=! is not an operator: write service!=\"dev\"",
            ),
            ("service='storage'", "single quotes"),
            ("env=~'prod'", "write env=~\"prod\""),
            (r#"env!~".*""#, "can never match"),
            (r#"{service="storage"}"#, "without braces"),
            (r#"service~="storage""#, "did you mean =~?"),
            ("service=a,region=b", "a list item of its own"),
        ] {
            let err = bad.parse::<Matcher>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        // What they look like, done right, parses.
        for good in [r#"service="storage""#, r#"env!~"dev|test""#, r#"env!="""#] {
            assert!(good.parse::<Matcher>().is_ok(), "{good}");
        }
    }

    #[test]
    fn huge_regex_is_refused() {
        let pattern = "region=~\"(a{1000}){1000}\"".to_string();
        let err = pattern.parse::<Matcher>().unwrap_err();
        assert!(err.contains("bad regular expression"), "{err}");
    }

    /// The limit holds for the name and value, not the text: the longest matcher, all
    /// escapes when printed, prints back to one that parses (printed, a matcher can grow
    /// past the limit: 3,508 bytes can print as 4,771).
    #[test]
    fn the_longest_matcher_prints_back_to_one_that_parses() {
        let longest = format!("a={}", "\\".repeat(4095));
        let matcher: Matcher = longest.parse().unwrap();
        let printed = matcher.to_string();
        assert!(printed.len() > 8000, "{}", printed.len());
        assert_eq!(printed.parse::<Matcher>().unwrap(), matcher);
        let err = format!("a={}", "\\".repeat(4096))
            .parse::<Matcher>()
            .unwrap_err();
        assert!(err.contains("at most 4096"), "{err}");
        let err = format!("a=\"{}\"", "x".repeat(9000))
            .parse::<Matcher>()
            .unwrap_err();
        assert!(err.contains("at most 4096"), "{err}");
    }

    /// On a thread with a tokio worker's 2 MiB stack: nesting past the limit is refused,
    /// and the deepest nesting allowed compiles.
    #[test]
    fn deeply_nested_regexes_are_refused_before_they_can_exhaust_the_stack() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let stars = format!("region=~\"china-.{}\"", "*".repeat(200));
                let err = stars.parse::<Matcher>().unwrap_err();
                assert!(err.contains("nested"), "{err}");
                let deepest = format!("region=~\"{}a{}\"", "(".repeat(30), ")*".repeat(30));
                assert!(deepest.parse::<Matcher>().is_ok());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
