//! Rules' `summary:` templates, rendered once for each impact a rule opens.
//!
//! Most summaries only put labels into text (`{{ labels.alertname }} in {{ labels.service }}`).
//! Those are rendered here by joining their pieces, without setting up minijinja's VM for
//! each new alert; minijinja renders the rest.

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectExt, ObjectRepr, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::signal::Labels;

/// Every rule's summary template, by rule name.
pub struct Summaries {
    templates: Environment<'static>,
    /// The templates that are text and `{{ labels.NAME }}` / `{{ annotations.NAME }}` only.
    plain: HashMap<String, Vec<Piece>>,
    /// Each rule's `annotations:`: (annotation name, template name), in name order.
    annotations: HashMap<String, Vec<(String, String)>>,
}

/// One piece of a plain template.
enum Piece {
    Text(String),
    Label(String),
    Annotation(String),
}

impl Summaries {
    /// From each rule's name and summary template (validated when the rules were loaded).
    pub fn new<'a>(rules: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut templates = Environment::new();
        // Missing labels render as empty, as in Alertmanager templates.
        templates.set_undefined_behavior(UndefinedBehavior::Lenient);
        // A summary is text, whatever its rule is called (minijinja would escape HTML for a
        // rule named `*.html`).
        templates.set_auto_escape_callback(|_| AutoEscape::None);
        let mut plain = HashMap::new();
        for (rule, summary) in rules {
            // A failure here leaves the rule without a template.
            if templates
                .add_template_owned(rule.to_string(), summary.to_string())
                .is_ok()
            {
                if let Some(pieces) = plain_pieces(summary) {
                    plain.insert(rule.to_string(), pieces);
                }
            }
        }
        Summaries {
            templates,
            plain,
            annotations: HashMap::new(),
        }
    }

    /// Add each rule's `annotations:` templates: (rule, annotation name, template).
    pub fn with_annotations<'a>(
        mut self,
        templates: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Self {
        for (rule, name, source) in templates {
            // A name no rule can have: a rule name holds no control character.
            let key = format!("{rule}\u{1f}{name}");
            if self
                .templates
                .add_template_owned(key.clone(), source.to_string())
                .is_ok()
            {
                if let Some(pieces) = plain_pieces(source) {
                    self.plain.insert(key.clone(), pieces);
                }
                self.annotations
                    .entry(rule.to_string())
                    .or_default()
                    .push((name.to_string(), key));
            }
        }
        self
    }

    /// Whether `rule` adds annotations of its own.
    pub fn adds_annotations(&self, rule: &str) -> bool {
        self.annotations.contains_key(rule)
    }

    /// `annotations` with `rule`'s own rendered over them (a rule's annotation wins over
    /// the signal's of the same name; one that renders empty is left out).
    pub fn annotate(
        &self,
        rule: &str,
        labels: &Labels,
        annotations: &Labels,
        value: Option<f64>,
    ) -> Labels {
        let Some(templates) = self.annotations.get(rule) else {
            return Arc::clone(annotations);
        };
        let mut out = Arc::clone(annotations);
        for (name, key) in templates {
            if let Some(text) = self.render(key, labels, annotations, value) {
                if !text.trim().is_empty() {
                    Arc::make_mut(&mut out).insert(name.clone(), text);
                }
            }
        }
        out
    }

    /// Render `rule`'s summary over a signal's labels, annotations and value; `None` when
    /// the rule has none or it fails.
    pub fn render(
        &self,
        rule: &str,
        labels: &Labels,
        annotations: &Labels,
        value: Option<f64>,
    ) -> Option<String> {
        if let Some(pieces) = self.plain.get(rule) {
            let mut out = String::new();
            for piece in pieces {
                out.push_str(match piece {
                    Piece::Text(text) => text,
                    Piece::Label(name) => labels.get(name).unwrap_or_default(),
                    Piece::Annotation(name) => annotations.get(name).unwrap_or_default(),
                });
            }
            return Some(out);
        }
        let template = self.templates.get_template(rule).ok()?;
        let labels = Value::from_object(TemplateLabels(Arc::clone(labels)));
        let annotations = Value::from_object(TemplateLabels(Arc::clone(annotations)));
        template
            .render(minijinja::context! { labels, annotations, value })
            .ok()
    }
}

/// The pieces of a template made of text without braces and expressions
/// `{{ labels.NAME }}` or `{{ annotations.NAME }}` (NAME a plain identifier); `None` for
/// anything else, which minijinja renders. minijinja drops one newline at the end of a
/// template: such templates are left to it too.
fn plain_pieces(source: &str) -> Option<Vec<Piece>> {
    if source.ends_with('\n') {
        return None;
    }
    let mut pieces = Vec::new();
    let mut rest = source;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            pieces.push(Piece::Text(plain_text(rest)?));
            break;
        };
        if open > 0 {
            pieces.push(Piece::Text(plain_text(&rest[..open])?));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        let expression = after[..close].trim_matches(' ');
        let (map, name) = expression.split_once('.')?;
        let identifier = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return None;
        }
        pieces.push(match map {
            "labels" => Piece::Label(name.to_string()),
            "annotations" => Piece::Annotation(name.to_string()),
            _ => return None,
        });
        rest = &after[close + 2..];
    }
    Some(pieces)
}

