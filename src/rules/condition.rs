//! Evaluating a rule's CEL `when` against a signal.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::common::types::{CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::{Context, Env, Value};

use crate::config::CelExpr;
use crate::signal::{LabelSet, Signal};

/// CEL's standard library (its functions, macros and types), built once and shared:
/// `Context::default()` builds it anew, thousands of declarations, for each evaluation.
fn stdlib() -> Arc<Env> {
    static STDLIB: OnceLock<Arc<Env>> = OnceLock::new();
    STDLIB.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

/// A label set as a CEL map of strings that borrows the set's strings. Through CEL's
/// `Value` the map would be built twice (once as a `Value`, once converted for the
/// interpreter), with a copy of every string.
fn string_map(set: &LabelSet) -> Box<dyn Val + '_> {
    let map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = set
        .iter()
        .map(|(k, v)| {
            (
                CelMapKey::from(k),
                Box::new(CelString::from(v)) as Box<dyn Val>,
            )
        })
        .collect();
    Box::new(CelMap::from(map))
}

/// As [`string_map`], with only those of `keys` the set has (see `CelExpr::keys`).
fn string_map_of<'v>(set: &'v LabelSet, keys: &'v [String]) -> Box<dyn Val + 'v> {
    let map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = keys
        .iter()
        .filter_map(|k| {
            let v = set.get(k)?;
            Some((
                CelMapKey::from(k.as_str()),
                Box::new(CelString::from(v)) as Box<dyn Val>,
            ))
        })
        .collect();
    Box::new(CelMap::from(map))
}

/// The map to bind for `set`: whole, or with the keys the expression reads.
fn map_for<'v>(set: &'v LabelSet, keys: &'v Option<Box<[String]>>) -> Box<dyn Val + 'v> {
    match keys {
        Some(keys) => string_map_of(set, keys),
        None => string_map(set),
    }
}

/// Evaluate `when` with `labels`, `annotations`, `value`, `source` and `probe` bound (those
/// of them the expression reads).
pub fn evaluate_when(when: &CelExpr, signal: &Signal) -> Result<bool, String> {
    let mut context = Context::with_env(stdlib());
    let bind = |e: cel::SerializationError| format!("cannot bind signal fields: {e}");
    let [labels, annotations, value, source, probe] = when.uses;
    if labels {
        context.add_variable_as_val("labels", map_for(&signal.labels, &when.keys[0]));
    }
    if annotations {
        context.add_variable_as_val("annotations", map_for(&signal.annotations, &when.keys[1]));
    }
    if source {
        context.add_variable_from_value("source", signal.source.as_str());
    }
    if value {
        match signal.value {
            Some(v) => context.add_variable_from_value("value", v),
            None => context.add_variable_from_value("value", Value::Null),
        }
    }
    if probe {
        match &signal.probe {
            Some(probe) => context.add_variable("probe", probe).map_err(bind)?,
            None => context.add_variable_from_value("probe", Value::Null),
        }
    }
    match when.program.execute(&context) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "`when` {:?} gave {}, expected true or false",
            when.text,
            kind_of(&other)
        )),
        Err(e) => Err(format!("`when` {:?} failed: {e}", when.text)),
    }
}

