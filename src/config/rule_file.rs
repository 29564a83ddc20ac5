//! The typed shape of a rule file (`rules/*.yaml`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{de, Deserialize, Deserializer};

use super::duration::Duration;
use super::matcher::Matcher;
use super::types::labels;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroupConfig {
    pub name: String,
    #[serde(default)]
    pub rules: Vec<serde_yaml::Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matchers: Vec<Matcher>,
    #[serde(default)]
    pub when: Option<CelExpr>,
    #[serde(rename = "for", default)]
    pub for_: Option<Duration>,
    #[serde(default)]
    pub failures: Option<u32>,
    #[serde(default)]
    pub clear_for: Option<Duration>,
    #[serde(default)]
    pub successes: Option<u32>,
    pub impact: ImpactConfig,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub summary: Option<String>,
    /// Annotations the rule adds to each impact it opens (`runbook_url`, `description`, …):
    /// templates over the signal's `labels`, `annotations` and `value`, like `summary`.
    #[serde(default, deserialize_with = "super::types::labels")]
    pub annotations: BTreeMap<String, String>,
    /// `separate`: the rule's impacts never join another incident, nor others theirs.
    #[serde(default)]
    pub correlation: Option<RuleCorrelation>,
    /// An availability indicator: while one of its impacts is active, its service and
    /// region count bad minutes, else good ones (see `incident::sla`).
    #[serde(default)]
    pub availability: bool,
    /// The troubleshooting guide of the incidents this rule opens: wins over their
    /// services' (`catalog.services[].tsg`).
    #[serde(default)]
    pub tsg: Option<super::TsgConfig>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleCorrelation {
    Separate,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ImpactKind {
    Outage,
    Degradation,
    Latency,
    DataLoss,
    DataCorruption,
    Security,
    Other,
}

impl ImpactKind {
    /// Kinds that make an incident a disaster (Sev 0) when two or more customers are hit.
    pub fn is_disaster_kind(self) -> bool {
        matches!(
            self,
            ImpactKind::DataLoss | ImpactKind::DataCorruption | ImpactKind::Security
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImpactKind::Outage => "outage",
            ImpactKind::Degradation => "degradation",
            ImpactKind::Latency => "latency",
            ImpactKind::DataLoss => "data_loss",
            ImpactKind::DataCorruption => "data_corruption",
            ImpactKind::Security => "security",
            ImpactKind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<ImpactKind> {
        serde_yaml::from_str(text).ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BusinessImpact {
    High,
    Low,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactConfig {
    #[serde(default = "default_kind")]
    pub kind: ImpactKind,
    #[serde(default)]
    pub sla_breach: SlaBreach,
    #[serde(default)]
    pub business_impact: Option<BusinessImpact>,
    /// The incident is at least this severe (0 is worst).
    #[serde(default)]
    pub severity: Option<Severity>,
}

/// Whether an impact breaches its service's SLA: declared (`true`, `false`) or measured
/// (`auto`: once its service's error-budget burn rates in its region pass
/// `classification.sla.burn`, see `incident::sla`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SlaBreach {
    #[default]
    No,
    Yes,
    Auto,
}

impl SlaBreach {
    /// Breaches from the start (`true`).
    pub fn declared(self) -> bool {
        self == SlaBreach::Yes
    }
}

impl From<bool> for SlaBreach {
    fn from(yes: bool) -> Self {
        if yes {
            SlaBreach::Yes
        } else {
            SlaBreach::No
        }
    }
}

impl<'de> Deserialize<'de> for SlaBreach {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl de::Visitor<'_> for Visit {
            type Value = SlaBreach;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or auto")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<SlaBreach, E> {
                Ok(v.into())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SlaBreach, E> {
                match v {
                    "auto" => Ok(SlaBreach::Auto),
                    other => Err(E::custom(format!(
                        "invalid sla_breach {other:?}: expected true, false or auto"
                    ))),
                }
            }
        }
        d.deserialize_any(Visit)
    }
}

fn default_kind() -> ImpactKind {
    ImpactKind::Other
}

/// LSI severity 0 (disaster) to 4 (not urgent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Severity(pub u8);

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if (0..=4).contains(&n) {
            Ok(Severity(n as u8))
        } else {
            Err(de::Error::custom(format!(
                "invalid severity {n}: expected 0 (disaster) to 4 (not urgent)"
            )))
        }
    }
}

/// Variables a `when` expression may use.
pub const CEL_VARIABLES: [&str; 5] = ["labels", "annotations", "value", "source", "probe"];
const MAX_CEL_LEN: usize = 4096;
const MAX_CEL_NESTING: usize = 32;
/// How deep a `when` may nest, operators, calls and brackets together: evaluation recurses
/// once per level, on the engine's worker threads (2 MiB stacks).
const MAX_CEL_DEPTH: usize = 32;
/// Operator characters a `when` may hold outside its strings (see `CelExpr::compile`).
const MAX_CEL_OPERATORS: usize = 512;

/// The stack the CEL parser runs on. It recurses through a dozen grammar rules for each
/// bracket level: in a debug build 12 nested `[` overflow the 2 MiB of a tokio worker
/// thread (where a reload loads the rules), and 32 nested `(` need more than 4 MiB.
const PARSER_STACK: usize = 16 << 20;

/// Run `parse` on a thread of its own with [`PARSER_STACK`], whatever thread loads the
/// config (a few tens of microseconds per `when`, once per load).
fn on_parser_stack<T: Send>(parse: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("cel-parser".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, parse)
            .map_err(|e| format!("cannot start a thread to parse a when: {e}"))?;
        parser
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The operator characters of `text` outside its string literals.
fn operator_characters(text: &str) -> usize {
    let mut count = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if ".!-+*/%<>=&|?".contains(c) => count += 1,
            None => {}
        }
    }
    count
}

/// A compiled CEL condition over a signal.
#[derive(Clone)]
pub struct CelExpr {
    pub text: String,
    pub program: Arc<cel::Program>,
    /// Which of [`CEL_VARIABLES`] the expression reads, in that order: only those are
    /// bound when it runs (binding the labels map is most of a `when`'s cost).
    pub uses: [bool; 5],
    /// For `labels` and `annotations`: the keys the expression reads, when it reads that map
    /// only by keys written in it (see [`literal_keys`]); the map is then bound with those
    /// keys alone. `None`: it uses the whole map.
    pub keys: [Option<Box<[String]>>; 2],
}

impl fmt::Debug for CelExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CelExpr({:?})", self.text)
    }
}

