//! What a rule's `when` can be seen to get wrong before it ever runs: a field the signal
//! does not have (`probe.latncy_ms`, `source.kind`), and a result that is plainly not true
//! or false (`probe.latency_ms`, `'down'`, `value * 2`). Either would fail on every signal
//! the rule matches, so the rule would never fire.

use cel::common::ast::operators::{
    ADD, CONDITIONAL, DIVIDE, EQUALS, GREATER, GREATER_EQUALS, IN, INDEX, LESS, LESS_EQUALS,
    LOGICAL_AND, LOGICAL_NOT, LOGICAL_OR, MODULO, MULTIPLY, NEGATE, NOT_EQUALS, NOT_STRICTLY_FALSE,
    OPT_SELECT, SUBSTRACT,
};
use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::IdedExpr;

/// The fields of `probe` (`ProbeResult`, as the signal binds it).
pub const PROBE_FIELDS: [&str; 6] = [
    "success",
    "status_code",
    "latency_ms",
    "body",
    "cert_expiry_days",
    "error",
];

/// The closest of `names` to `name`, when it is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(name, n), *n))
        .filter(|(distance, n)| *distance <= 2.max(n.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, n)| n)
}

fn suggestion(name: &str, names: &[&str]) -> String {
    did_you_mean(name, names)
        .map(|n| format!(" (did you mean {n}?)"))
        .unwrap_or_default()
}

/// What a field read from one of the variables is, or why it cannot be read.
fn field_of(root: &str, field: &str) -> Result<(), String> {
    match root {
        "probe" if !PROBE_FIELDS.contains(&field) => Err(format!(
            "probe has no field {field:?}{}; its fields are {}",
            suggestion(field, &PROBE_FIELDS),
            PROBE_FIELDS.join(", ")
        )),
        "value" => Err(format!(
            "value is a number (an alert's value), it has no field {field:?}; the variables \
             with fields are labels, annotations and probe"
        )),
        "source" => Err(format!(
            "source is a string (probe, alert, cri, heartbeat or tocsin), it has no field \
             {field:?}; the variables with fields are labels, annotations and probe"
        )),
        _ => Ok(()),
    }
}

/// A field of a field that can have none: `labels.x.y` (a label is a string),
/// `probe.latency_ms.x`. `probe.body` is JSON and may have any.
fn field_of_field(root: &str, first: &str, field: &str) -> Result<(), String> {
    let what = match (root, first) {
        ("labels" | "annotations", _) => "a string",
        ("probe", "success") => "true or false",
        ("probe", "status_code" | "latency_ms" | "cert_expiry_days") => "a number",
        ("probe", "error") => "a string",
        _ => return Ok(()),
    };
    Err(format!(
        "{root}.{first} is {what}, it has no field {field:?}"
    ))
}

/// The variable `expr` names, unless a comprehension around it binds that name.
fn root<'a>(expr: &'a IdedExpr, bound: &[&str]) -> Option<&'a str> {
    match &expr.expr {
        Expr::Ident(name) if !bound.contains(&name.as_str()) => Some(name),
        _ => None,
    }
}

