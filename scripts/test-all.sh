#!/usr/bin/env bash
# Run every test of tocsin on this machine, installing what the tests need first.
# Usage: ./scripts/test-all.sh        (CI runs exactly this: .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Real peers the tests start on 127.0.0.1 (Debian packages), installed when missing.
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# 2. Style and lints.
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

# 3. Unit and end-to-end tests (the end-to-end tests start the real engine and peers), on a
#    SQLite store, then the end-to-end tests again with the engines on PostgreSQL
#    (127.0.0.1:5432; each test creates its own database and drops it).
cargo test -- --test-threads 4
TOCSIN_TEST_STORE=postgres cargo test --test engine --test crash --test api --test dashboard \
    --test paging --test sources -- --test-threads 4

# 4. The shipped config and rules are valid, and the rule unit tests pass.
cargo run --quiet -- check --config config/tocsin.yaml
cargo run --quiet -- test tests/rules/*.yaml
echo "all tests passed"
