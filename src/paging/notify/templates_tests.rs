use super::*;

fn config(dir: &std::path::Path, notifiers: &str) -> Config {
    let path = dir.join("config.yaml");
    std::fs::write(&path, format!("notifiers:\n{notifiers}")).unwrap();
    crate::config::load(&path).expect("test config loads")
}

#[test]
fn templates_render_the_page_context_with_the_right_escaping() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("body.json.j2"),
        r#"{"title": {{ page.subject }}, "sev": {{ page.severity }}, "runbook": {{ page.runbooks[0].url }}}"#,
    )
    .unwrap();
    let c = config(
        dir.path(),
        r#"  email:
    from: t@example.com
    file: { dir: out }
    template:
      subject: "P{{ page.severity }} {{ page.title }}"
      html: "<b>{{ page.impacts[0].description }}</b> <x>"
  webhooks:
    - name: chat
      url: http://127.0.0.1:9/hook
      template:
        body: { file: body.json.j2 }
        headers: { X-Sev: "sev{{ page.severity }}" }
"#,
    );
    let (templates, errors) = Templates::compile(&c);
    assert_eq!(errors, []);
    let mut payload = sample_payload(&c, PageEvent::Triggered, "alice");
    payload.context.as_mut().unwrap().impacts[0].description = Some("a <b> & c".into());
    let render = |name: &str| templates.render(name, &payload, "d").unwrap().unwrap();
    assert_eq!(render("email.subject"), "P1 storage down in china-east");
    assert_eq!(render("email.html"), "<b>a &lt;b&gt; &amp; c</b> <x>");
    let body: serde_json::Value = serde_json::from_str(&render("webhook.chat.body")).unwrap();
    assert_eq!(body["title"], "[Sev 1] storage down in china-east");
    assert_eq!(body["sev"], 1);
    assert_eq!(body["runbook"], "https://runbooks.example/storage-down");
    assert_eq!(render("webhook.chat.header.X-Sev"), "sev1");
    assert!(templates.render("email.text", &payload, "d").is_none());
    assert_eq!(templates.check(&payload), []);
}

#[test]
fn errors_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.j2"),
        "first line\n  {{ page.title | nosuchfilter }}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notjson.j2"), "{{ page.title }} and more").unwrap();
    let c = config(
        dir.path(),
        r#"  email:
    from: t@example.com
    file: { dir: out }
    template:
      subject: "{{ page.title"
      text: { file: bad.j2 }
      html: { file: missing.j2 }
  webhooks:
    - { name: chat, url: "http://127.0.0.1:9/hook", template: { body: { file: notjson.j2 } } }
"#,
    );
    let (templates, errors) = Templates::compile(&c);
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let config_path = c.path.display().to_string();
    assert_eq!(shown.len(), 2, "{shown:?}");
    // Inline: the place in the config file, inside the quoted text.
    assert!(
        shown[0].starts_with(&format!("{config_path}:6:"))
            && shown[0].contains("notifiers.email.template.subject: syntax error"),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with(&format!("{config_path}:8:"))
            && shown[1].contains("cannot read template file")
            && shown[1].contains("missing.j2"),
        "{shown:?}"
    );
    // The unknown filter is found when rendering, at its line and column in its file.
    let checked: Vec<String> = templates
        .check(&sample_payload(&c, PageEvent::Triggered, "alice"))
        .iter()
        .map(|e| e.to_string())
        .collect();
    let bad = dir.path().join("bad.j2").display().to_string();
    assert!(
        checked
            .iter()
            .any(|e| e.starts_with(&format!("{bad}:2:")) && e.contains("nosuchfilter")),
        "{checked:?}"
    );
    let notjson = dir.path().join("notjson.j2").display().to_string();
    assert!(
        checked
            .iter()
            .any(|e| e.starts_with(&format!("{notjson}:1:1:")) && e.contains("renders as no JSON")),
        "{checked:?}"
    );
}