/// A CEL value's kind in words (`the number 5`), for the error of a `when` that gave it.
fn kind_of(value: &Value) -> String {
    match value {
        Value::Int(n) => format!("the number {n}"),
        Value::UInt(n) => format!("the number {n}"),
        Value::Float(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::List(_) => "a list".into(),
        Value::Map(_) | Value::Struct(_) => "a map".into(),
        Value::Null => "null".into(),
        Value::Duration(_) => "a duration".into(),
        Value::Timestamp(_) => "a timestamp".into(),
        _ => "a value that is not true or false".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{ProbeResult, SourceKind};
    use chrono::Utc;

    fn probe(success: bool, latency_ms: f64, body: Option<serde_json::Value>) -> Signal {
        let mut s = Signal::new(
            SourceKind::Probe,
            std::collections::BTreeMap::from([("service".into(), "storage".into())]),
            Utc::now(),
        );
        s.probe = Some(Box::new(ProbeResult {
            success,
            status_code: Some(200),
            latency_ms,
            body,
            ..Default::default()
        }));
        s
    }

    #[test]
    fn probe_fields_and_labels() {
        let when = CelExpr::compile("!probe.success || probe.latency_ms > 2000.0").unwrap();
        assert!(!evaluate_when(&when, &probe(true, 10.0, None)).unwrap());
        assert!(evaluate_when(&when, &probe(false, 10.0, None)).unwrap());
        assert!(evaluate_when(&when, &probe(true, 2500.0, None)).unwrap());
        let when = CelExpr::compile("labels.service == 'storage' && source == 'probe'").unwrap();
        assert!(evaluate_when(&when, &probe(true, 1.0, None)).unwrap());
    }

    #[test]
    fn labels_and_annotations_are_maps_of_strings() {
        let mut signal = probe(true, 1.0, None);
        signal.annotations = std::sync::Arc::new(LabelSet::from(std::collections::BTreeMap::from(
            [("summary".to_string(), "disk full".to_string())],
        )));
        let holds = |expression: &str| {
            let when = CelExpr::compile(expression).unwrap();
            evaluate_when(&when, &signal).unwrap()
        };
        assert!(holds(
            "'service' in labels && labels['service'] == 'storage'"
        ));
        assert!(holds("has(labels.service) && !has(labels.region)"));
        assert!(holds("size(labels) == 1 && labels.all(k, labels[k] != '')"));
        assert!(holds("labels.service.startsWith('stor')"));
        assert!(holds("annotations.summary.contains('full')"));
        assert!(!holds("'region' in labels"));
        let when = CelExpr::compile("labels.region == 'x'").unwrap();
        assert!(
            evaluate_when(&when, &signal).is_err(),
            "a missing key is an error"
        );
    }

    /// A `when` that reads labels by keys written in it is given only those; every result,
    /// error included, is what the whole map gives.
    #[test]
    fn a_map_read_by_literal_keys_gives_what_the_whole_map_gives() {
        let mut signal = probe(true, 1.0, None);
        signal.labels = std::sync::Arc::new(LabelSet::from(std::collections::BTreeMap::from([
            ("service".to_string(), "storage".to_string()),
            ("region".to_string(), "eu-west".to_string()),
            ("team".to_string(), "".to_string()),
        ])));
        let narrowed = [
            ("labels.service == 'storage'", Some(vec!["service"])),
            (
                "labels['region'].startsWith('eu') && 'team' in labels",
                Some(vec!["region", "team"]),
            ),
            (
                "has(labels.zone) || !('zone' in labels)",
                Some(vec!["zone"]),
            ),
            ("labels.zone == 'a'", Some(vec!["zone"])),
            (
                "labels.service == 'x' || labels.service == 'storage'",
                Some(vec!["service"]),
            ),
            ("['a'].exists(x, x == labels.region)", Some(vec!["region"])),
            ("size(labels) == 3", None),
            ("labels == {'service': 'storage'}", None),
            ("labels.exists(k, k == 'team')", None),
            ("labels[labels.team + 'service'] == 'storage'", None),
            (
                "['x'].exists(labels, labels == 'x') && labels.service == 'storage'",
                None,
            ),
        ];
        for (expression, keys) in narrowed {
            let when = CelExpr::compile(expression).unwrap();
            let expected: Option<Vec<String>> =
                keys.map(|k| k.into_iter().map(String::from).collect());
            assert_eq!(
                when.keys[0].as_deref().map(<[String]>::to_vec),
                expected,
                "{expression}"
            );
            let mut whole = when.clone();
            whole.keys = [None, None];
            assert_eq!(
                evaluate_when(&when, &signal),
                evaluate_when(&whole, &signal),
                "{expression}"
            );
        }
        // Not read at all: an empty list, and the map is not bound (`uses`).
        let when = CelExpr::compile("labels.service == 'storage'").unwrap();
        assert_eq!(when.keys[1].as_deref(), Some(&[][..]));
        assert!(evaluate_when(&when, &signal).unwrap());
        let when = CelExpr::compile("labels.zone == 'a'").unwrap();
        let error = evaluate_when(&when, &signal).unwrap_err();
        assert!(error.contains("zone"), "{error}");
    }

    #[test]
    fn json_body() {
        let when = CelExpr::compile("probe.body.status != 'ok'").unwrap();
        let body = serde_json::json!({"status": "degraded"});
        assert!(evaluate_when(&when, &probe(true, 1.0, Some(body))).unwrap());
        let body = serde_json::json!({"status": "ok"});
        assert!(!evaluate_when(&when, &probe(true, 1.0, Some(body))).unwrap());
    }

    #[test]
    fn non_bool_and_missing_fields_are_errors() {
        // `check` refuses what is plainly not boolean; what only the signal shows is an
        // error when it runs, never a panic.
        assert!(CelExpr::compile("probe.latency_ms").is_err());
        let when = CelExpr::compile("probe.body.count").unwrap();
        let body = serde_json::json!({"count": 5});
        let error = evaluate_when(&when, &probe(true, 1.0, Some(body))).unwrap_err();
        assert!(
            error.contains("gave the number 5, expected true or false"),
            "{error}"
        );
        let when = CelExpr::compile("probe.body.missing == 1").unwrap();
        assert!(evaluate_when(&when, &probe(true, 1.0, Some(serde_json::json!({})))).is_err());
    }

    /// On a thread with a tokio worker's 2 MiB stack (where a reload parses the rules):
    /// brackets as deep as allowed parse (on the parser's own stack) and evaluate.
    #[test]
    fn the_deepest_when_allowed_compiles_and_runs_on_a_worker_stack() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let parens = format!("{}labels.a == 'b'{}", "(".repeat(32), ")".repeat(32));
                let lists = format!("{}1{}.size() > 0", "[".repeat(29), "]".repeat(29));
                let signal = Signal::new(
                    SourceKind::Alert,
                    [("a", "b")]
                        .into_iter()
                        .collect::<crate::signal::LabelSet>(),
                    chrono::Utc::now(),
                );
                for when in [parens, lists] {
                    let compiled = CelExpr::compile(&when).unwrap();
                    assert!(evaluate_when(&compiled, &signal).unwrap(), "{when}");
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