impl CelExpr {
    pub fn compile(text: &str) -> Result<CelExpr, String> {
        if text.len() > MAX_CEL_LEN {
            return Err(format!(
                "when is {} bytes long; at most {MAX_CEL_LEN} are allowed",
                text.len()
            ));
        }
        // The parser recurses on nesting; refuse deep nesting before it can exhaust the stack.
        let mut depth = 0usize;
        for c in text.chars() {
            match c {
                '(' | '[' | '{' => {
                    depth += 1;
                    if depth > MAX_CEL_NESTING {
                        return Err(format!(
                            "when nests brackets more than {MAX_CEL_NESTING} deep"
                        ));
                    }
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        let operators = text.matches("&&").count() + text.matches("||").count();
        if operators > 64 {
            return Err("when has more than 64 && or || operators; split the rule".into());
        }
        // The parser recurses on chains of operators too (`1 + 1 + …`): bound them before it
        // runs. What parses is then held to MAX_CEL_DEPTH (see `check_expression`).
        if operator_characters(text) > MAX_CEL_OPERATORS {
            return Err(format!(
                "when has more than {MAX_CEL_OPERATORS} operator characters \
                 (. ! - + * / % < > = & | ?); split the rule"
            ));
        }
        let program = on_parser_stack(|| {
            let program = cel::Program::compile(text).map_err(|e| {
                let detail = e.to_string();
                let first = detail
                    .lines()
                    .next()
                    .unwrap_or("syntax error")
                    .trim()
                    .to_string();
                format!("invalid CEL in when {text:?}: {first}")
            })?;
            // A program refused here is dropped here too: dropping it recurses as deep.
            check_expression(program.expression(), text)?;
            super::when_check::check_fields(program.expression())
                .and_then(|()| super::when_check::check_boolean(program.expression()))
                .map_err(|why| format!("invalid when {text:?}: {why}"))?;
            Ok(program)
        })?;
        let references = program.references();
        let uses = CEL_VARIABLES.map(|name| references.has_variable(name));
        let keys = ["labels", "annotations"].map(|map| literal_keys(program.expression(), map));
        Ok(CelExpr {
            text: text.to_string(),
            uses,
            keys,
            program: Arc::new(program),
        })
    }
}

/// The keys of the map variable `map` that `expr` reads, when it reads it only by a key
/// written in the expression: `map.k`, `has(map.k)`, `map["k"]`, `map.?k`, `map[?"k"]`,
/// `"k" in map`. Each of these gives the same on a map holding only those keys as on the
/// whole map, so the whole need not be built (~5 labels, each boxed, for every new alert;
/// a rule's `when` most often reads one or two). `None` when the expression uses the map
/// any other way (its size, its keys, equality, a key computed when it runs, the map passed
/// to a function) or a comprehension binds a variable of that name.
fn literal_keys(expr: &cel::IdedExpr, map: &str) -> Option<Box<[String]>> {
    use cel::common::ast::operators::{IN, INDEX, OPT_INDEX, OPT_SELECT};
    use cel::common::ast::{EntryExpr, Expr, LiteralValue};
    fn is_map(expr: &cel::IdedExpr, map: &str) -> bool {
        matches!(&expr.expr, Expr::Ident(name) if name == map)
    }
    fn literal(expr: &cel::IdedExpr) -> Option<&str> {
        match &expr.expr {
            Expr::Literal(LiteralValue::String(s)) => Some(s.inner()),
            _ => None,
        }
    }
    /// Adds the keys read under `expr` to `keys`; false on any other use of the map.
    fn visit(expr: &cel::IdedExpr, map: &str, keys: &mut Vec<String>) -> bool {
        match &expr.expr {
            Expr::Ident(name) => name != map,
            Expr::Select(select) if is_map(&select.operand, map) => {
                keys.push(select.field.clone());
                true
            }
            Expr::Select(select) => visit(&select.operand, map, keys),
            Expr::Call(call) => {
                let by_key = match (call.func_name.as_str(), call.args.as_slice()) {
                    (INDEX | OPT_INDEX | OPT_SELECT, [target, key]) if is_map(target, map) => {
                        literal(key)
                    }
                    (IN, [key, target]) if is_map(target, map) => literal(key),
                    _ => None,
                };
                if call.target.is_none() {
                    if let Some(key) = by_key {
                        keys.push(key.to_string());
                        return true;
                    }
                }
                call.target.iter().all(|t| visit(t, map, keys))
                    && call.args.iter().all(|a| visit(a, map, keys))
            }
            Expr::Comprehension(c) => {
                let binds = [Some(&c.iter_var), Some(&c.accu_var), c.iter_var2.as_ref()];
                !binds.into_iter().flatten().any(|name| name == map)
                    && [
                        &c.iter_range,
                        &c.accu_init,
                        &c.loop_cond,
                        &c.loop_step,
                        &c.result,
                    ]
                    .into_iter()
                    .all(|part| visit(part, map, keys))
            }
            Expr::List(list) => list.elements.iter().all(|e| visit(e, map, keys)),
            Expr::Map(literal) => literal.entries.iter().all(|e| visit_entry(e, map, keys)),
            Expr::Struct(literal) => literal.entries.iter().all(|e| visit_entry(e, map, keys)),
            Expr::Literal(_) | Expr::Unspecified => true,
        }
    }
    /// As `visit`, for an entry of a map or struct literal.
    fn visit_entry(
        entry: &cel::common::ast::IdedEntryExpr,
        map: &str,
        keys: &mut Vec<String>,
    ) -> bool {
        match &entry.expr {
            EntryExpr::MapEntry(e) => visit(&e.key, map, keys) && visit(&e.value, map, keys),
            EntryExpr::StructField(f) => visit(&f.value, map, keys),
        }
    }
    let mut keys = Vec::new();
    if !visit(expr, map, &mut keys) {
        return None;
    }
    keys.sort_unstable();
    keys.dedup();
    Some(keys.into_boxed_slice())
}

/// Comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) a `when` may hold.
const MAX_COMPREHENSIONS: usize = 8;

/// What a `when` must not hold.
enum Problem {
    /// A name that is neither one of [`CEL_VARIABLES`] nor the variable of the comprehension
    /// it is in.
    Unknown(String),
    Cost(&'static str),
}

/// Walk a `when`'s syntax tree: every name is one of [`CEL_VARIABLES`], or the variable of
/// the comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) it is used in; and
/// comprehensions stay cheap. They are CEL's only loops. One on its own costs its input's size
/// times its body; one inside another (in its range or its body) multiplies, and a chain of
/// `map`s that doubles what it is handed (`['a'].map(x, x + x).map(x, x + x)…`, forty times in
/// 600 bytes) builds a terabyte string and takes the engine down. So none may contain
/// another, and a `when` holds at most [`MAX_COMPREHENSIONS`]: evaluation stays linear in the
/// signal.
fn check_expression(expr: &cel::IdedExpr, text: &str) -> Result<(), String> {
    use cel::common::ast::{EntryExpr, Expr};
    /// `bound`: the names the enclosing comprehension binds (none outside one).
    fn walk(
        expr: &cel::IdedExpr,
        inside: bool,
        bound: &[&str],
        count: &mut usize,
        depth: usize,
    ) -> Result<(), Problem> {
        if depth > MAX_CEL_DEPTH {
            return Err(Problem::Cost(
                "it nests more than 32 deep (operators, calls and brackets together)",
            ));
        }
        let depth = depth + 1;
        match &expr.expr {
            Expr::Comprehension(c) => {
                if inside {
                    return Err(Problem::Cost(
                        "a comprehension (all, exists, exists_one, map, filter) inside \
                                another one, in its list or its body",
                    ));
                }
                *count += 1;
                if *count > MAX_COMPREHENSIONS {
                    return Err(Problem::Cost(
                        "more than 8 comprehensions (all, exists, exists_one, map, filter)",
                    ));
                }
                // The list it runs over is outside the loop: its variables are not bound there.
                walk(&c.iter_range, true, bound, count, depth)?;
                let mut inner: Vec<&str> = vec![&c.iter_var, &c.accu_var];
                inner.extend(c.iter_var2.as_deref());
                for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    walk(part, true, &inner, count, depth)?;
                }
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    walk(target, inside, bound, count, depth)?;
                }
                for arg in &call.args {
                    walk(arg, inside, bound, count, depth)?;
                }
            }
            Expr::List(list) => {
                for element in &list.elements {
                    walk(element, inside, bound, count, depth)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        walk(&e.key, inside, bound, count, depth)?;
                        walk(&e.value, inside, bound, count, depth)?;
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        walk(&f.value, inside, bound, count, depth)?;
                    }
                }
            }
            Expr::Select(select) => walk(&select.operand, inside, bound, count, depth)?,
            Expr::Ident(name) => {
                // `@`-names are the macros' own accumulators.
                let known = name.starts_with('@')
                    || CEL_VARIABLES.contains(&name.as_str())
                    || bound.contains(&name.as_str());
                if !known {
                    return Err(Problem::Unknown(name.clone()));
                }
            }
            Expr::Unspecified | Expr::Literal(_) => {}
        }
        Ok(())
    }
    walk(expr, false, &[], &mut 0, 0).map_err(|problem| match problem {
        Problem::Unknown(variable) => format!(
            "invalid CEL in when {text:?}: unknown variable {variable:?}{}, expected one of {}",
            super::when_check::did_you_mean(&variable, &CEL_VARIABLES)
                .map(|name| format!(" (did you mean {name}?)"))
                .unwrap_or_default(),
            CEL_VARIABLES.join(", ")
        ),
        Problem::Cost(why) => {
            format!("when {text:?} could cost too much to evaluate: {why}; split the rule instead")
        }
    })
}

impl<'de> Deserialize<'de> for CelExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CelExpr::compile(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cel_compiles_and_checks_variables() {
        assert!(CelExpr::compile("!probe.success || probe.latency_ms > 2000").is_ok());
        assert!(CelExpr::compile("labels.env == 'prod'").is_ok());
        let err = CelExpr::compile("prob.success").unwrap_err();
        assert!(err.contains("unknown variable \"prob\""), "{err}");
        let err = CelExpr::compile("probe.success &&").unwrap_err();
        assert!(err.contains("invalid CEL"), "{err}");
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(CelExpr::compile(&deep).unwrap_err().contains("nests"));
    }

    /// Evaluation recurses per level on a 2 MiB worker thread: deep chains are refused (a
    /// chain of `>` and `.` can overflow the stack), the parser is shielded from long chains,
    /// and operators inside strings do not count.
    #[test]
    fn deep_chains_are_refused_before_they_can_exhaust_the_stack() {
        let chain = |n: usize| vec!["value"; n + 1].join(" > ");
        assert!(CelExpr::compile(&chain(30)).is_ok());
        let err = CelExpr::compile(&chain(40)).unwrap_err();
        assert!(err.contains("nests more than 32 deep"), "{err}");
        let calls = format!("labels.a{} == 'a'", ".lowerAscii()".repeat(40));
        assert!(CelExpr::compile(&calls).unwrap_err().contains("32 deep"));
        let and = vec!["labels.a == 'b'"; 64].join(" && ");
        assert!(CelExpr::compile(&and).is_ok(), "64 && stay allowed");
        let long = vec!["1"; 1500].join("+");
        let err = CelExpr::compile(&long).unwrap_err();
        assert!(err.contains("more than 512 operator characters"), "{err}");
        let quoted = format!("labels.a.matches('{}')", "a.b|c*".repeat(200));
        assert!(CelExpr::compile(&quoted).is_ok());
    }

    #[test]
    fn a_comprehension_binds_its_variable_inside_it_only() {
        for when in [
            "labels.exists(k, k.startsWith('team_'))",
            "labels.all(name, labels[name] != '')",
            "annotations.exists_one(a, a == 'runbook')",
            "probe.body.items.filter(i, i.status != 'ok').size() > 0",
        ] {
            assert!(CelExpr::compile(when).is_ok(), "{when}");
        }
        let err = CelExpr::compile("labels.exists(k, k == 'x') && k == 'y'").unwrap_err();
        assert!(err.contains("unknown variable \"k\""), "{err}");
        let err = CelExpr::compile("[k].exists(k, true)").unwrap_err();
        assert!(
            err.contains("unknown variable \"k\""),
            "the list is outside the loop: {err}"
        );
    }

    #[test]
    fn costly_comprehensions_are_refused() {
        // Each map doubles the string: forty of them would build a terabyte.
        let doubling = format!(
            "['a']{}.size() > 0",
            ".map(value, value + value)".repeat(40)
        );
        let err = CelExpr::compile(&doubling).unwrap_err();
        assert!(
            err.contains("cost too much") && err.contains("inside"),
            "{err}"
        );
        let nested = "labels.all(value, labels.exists(source, source == value))";
        assert!(CelExpr::compile(nested).unwrap_err().contains("inside"));
        let many = ["labels.exists(value, value == 'x')"; 9].join(" || ");
        assert!(CelExpr::compile(&many).unwrap_err().contains("more than 8"));
        // One at a time is linear in the signal, and fine.
        assert!(CelExpr::compile(
            "labels.exists(value, value == 'db') && \
                                  annotations.all(value, value != '')"
        )
        .is_ok());
    }
}
