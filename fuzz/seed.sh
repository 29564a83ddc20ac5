#!/usr/bin/env bash
# Seed cargo-fuzz's corpora (fuzz/corpus/, not committed) with what `cargo test --test fuzz`
# starts from: tests/fuzz_corpus/<target>/ (seeds, and every input that ever failed a target)
# and the shipped config and rules.
set -euo pipefail
cd "$(dirname "$0")"
root=..
for t in config rules matcher alerts cel; do
    mkdir -p "corpus/$t"
    cp "$root/tests/fuzz_corpus/$t/"* "corpus/$t/" 2>/dev/null || true
done
cp "$root/config/tocsin.yaml" corpus/config/shipped.yaml
sed "/rule_files/d" "$root/config/tocsin.yaml" > corpus/config/shipped-no-rules.yaml
cp "$root/rules/"*.yaml "$root/tests/rules/"*.yaml corpus/rules/
echo "seeded: $(find corpus -type f | wc -l) files"