/// `root.field` spelled `root.field`, `root["field"]` or `root.?field`.
fn selection<'a>(expr: &'a IdedExpr, bound: &[&str]) -> Option<(&'a str, &'a str)> {
    match &expr.expr {
        Expr::Select(select) if !select.test => {
            Some((root(&select.operand, bound)?, select.field.as_str()))
        }
        Expr::Call(call) if call.target.is_none() => {
            match (call.func_name.as_str(), &call.args[..]) {
                (INDEX | OPT_SELECT, [target, key]) => match &key.expr {
                    Expr::Literal(LiteralValue::String(key)) => {
                        Some((root(target, bound)?, key.inner()))
                    }
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// Every field read from `labels`, `annotations`, `value`, `source` and `probe` exists.
pub(super) fn check_fields(expr: &IdedExpr) -> Result<(), String> {
    fn walk(expr: &IdedExpr, bound: &[&str]) -> Result<(), String> {
        if let Some((root, field)) = selection(expr, bound) {
            field_of(root, field)?;
        }
        // `has(probe.x)`: a presence test of a field that can never be present.
        if let Expr::Select(select) = &expr.expr {
            if let (true, Some(root)) = (select.test, root(&select.operand, bound)) {
                field_of(root, &select.field)?;
            }
        }
        match &expr.expr {
            Expr::Select(select) => {
                if let Some((root, first)) = selection(&select.operand, bound) {
                    field_of_field(root, first, &select.field)?;
                }
                walk(&select.operand, bound)
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    walk(target, bound)?;
                }
                call.args.iter().try_for_each(|a| walk(a, bound))
            }
            Expr::Comprehension(c) => {
                walk(&c.iter_range, bound)?;
                let mut inner: Vec<&str> = bound.to_vec();
                inner.extend([c.iter_var.as_str(), c.accu_var.as_str()]);
                inner.extend(c.iter_var2.as_deref());
                [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .try_for_each(|part| walk(part, &inner))
            }
            Expr::List(list) => list.elements.iter().try_for_each(|e| walk(e, bound)),
            Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => walk(&e.key, bound).and_then(|_| walk(&e.value, bound)),
                EntryExpr::StructField(f) => walk(&f.value, bound),
            }),
            Expr::Struct(s) => s.entries.iter().try_for_each(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => walk(&e.key, bound).and_then(|_| walk(&e.value, bound)),
                EntryExpr::StructField(f) => walk(&f.value, bound),
            }),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }
    walk(expr, &[])
}

/// What an expression gives, as far as its shape tells.
enum Kind {
    Bool,
    /// Plainly not true or false: what it is, in words.
    Other(&'static str),
    /// Depends on the signal (`probe.body.ok`), or on what this check does not follow.
    Unknown,
}

fn kind(expr: &IdedExpr) -> Kind {
    match selection(expr, &[]) {
        Some(("labels" | "annotations", _)) => return Kind::Other("a string"),
        Some(("probe", "success")) => return Kind::Bool,
        Some(("probe", "status_code" | "latency_ms" | "cert_expiry_days")) => {
            return Kind::Other("a number")
        }
        Some(("probe", "error")) => return Kind::Other("a string"),
        Some(_) => return Kind::Unknown,
        None => {}
    }
    match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => Kind::Bool,
        Expr::Literal(LiteralValue::String(_)) => Kind::Other("a string"),
        Expr::Literal(LiteralValue::Bytes(_)) => Kind::Other("bytes"),
        Expr::Literal(LiteralValue::Null) => Kind::Other("null"),
        Expr::Literal(_) => Kind::Other("a number"),
        Expr::List(_) => Kind::Other("a list"),
        Expr::Map(_) => Kind::Other("a map"),
        Expr::Ident(name) => match name.as_str() {
            "labels" | "annotations" => Kind::Other("a map"),
            "value" => Kind::Other("a number"),
            "source" => Kind::Other("a string"),
            "probe" => Kind::Other("a map (the probe's result)"),
            _ => Kind::Unknown,
        },
        Expr::Select(select) if select.test => Kind::Bool,
        Expr::Select(_) => Kind::Unknown,
        Expr::Call(call) => match call.func_name.as_str() {
            LOGICAL_AND | LOGICAL_OR | LOGICAL_NOT | NOT_STRICTLY_FALSE | EQUALS | NOT_EQUALS
            | LESS | LESS_EQUALS | GREATER | GREATER_EQUALS | IN | "contains" | "startsWith"
            | "endsWith" | "matches" => Kind::Bool,
            ADD => Kind::Other("a number, a string or a list (the result of +)"),
            SUBSTRACT | MULTIPLY | DIVIDE | MODULO | NEGATE => {
                Kind::Other("a number (the result of arithmetic)")
            }
            "size" | "int" | "uint" | "double" => Kind::Other("a number"),
            "string" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring"
            | "charAt" | "join" => Kind::Other("a string"),
            "split" => Kind::Other("a list"),
            "timestamp" => Kind::Other("a timestamp"),
            "duration" => Kind::Other("a duration"),
            CONDITIONAL => match (kind(&call.args[1]), kind(&call.args[2])) {
                (Kind::Other(what), Kind::Other(_)) => Kind::Other(what),
                (Kind::Bool, Kind::Bool) => Kind::Bool,
                _ => Kind::Unknown,
            },
            _ => Kind::Unknown,
        },
        // all, exists: a boolean accumulator; exists_one: a count compared to 1; map and
        // filter: a list.
        Expr::Comprehension(c) => match &c.result.expr {
            Expr::Ident(name) if *name == c.accu_var => kind(&c.accu_init),
            _ => kind(&c.result),
        },
        Expr::Struct(_) | Expr::Unspecified => Kind::Unknown,
    }
}

/// The expression as a whole gives true or false (or may: `probe.body.ok`).
pub(super) fn check_boolean(expr: &IdedExpr) -> Result<(), String> {
    match kind(expr) {
        Kind::Other(what) => Err(format!(
            "it gives {what}, not true or false; compare it (==, !=, <, >, in) or test it \
             (has(), startsWith(), exists()), e.g. \"probe.latency_ms > 2000.0\" or \
             \"labels.env == 'prod'\""
        )),
        Kind::Bool | Kind::Unknown => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Result<(), String> {
        check_fields(cel::Program::compile(text).unwrap().expression())
    }

    fn boolean(text: &str) -> Result<(), String> {
        check_boolean(cel::Program::compile(text).unwrap().expression())
    }

    #[test]
    fn fields_the_signal_has_pass() {
        for ok in [
            "!probe.success || probe.latency_ms > 2000.0",
            "probe.cert_expiry_days != null && probe.cert_expiry_days < 14.0",
            "probe.body.status != 'ok' && probe.body.items.size() > 0",
            "labels.anything == 'x' && annotations['summary'].contains('disk')",
            "has(probe.error) && probe.status_code == 500",
            "value > 0.5 && source == 'alert'",
            // A comprehension's variable is its own, whatever its name.
            "[{'x': 1}].exists(probe, probe.x == 1)",
        ] {
            assert_eq!(fields(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn fields_the_signal_lacks_are_named_with_those_it_has() {
        for (bad, says) in [
            ("probe.latncy_ms > 2000.0", "probe has no field \"latncy_ms\" (did you mean latency_ms?); its fields are success, status_code, latency_ms, body, cert_expiry_days, error"),
            ("has(probe.sucess)", "did you mean success?"),
            ("probe['statuscode'] == 500", "did you mean status_code?"),
            ("value.x > 1", "value is a number"),
            ("source.kind == 'probe'", "source is a string"),
            ("labels.env.name == 'prod'", "labels.env is a string, it has no field \"name\""),
            ("probe.latency_ms.max > 1", "probe.latency_ms is a number"),
            ("labels.exists(k, probe.latncy_ms > 1.0)", "latncy_ms"),
        ] {
            let err = fields(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_when_that_is_plainly_not_boolean_is_refused() {
        for (bad, says) in [
            ("probe.latency_ms", "a number"),
            ("'down'", "a string"),
            ("42", "a number"),
            ("labels.env", "a string"),
            ("value * 2.0", "arithmetic"),
            ("size(labels)", "a number"),
            ("labels", "a map"),
            ("labels.filter(k, k == 'x')", "a list"),
            ("probe.success ? 'a' : 'b'", "a string"),
        ] {
            let err = boolean(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
        for ok in [
            "probe.success",
            "probe.body.ok",
            "labels.all(k, k != '')",
            "labels.exists_one(k, k == 'a')",
            "probe.success ? probe.latency_ms > 1.0 : true",
            "has(labels.x)",
            "'a' in labels",
        ] {
            assert_eq!(boolean(ok), Ok(()), "{ok}");
        }
    }
}
