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
# The calendar-feed tests read the feeds with a real iCalendar parser.
/usr/bin/python3 -c 'import icalendar' >/dev/null 2>&1 || need+=(python3-icalendar)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# PostgreSQL: the server programs for a throwaway cluster of the tests' own, and psql.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# The store-trouble tests: a file system of their own (mkfs.ext4) with an immutable file
# (chattr) for a read-only store.
PATH=$PATH:/usr/sbin:/sbin command -v mkfs.ext4 >/dev/null 2>&1 && command -v chattr >/dev/null 2>&1 ||
    need+=(e2fsprogs)
# The Debian package test (scripts/test-deb.sh): dpkg-shlibdeps and strip to build it,
# systemd-analyze to verify its unit (it works without systemd as PID 1; nothing is started),
# curl to talk to the installed engine.
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# 2. Style and lints.
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

# 3. A throwaway PostgreSQL of this run's own (never one the machine happens to run), stopped
#    and removed when this script exits, on failure too. Every PostgreSQL test uses it
#    through TOCSIN_TEST_PG_URL and makes a database of its own on it.
pg_dir=$(./scripts/throwaway-postgres.sh start)
trap './scripts/throwaway-postgres.sh stop "$pg_dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
TOCSIN_TEST_PG_URL=$(cat "$pg_dir/url")
export TOCSIN_TEST_PG_URL
echo "throwaway PostgreSQL at $TOCSIN_TEST_PG_URL"
# The store-trouble tests need root for their own mounts; here they always run.
unset TOCSIN_TEST_WITHOUT_ROOT

# 4. Unit and end-to-end tests (the end-to-end tests start the real engine and peers), on a
#    SQLite store, then the end-to-end tests again with the engines on PostgreSQL.
#    The fuzz targets run on their own afterwards, one at a time, each printing its figures.
cargo test -- --test-threads 4 --skip fuzz_
TOCSIN_TEST_STORE=postgres cargo test --test e2e -- --test-threads 4 engine:: crash:: api:: \
    ack_links:: admin:: reload:: cli:: dashboard:: paging:: sources:: resolve:: outage:: silences:: \
    oncall:: operate:: cases:: case_pages:: triage:: notify_steps:: status:: sr_report:: sla:: tsg::
cargo test --test fuzz -- --nocapture --test-threads 1 fuzz_

# 5. The shipped config and rules are valid, and the rule unit tests pass.
cargo run --quiet -- check --config config/tocsin.yaml
cargo run --quiet -- test tests/rules/*.yaml

# 6. The alerting rules for tocsin itself (contrib/prometheus) are valid Prometheus rules and
#    pass their unit tests (promtool comes with the prometheus package).
promtool check rules contrib/prometheus/tocsin.rules.yaml
(cd contrib/prometheus && promtool test rules tocsin.rules.test.yaml)

# 7. The Debian package: built, installed, run as its service would run, and purged (root).
./scripts/test-deb.sh
echo "all tests passed"
