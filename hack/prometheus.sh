#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package) on a free loopback port, with deterministic
# series loaded by `promtool tsdb create-blocks-from openmetrics` backfill.
#
#   hack/prometheus.sh up [FILE.om ...]   backfill the files (if any), start; prints the URL
#   hack/prometheus.sh load FILE.om ...   backfill more series and restart so they are served
#   hack/prometheus.sh down               stop it and remove its data
#   hack/prometheus.sh env                print `export PROMETHEUS_URL=...`
#
# OpenMetrics input: every sample needs a timestamp in seconds, counters end in _total, and the
# file ends with `# EOF`. Overlapping blocks are allowed by Prometheus >= 2.39, so loads stack.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROM_DIR=${PROM_DIR:-$REPO_ROOT/.local/prometheus}
command -v prometheus >/dev/null || die "prometheus not found: apt-get install prometheus"

url() { cat "$PROM_DIR/url" 2>/dev/null || true; }
running() { [[ -f $PROM_DIR/prometheus.pid ]] && kill -0 "$(cat "$PROM_DIR/prometheus.pid")" 2>/dev/null; }

backfill() {
  local file
  mkdir -p "$PROM_DIR/data"
  for file in "$@"; do
    [[ -f $file ]] || die "no such file: $file"
    promtool tsdb create-blocks-from openmetrics "$file" "$PROM_DIR/data" >"$PROM_DIR/backfill.log" 2>&1 \
      || die "backfill of $file failed: $(tail -n 3 "$PROM_DIR/backfill.log")"
  done
}

start() {
  # Keep the port across restarts so clients configured with the URL keep working.
  local port; port=$(url | sed -n 's/.*:\([0-9]*\)$/\1/p'); [[ -n $port ]] || port=$(free_port)
  printf 'global:\n  scrape_interval: 1m\nscrape_configs: []\n' >"$PROM_DIR/prometheus.yml"
  setsid prometheus --config.file "$PROM_DIR/prometheus.yml" --storage.tsdb.path "$PROM_DIR/data" \
    --storage.tsdb.retention.time 100y --web.listen-address "127.0.0.1:$port" --web.enable-lifecycle --web.enable-admin-api \
    --log.level warn >"$PROM_DIR/prometheus.log" 2>&1 </dev/null &
  echo $! >"$PROM_DIR/prometheus.pid"
  echo "http://127.0.0.1:$port" >"$PROM_DIR/url"
  WAIT_SECONDS=60 wait_for curl -sf "http://127.0.0.1:$port/-/ready" || die "prometheus did not start: $PROM_DIR/prometheus.log"
}

case "${1:-}" in
  up)
    shift
    if running; then backfill "$@"; [[ $# -eq 0 ]] || { stop_pidfile "$PROM_DIR/prometheus.pid"; start; }
    else mkdir -p "$PROM_DIR"; backfill "$@"; start; fi
    log "ready: $(url)"; url ;;
  load)
    shift; backfill "$@"
    if running; then stop_pidfile "$PROM_DIR/prometheus.pid"; start; fi
    url ;;
  down) stop_pidfile "$PROM_DIR/prometheus.pid"; rm -rf "$PROM_DIR"; log "stopped" ;;
  env) echo "export PROMETHEUS_URL=$(url)" ;;
  *) die "usage: $0 up [FILE.om ...]|load FILE.om ...|down|env" ;;
esac
