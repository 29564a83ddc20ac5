#!/usr/bin/env bash
# Renders docs/img/page-email.png and docs/img/page-slack.png: the sample page
# (`tocsin template render --sample --event severity_raised`) as an email client and as a
# Slack-like view of its Block Kit message show it, screenshotted by headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${TOCSIN:-target/debug/tocsin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/config.yaml" <<'EOF'
server: { external_url: "https://tocsin.example.com" }
catalog:
  services:
    - { name: storage, sla: 99.9, regions: [china-east, china-north] }
  customers:
    - { id: contoso, name: "Contoso Ltd", subscriptions: [ { service: storage, regions: [china-east] } ] }
    - { id: fabrikam, name: "Fabrikam Inc", subscriptions: [ { service: storage } ] }
responders:
  - { id: alice, email: alice@example.com }
notifiers:
  email: { from: tocsin@example.com, file: { dir: out } }
  webhooks:
    - { name: slack, url: "https://hooks.slack.com/services/T000/B000/XXXX", format: slack }
EOF
"$bin" template render -c "$work/config.yaml" --notifier email --sample --event severity_raised > "$work/email.eml"
"$bin" template render -c "$work/config.yaml" --notifier slack --sample --event severity_raised \
  | sed -n '3,$p' > "$work/slack.json"
python3 - "$work" <<'EOF'
import email, html, json, re, sys
from email import policy
work = sys.argv[1]
m = email.message_from_file(open(f"{work}/email.eml"), policy=policy.default)
body = next(p.get_content() for p in m.walk() if p.get_content_type() == "text/html")
open(f"{work}/email.html", "w").write(f'''<!DOCTYPE html><html><head><meta charset="utf-8"></head>
<body style="margin:0;background:#eef0f3;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif">
<div style="background:#fff;margin:16px;border:1px solid #ccd;border-radius:6px;padding:12px 20px">
<div style="color:#444;font-size:13px;border-bottom:1px solid #dde;padding-bottom:8px;margin-bottom:8px">
<div><b>From:</b> {html.escape(m["From"])} &nbsp; <b>To:</b> {html.escape(m["To"])}</div>
<div style="font-size:17px;margin-top:4px"><b>{html.escape(m["Subject"])}</b></div></div>
<iframe srcdoc="{html.escape(body)}" style="border:0;width:100%;height:1000px"></iframe></div></body></html>''')

msg = json.load(open(f"{work}/slack.json"))
def mrkdwn(t):
    t = re.sub(r"<([^|>]+)\|([^>]+)>", lambda m: f'<a href="{m.group(1)}">{m.group(2)}</a>', t)
    t = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", t)
    return t.replace("\n", "<br>")
def block(b):
    kind = b["type"]
    if kind == "header":
        return f'<div style="font-size:18px;font-weight:900;margin:4px 0 8px">{html.escape(b["text"]["text"])}</div>'
    if kind == "section" and "fields" in b:
        cells = "".join(f'<div style="width:48%;display:inline-block;vertical-align:top;margin:3px 0">{mrkdwn(f["text"])}</div>' for f in b["fields"])
        return f'<div style="margin:6px 0">{cells}</div>'
    if kind == "section":
        return f'<div style="margin:6px 0">{mrkdwn(b["text"]["text"])}</div>'
    if kind == "actions":
        out = ""
        for e in b["elements"]:
            style = "background:#e01e5a;color:#fff;border-color:#e01e5a" if e.get("style") == "danger" else "background:#fff;color:#1d1c1d"
            out += f'<span style="display:inline-block;border:1px solid #bbb;border-radius:4px;padding:4px 12px;margin-right:8px;font-weight:700;{style}">{html.escape(e["text"]["text"])}</span>'
        return f'<div style="margin:8px 0">{out}</div>'
    if kind == "context":
        return f'<div style="color:#616061;font-size:12px">{mrkdwn(b["elements"][0]["text"])}</div>'
    return ""
att = msg["attachments"][0]
open(f"{work}/slack.html", "w").write(f'''<!DOCTYPE html><html><head><meta charset="utf-8"></head>
<body style="margin:0;background:#fff;font-family:Lato,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:15px;color:#1d1c1d">
<div style="padding:16px 20px;display:flex">
<div style="width:36px;height:36px;border-radius:4px;background:#d32f2f;color:#fff;font-weight:900;text-align:center;line-height:36px;margin-right:10px">T</div>
<div style="flex:1"><div><b>tocsin</b> <span style="font-size:11px;background:#ddd;padding:1px 3px;border-radius:2px">APP</span></div>
{"".join(block(b) for b in msg["blocks"])}
<div style="border-left:4px solid {att["color"]};padding-left:12px">{"".join(block(b) for b in att["blocks"])}</div>
</div></div></body></html>''')
EOF
shot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --hide-scrollbars --window-size="$3" \
    --screenshot="$2" "file://$1" 2>/dev/null
}
shot "$work/email.html" docs/img/page-email.png 900,1080
shot "$work/slack.html" docs/img/page-slack.png 820,640
echo "docs/img/page-email.png docs/img/page-slack.png"
