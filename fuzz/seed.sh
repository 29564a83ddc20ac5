#!/usr/bin/env bash
# Seed the fuzz corpora from what the repository ships and tests (fuzz/corpus/, not committed).
set -euo pipefail
cd "$(dirname "$0")"
root=..
mkdir -p corpus/{config,rules,matcher,alerts,cel}
cp "$root/config/tocsin.yaml" corpus/config/shipped.yaml
sed '/rule_files/d' "$root/config/tocsin.yaml" > corpus/config/shipped-no-rules.yaml
cp "$root/rules/"*.yaml corpus/rules/
i=0
for f in "$root/tests/rules/"*.yaml; do i=$((i+1)); cp "$f" "corpus/config/test-$i.yaml"; done
i=0
for m in 'service="storage"' 'region=~"china-.*"' 'env!="dev"' 'severity!~"0|1"' \
         'alertname=~"(a+)+$"' 'a="x\"y\\z"' 'kind!~"data_loss|data_corruption|security"'; do
  i=$((i+1)); printf '%s' "$m" > "corpus/matcher/m$i"
done
printf '%s' '[{"labels":{"alertname":"Down","service":"storage","region":"china-east"},"annotations":{"summary":"down"},"startsAt":"2026-01-05T08:59:00Z","endsAt":"2026-01-05T09:03:00Z","generatorURL":"http://prom/graph"}]' > corpus/alerts/v2
printf '%s' '{"version":"4","status":"firing","receiver":"tocsin","groupKey":"{}:{}","alerts":[{"status":"firing","labels":{"alertname":"Down"},"annotations":{},"startsAt":"2026-01-05T08:59:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"abc"}]}' > corpus/alerts/webhook
printf '%s' '{"customer":"contoso","service":"storage","region":"china-east","sr_severity":"A","summary":"cannot write","contact":{"name":"Pat","email":"pat@example.com","phone":"+86 21 5555 0100"},"kind":"data_loss"}' > corpus/alerts/cri
i=0
for c in '!probe.success || probe.latency_ms > 2000.0' "labels.service == 'storage' && source == 'probe'" \
         "probe.body.status != 'ok'" "labels.exists(value, value == 'region')" 'value > 10.0' \
         "annotations.summary.contains('down')" "size(labels) > 3" "labels.severity in ['critical', 'page']"; do
  i=$((i+1)); printf '%s' "$c" > "corpus/cel/c$i"
done
echo "seeded: $(find corpus -type f | wc -l) files"
