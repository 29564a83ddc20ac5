//! JSON request bodies decoded into our types, with errors in the API's words: which field
//! (`"contact.name"`, as the client wrote it) and what it should have been ("a string", "an
//! object"), never a type or field of ours (`struct ContactBody`, `i64`).
//!
//! serde says what went wrong in Rust's terms; [`describe`] rewrites its messages, and
//! `serde_path_to_error` gives the field.

use std::fmt;

use serde::de::DeserializeOwned;

/// Why a body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    NotUtf8,
    /// Not JSON at all (or nested deeper than the parser goes).
    NotJson(String),
    /// JSON, but not the shape the endpoint takes: the field and what it should be.
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotUtf8 => f.write_str("the body is not valid UTF-8"),
            DecodeError::NotJson(why) => write!(f, "the body is not JSON: {why}"),
            DecodeError::Invalid(why) => f.write_str(why),
        }
    }
}

/// Decode `body` into `T`; `root` names the whole (`"the body"`, `"the report"`) where an
/// error is about it rather than one of its fields (empty: the caller names it).
pub fn from_slice<T: DeserializeOwned>(body: &[u8], root: &str) -> Result<T, DecodeError> {
    if std::str::from_utf8(body).is_err() {
        return Err(DecodeError::NotUtf8);
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| classify(e, root))?;
    json.end()
        .map_err(|e| DecodeError::NotJson(e.to_string()))?;
    Ok(value)
}

/// As [`from_slice`], from a parsed value (one item of a batch).
pub fn from_value<T: DeserializeOwned>(
    value: &serde_json::Value,
    root: &str,
) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| classify(e, root))
}

fn classify(e: serde_path_to_error::Error<serde_json::Error>, root: &str) -> DecodeError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            DecodeError::Invalid(describe(&path, &inner.to_string(), root))
        }
        _ if path == "." => DecodeError::NotJson(inner.to_string()),
        _ => DecodeError::NotJson(format!("{inner} (in field {path:?})")),
    }
}

/// serde's message about the value at `path` (`.` for the whole, `contact.name`), in the
/// API's words. Also for other formats serde reads (HTML forms).
pub fn describe(path: &str, message: &str, root: &str) -> String {
    let message = strip_position(message);
    // What the message is about, as its first words ("field \"by\": "); nothing when the
    // caller names the whole itself (`root` empty: "alert 3: expected an object").
    let at = |path: &str| match path {
        "." | "" if root.is_empty() => String::new(),
        "." | "" => format!("{root}: "),
        path => format!("field {path:?}: "),
    };
    let child = |field: &str| match path {
        "." | "" => field.to_string(),
        path => format!("{path}.{field}"),
    };
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return format!("field {:?} is required", child(field));
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        // serde_path_to_error's path of an unknown field already ends in it.
        let parent = path
            .strip_suffix(field)
            .map(|p| p.trim_end_matches('.'))
            .unwrap_or(path);
        let known = names(expected.trim_start_matches(", expected "));
        let place = match parent {
            "." | "" => String::new(),
            parent => format!(" in {parent:?}"),
        };
        return match known.is_empty() {
            true => format!("unknown field {field:?}{place}: it takes no fields"),
            false => format!("unknown field {field:?}{place}: the fields are {known}"),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = names(expected.trim_start_matches(", expected "));
        return format!("{}{value:?} is not one of {known}", at(path));
    }
    if let Some(field) = message
        .strip_prefix("duplicate field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return format!("field {:?} is given twice", child(field));
    }
    for kind in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = message
            .strip_prefix(kind)
            .and_then(|r| r.rsplit_once(", expected "))
        {
            return format!(
                "{}expected {}, got {}",
                at(path),
                expected_words(expected),
                got_words(got)
            );
        }
    }
    format!("{}{}", at(path), message.replace('`', "\""))
}

/// serde_json ends a message with where in the text it happened; the field says it better.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => &message[..i],
        _ => message,
    }
}

