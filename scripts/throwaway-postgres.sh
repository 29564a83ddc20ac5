#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: a cluster of its own, initdb'd into a temporary folder
# (trust auth, its Unix socket in that folder), listening on 127.0.0.1 on a free port, then
# stopped and removed. It never uses a PostgreSQL the machine happens to run.
#
#   ./scripts/throwaway-postgres.sh run CMD [ARGS...]
#       start one, run CMD with TOCSIN_TEST_PG_URL set to it, then stop and remove it (also
#       when CMD fails or the script is interrupted); exits with CMD's status. For example:
#       ./scripts/throwaway-postgres.sh run cargo test --test e2e -- --test-threads 2 cluster::
#   dir=$(./scripts/throwaway-postgres.sh start)
#       start one and print its folder; "$dir/url" holds its URL (database `postgres`, user
#       `postgres`, who may create databases).
#   ./scripts/throwaway-postgres.sh stop "$dir"
#       stop it and remove its folder.
#
# Needs the Debian package `postgresql` (./scripts/test-all.sh installs it). initdb and
# postgres refuse to run as root, so as root they run as the `postgres` user that package
# creates.
set -euo pipefail

die() {
    echo "throwaway-postgres: $*" >&2
    exit 1
}

# The newest installed server's programs (Debian keeps them under a version folder).
bin_dir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    die "no initdb/pg_ctl found: install the Debian package postgresql (apt-get install postgresql)"
}

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs the user postgres (Debian package postgresql creates it)"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local bin dir port tries
    bin=$(bin_dir)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tocsin-pg.XXXXXX")
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    if ! as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C \
        --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -rf "$dir"
        die "initdb failed"
    fi
    # Ports below Linux's ephemeral range (32768 and up), so no client socket of the tests
    # holds the port; one that a server already holds is tried again with another.
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        port=$((15000 + RANDOM % 17000))
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null 2>&1; then
            echo "postgres://postgres@127.0.0.1:$port/postgres" >"$dir/url"
            echo "$dir"
            return
        fi
        if ! grep -q "Address already in use" "$dir/server.log" 2>/dev/null; then
            break
        fi
    done
    cat "$dir/server.log" >&2 2>/dev/null || true
    rm -rf "$dir"
    die "the server did not start (log above)"
}

stop() {
    local dir=$1
    [ -n "$dir" ] || die "stop: which folder?"
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$(bin_dir)/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            echo "throwaway-postgres: stopping the server in $dir failed" >&2
    fi
    rm -rf "$dir"
}

case "${1:-}" in
start)
    start
    ;;
stop)
    stop "${2:-}"
    ;;
run)
    shift
    [ $# -gt 0 ] || die "run: which command?"
    dir=$(start)
    trap 'stop "$dir"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    TOCSIN_TEST_PG_URL=$(cat "$dir/url")
    export TOCSIN_TEST_PG_URL
    echo "throwaway PostgreSQL at $TOCSIN_TEST_PG_URL ($dir)" >&2
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