/// Text between expressions, when it holds nothing a template would read as syntax.
fn plain_text(text: &str) -> Option<String> {
    (!text.contains(['{', '}'])).then(|| text.to_string())
}

/// A signal's labels as a template sees them: a map of strings, read in place, not copied
/// into a map of owned strings for each render.
#[derive(Debug)]
struct TemplateLabels(Labels);

impl Object for TemplateLabels {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.0.get(key).map(Value::from)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.mapped_enumerator(|this| Box::new(this.0.keys().map(Value::from)))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::LabelSet;

    fn labels() -> (Labels, Labels) {
        let labels = LabelSet::from_iter([
            ("service", "storage"),
            ("region", "east"),
            ("alertname", "DiskFull"),
        ]);
        let annotations = LabelSet::from_iter([("summary", "disk 97% <full>")]);
        (Arc::new(labels), Arc::new(annotations))
    }

    /// Every template renders as minijinja renders it with the labels as a plain map: those
    /// joined from pieces and those left to minijinja, which sees the labels in place.
    #[test]
    fn summaries_render_as_minijinja_renders_the_labels_map() {
        let (labels, annotations) = labels();
        let sources = [
            ("plain", "{{ labels.alertname }} in {{ labels.service }} {{ labels.region }}"),
            ("plain", "{{labels.service}}: {{ annotations.summary }} ({{ labels.missing }})"),
            ("plain", "no expression at all"),
            ("plain", "{{ labels.region }}"),
            ("jinja", "{{ labels['service'] }}/{{ labels.missing }}/{{ annotations.summary }}"),
            ("jinja", "{% for k, v in labels|items %}{{ k }}={{ v }};{% endfor %}"),
            ("jinja", "{% for k in labels %}{{ k }},{% endfor %} {{ labels|length }}"),
            ("jinja", "{% if labels.region == 'east' %}east{% endif %}{% if 'service' in labels %} has{% endif %}"),
            ("jinja", "{{ labels|dictsort|first|first }} {{ value }}"),
            ("jinja", "{{ labels.service|upper }} {{ labels.region }}"),
            ("jinja", "{{ labels.service }} {{ value }}"),
            ("jinja", "{{ labels.service }} down\n"),
            ("jinja", "{{- labels.service }} down"),
            ("jinja", "{{ labels.service }} } {{ labels.region }}"),
            ("jinja", "{# note #}{{ labels.service }}"),
            ("jinja", "{{ labels.service.x }}"),
            ("jinja", "{{ labels.0 }}"),
        ];
        let mut reference = Environment::new();
        reference.set_undefined_behavior(UndefinedBehavior::Lenient);
        for (i, (kind, source)) in sources.iter().enumerate() {
            let summaries = Summaries::for_one_rule("Rule.html", source);
            assert_eq!(
                summaries.plain.contains_key("Rule.html"),
                *kind == "plain",
                "template {source}"
            );
            let name = format!("t{i}");
            reference
                .add_template_owned(name.clone(), source.to_string())
                .unwrap();
            let expected = reference
                .get_template(&name)
                .unwrap()
                .render(minijinja::context! {
                    labels => &*labels, annotations => &*annotations, value => Some(0.5),
                })
                .unwrap();
            let rendered = summaries.render("Rule.html", &labels, &annotations, Some(0.5));
            assert_eq!(
                rendered.as_deref(),
                Some(expected.as_str()),
                "template {source}"
            );
        }
        assert_eq!(
            Summaries::for_one_rule("R", sources[0].1)
                .render("R", &labels, &annotations, None)
                .as_deref(),
            Some("DiskFull in storage east")
        );
        assert_eq!(
            Summaries::for_one_rule("R", "x").render("S", &labels, &annotations, None),
            None
        );
    }

    #[test]
    fn a_rules_annotations_render_over_the_signals_and_win() {
        let (labels, annotations) = labels();
        let summaries = Summaries::new([("R", "x")]).with_annotations([
            ("R", "runbook_url", "https://runbooks/{{ labels.service }}"),
            (
                "R",
                "summary",
                "{{ labels.alertname|lower }} ({{ annotations.summary }})",
            ),
            ("R", "empty", "{{ labels.missing }}"),
        ]);
        assert!(summaries.adds_annotations("R"));
        let out = summaries.annotate("R", &labels, &annotations, None);
        assert_eq!(out.get("runbook_url"), Some("https://runbooks/storage"));
        assert_eq!(out.get("summary"), Some("diskfull (disk 97% <full>)"));
        assert_eq!(out.get("empty"), None);
        // A rule without annotations shares the signal's set.
        let same = summaries.annotate("S", &labels, &annotations, None);
        assert!(Arc::ptr_eq(&same, &annotations));
    }

    impl Summaries {
        fn for_one_rule(rule: &str, source: &str) -> Summaries {
            Summaries::new([(rule, source)])
        }
    }
}
