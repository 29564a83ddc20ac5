#!/usr/bin/env bash
# The Debian package, end to end: build it (scripts/build-deb.sh), install it with dpkg -i,
# check the installed config and unit, run the unit's ExecStart as the tocsin user with a
# NOTIFY_SOCKET of this test's own (READY=1, WATCHDOG=1, an alert taken and paged, STOPPING=1
# on SIGTERM), then purge it: its files go, /var/lib/tocsin stays. Never calls systemctl
# (PID 1 need not be systemd). Run by scripts/test-all.sh.
#
# Needs root (dpkg -i). Without root it fails saying so, unless TOCSIN_TEST_WITHOUT_ROOT=1
# asks to leave it out. It refuses to run where a tocsin package is installed already, and
# leaves the machine as it found it: the package purged, and the tocsin user and
# /var/lib/tocsin removed when it made them.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    if [ "${TOCSIN_TEST_WITHOUT_ROOT:-}" = 1 ]; then
        echo "test-deb: left out, as TOCSIN_TEST_WITHOUT_ROOT=1 asks (it installs a package)"
        exit 0
    fi
    echo "test-deb: needs root (dpkg -i); run it as root, or set TOCSIN_TEST_WITHOUT_ROOT=1 to leave it out" >&2
    exit 1
fi
if dpkg-query -W -f='${Status}' tocsin 2>/dev/null | grep -q 'ok installed'; then
    echo "test-deb: a tocsin package is installed on this machine; this test will not replace it" >&2
    exit 1
fi

fail() {
    echo "test-deb: FAILED: $*" >&2
    [ -f "${work:-}/engine.log" ] && sed 's/^/  engine: /' "$work/engine.log" >&2
    exit 1
}

deb=$(./scripts/build-deb.sh)
echo "test-deb: built $deb"

had_user=$(getent passwd tocsin >/dev/null && echo yes || echo no)
had_state=$([ -e /var/lib/tocsin ] && echo yes || echo no)
work=$(mktemp -d)
chmod 0755 "$work"
engine_pid=
listener_pid=
cleanup() {
    [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null || true
    [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null || true
    dpkg --purge tocsin >/dev/null 2>&1 || true
    [ "$had_state" = no ] && rm -rf /var/lib/tocsin
    if [ "$had_user" = no ] && getent passwd tocsin >/dev/null; then
        userdel tocsin 2>/dev/null || true
        getent group tocsin >/dev/null && groupdel tocsin 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
dpkg-query -W -f='${Conffiles}\n' tocsin | grep -q /etc/tocsin/tocsin.yaml || fail "tocsin.yaml is not a conffile"
dpkg-query -W -f='${Conffiles}\n' tocsin | grep -q /etc/tocsin/rules/default.yaml || fail "the rules are not a conffile"
getent passwd tocsin >/dev/null || fail "no tocsin user"
[ "$(stat -c %U /var/lib/tocsin)" = tocsin ] || fail "/var/lib/tocsin is not the tocsin user's"
for f in /usr/share/bash-completion/completions/tocsin /usr/share/zsh/vendor-completions/_tocsin \
    /usr/share/fish/vendor_completions.d/tocsin.fish /usr/share/man/man1/tocsin.1.gz \
    /usr/share/man/man1/tocsin-run.1.gz; do
    [ -s "$f" ] || fail "$f missing"
done
zcat /usr/share/man/man1/tocsin-run.1.gz | grep -qF -- '\-\-config' || fail "the man page of run lacks --config"
grep -q 'tocsin)' /usr/share/bash-completion/completions/tocsin || fail "bash completion"

tocsin check --config /etc/tocsin/tocsin.yaml || fail "tocsin check of the installed config"
unit=/lib/systemd/system/tocsin.service
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
for key in Type=notify WatchdogSec= 'ExecReload=/bin/kill -HUP $MAINPID' ProtectSystem=strict \
    NoNewPrivileges=yes ReadWritePaths=/var/lib/tocsin User=tocsin; do
    grep -qF "$key" "$unit" || fail "the unit lacks $key"
done

# The unit's own ExecStart, in its WorkingDirectory, as its User, on a free port (the
# installed config listens on 9470, which this machine may use), with a NOTIFY_SOCKET and
# WATCHDOG_USEC as systemd would set them.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
workdir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
notify="$work/notify.sock"
python3 -u - "$notify" >"$work/notify.log" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
print("LISTENING")
while True:
    print(s.recv(4096).decode().replace("\n", " "))
PY
listener_pid=$!
for _ in $(seq 100); do grep -q LISTENING "$work/notify.log" && break; sleep 0.1; done
(cd "$workdir" && exec setpriv --reuid=tocsin --regid=tocsin --init-groups --reset-env \
    env NOTIFY_SOCKET="$notify" WATCHDOG_USEC=2000000 TOCSIN_LOG=info \
    $exec_start --listen "127.0.0.1:$port") >"$work/engine.log" 2>&1 &
engine_pid=$!

url=http://127.0.0.1:$port
for _ in $(seq 300); do grep -q READY=1 "$work/notify.log" && break; sleep 0.1; done
grep -q READY=1 "$work/notify.log" || fail "no READY=1 on NOTIFY_SOCKET within 30s"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/-/ready")" = 200 ] || fail "/-/ready is not 200 after READY=1"
[ "$(ps -o user= -p "$engine_pid" | tr -d ' ')" = tocsin ] || fail "the engine does not run as tocsin"

curl -sf -X POST "$url/api/v2/alerts" -H 'Content-Type: application/json' -d '[{
  "labels": {"alertname": "PackageTest", "severity": "critical", "service": "storage", "region": "china-east"},
  "annotations": {"summary": "storage is down in china-east (package test)"}}]' >/dev/null ||
    fail "the alert was refused"
curl -sf "$url/api/v1/incidents" | grep -q 'storage is down in china-east (package test)' ||
    fail "no incident for the alert"
for _ in $(seq 100); do
    grep -lq 'package test' /var/lib/tocsin/outbox/*.eml 2>/dev/null && break
    sleep 0.1
done
grep -lq 'package test' /var/lib/tocsin/outbox/*.eml 2>/dev/null || fail "no page in /var/lib/tocsin/outbox"
for _ in $(seq 50); do grep -q WATCHDOG=1 "$work/notify.log" && break; sleep 0.1; done
grep -q WATCHDOG=1 "$work/notify.log" || fail "no WATCHDOG=1 within 5s of WATCHDOG_USEC=2s"

kill -TERM "$engine_pid"
wait "$engine_pid" || fail "the engine did not stop cleanly on SIGTERM"
engine_pid=
grep -q STOPPING=1 "$work/notify.log" || fail "no STOPPING=1"
[ -f /var/lib/tocsin/tocsin.db ] || fail "no store in /var/lib/tocsin"

dpkg --purge tocsin >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge"; }
for gone in /usr/bin/tocsin /etc/tocsin "$unit" /usr/share/man/man1/tocsin.1.gz \
    /usr/share/bash-completion/completions/tocsin /etc/systemd/system/multi-user.target.wants/tocsin.service; do
    [ ! -e "$gone" ] || fail "$gone is left after purge"
done
[ -f /var/lib/tocsin/tocsin.db ] || fail "purge removed the store in /var/lib/tocsin"
echo "test-deb: package built, installed, checked, ran under NOTIFY_SOCKET as tocsin, and purged"
