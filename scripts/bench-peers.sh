#!/usr/bin/env bash
# Install the peers the benchmarks run beside tocsin (Debian packages), when missing:
# Alertmanager, Prometheus, blackbox_exporter, and nginx as a probe target.
# Usage: ./scripts/bench-peers.sh   then   cargo bench --bench NAME   (see BENCHMARKS.md)
set -euo pipefail
need=()
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || need+=(prometheus-blackbox-exporter)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v perf >/dev/null 2>&1 || need+=(linux-perf)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# Debian starts the packaged services; the benchmarks start their own on 127.0.0.1 ports.
for service in prometheus prometheus-alertmanager prometheus-blackbox-exporter nginx; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
        echo "note: the system's $service service is running; the benchmarks do not use it"
    fi
done
echo "benchmark peers ready"