/// serde's list of names (`` `a` or `b` ``, `` one of `a`, `b` ``) as `a, b`.
fn names(list: &str) -> String {
    list.trim_start_matches("one of ")
        .split(['`', ','])
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "or")
        .collect::<Vec<_>>()
        .join(", ")
}

/// What serde's "expected" says (a Rust type, or the `expecting` of a visitor), in JSON terms.
fn expected_words(expected: &str) -> String {
    let integer = [
        "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
    ];
    match expected {
        e if integer.contains(&e) => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a map" | "map" => "an object".into(),
        "a map of strings to strings" => "an object whose values are strings".into(),
        "a borrowed string" | "a string" | "string or map" => "a string".into(),
        "unit" => "null".into(),
        e if e.starts_with("struct ") || e.starts_with("enum ") || e.starts_with("tuple ") => {
            "an object".into()
        }
        e => e.replace('`', "\""),
    }
}

/// What serde says it got (`integer `5``, `string "x"`, `map`), in JSON terms. A string is
/// not echoed: it may be long, or a secret sent to the wrong field.
fn got_words(got: &str) -> String {
    let quoted = |prefix: &str| {
        got.strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_string())
    };
    if let Some(n) = quoted("integer ").or_else(|| quoted("floating point ")) {
        return format!("the number {n}");
    }
    if let Some(b) = quoted("boolean ") {
        return b;
    }
    match got {
        g if g.starts_with("string") || g.starts_with("char") => "a string".into(),
        "map" => "an object".into(),
        "sequence" => "an array".into(),
        "null" | "unit value" | "unit" | "Option value" => "null".into(),
        g => g.replace('`', "\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct ReportBody {
        by: String,
        severity: Option<i64>,
        contact: Option<ContactBody>,
        tags: Option<Vec<String>>,
        flag: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct ContactBody {
        name: String,
    }

    fn error(body: &str) -> String {
        from_slice::<ReportBody>(body.as_bytes(), "the body")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_field_and_what_it_should_be_in_json_terms() {
        for (body, says) in [
            (
                r#"{"by": 5}"#,
                "field \"by\": expected a string, got the number 5",
            ),
            (
                r#"{"by": "a", "severity": "x"}"#,
                "field \"severity\": expected an integer, got a string",
            ),
            (
                r#"{"by": "a", "severity": 1.5}"#,
                "field \"severity\": expected an integer, got the number 1.5",
            ),
            (
                r#"{"by": "a", "contact": "x"}"#,
                "field \"contact\": expected an object, got a string",
            ),
            (
                r#"{"by": "a", "contact": {"name": []}}"#,
                "field \"contact.name\": expected a string, got an array",
            ),
            (
                r#"{"by": "a", "tags": {}}"#,
                "field \"tags\": expected an array, got an object",
            ),
            (
                r#"{"by": "a", "tags": [1]}"#,
                "field \"tags[0]\": expected a string, got the number 1",
            ),
            (
                r#"{"by": "a", "flag": "yes"}"#,
                "field \"flag\": expected true or false, got a string",
            ),
            (r#"{}"#, "field \"by\" is required"),
            (
                r#"{"by": "a", "contact": {}}"#,
                "field \"contact.name\" is required",
            ),
            (
                r#"{"by": "a", "x": 1}"#,
                "unknown field \"x\": the fields are by, severity, contact, tags, flag",
            ),
            (
                r#"{"by": "a", "contact": {"name": "n", "fax": 1}}"#,
                "unknown field \"fax\" in \"contact\": the fields are name",
            ),
            ("5", "the body: expected an object, got the number 5"),
            (r#"{"by": "a", "by": "b"}"#, "field \"by\" is given twice"),
        ] {
            let got = error(body);
            assert_eq!(got, says, "{body}");
        }
    }

    #[test]
    fn text_that_is_not_json_says_so() {
        assert_eq!(
            from_slice::<ReportBody>(b"\xff", "the body").unwrap_err(),
            DecodeError::NotUtf8
        );
        assert!(error("{not json").starts_with("the body is not JSON: key must be a string"));
        assert!(error(r#"{"by": "a"} x"#).starts_with("the body is not JSON: trailing characters"));
    }
}
