#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package) on a free loopback port: deterministic history
# loaded by `promtool tsdb create-blocks-from openmetrics` backfill, and live series scraped from
# the load generator (hack/loadgen.py) every 2 s.
#
#   hack/prometheus.sh up [--scrape HOST:PORT ...] [FILE.om ...]
#                                         backfill the files (if any), start; prints the URL
#   hack/prometheus.sh up ... --rules FILE.yaml
#                                         also load a rules file (recording rules; repeatable)
#   hack/prometheus.sh rules FILE.yaml    add a rules file to the running Prometheus (reload)
#   hack/prometheus.sh scrape HOST:PORT
#                                         add a live target to the running Prometheus (reload)
#   hack/prometheus.sh load FILE.om ...   backfill more series and restart so they are served
#   hack/prometheus.sh down               stop it and remove its data
#   hack/prometheus.sh env                print `export PROMETHEUS_URL=...`
#
# Live targets are scraped with `honor_labels: true` (the load generator sets `job`, `instance`,
# `namespace`, `pod`, `container` per pod as a kube-prometheus scrape would). The series carry no
# `deployment` label: the operator maps pods to their Deployments itself (issue #14).
#
# OpenMetrics input: every sample needs a timestamp in seconds, counters end in _total, and the
# file ends with `# EOF`. Overlapping blocks are allowed by Prometheus >= 2.39, so loads stack.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROM_DIR=${PROM_DIR:-$REPO_ROOT/.local/prometheus}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-2s}
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

# $PROM_DIR/targets holds one "HOST:PORT" line per live target; the config is made from it.
add_target() {
  local target=$1
  [[ $target =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "a scrape target is HOST:PORT, not '$target'"
  mkdir -p "$PROM_DIR"
  grep -qx "$target" "$PROM_DIR/targets" 2>/dev/null || echo "$target" >>"$PROM_DIR/targets"
}

# Rules files are copied into $PROM_DIR/rules/ (checked by promtool first); the config globs them.
add_rules() {
  local file=$1
  [[ -f $file ]] || die "no such rules file: $file"
  promtool check rules "$file" >"$PROM_DIR/rules-check.log" 2>&1 \
    || die "bad rules file $file: $(tail -n 3 "$PROM_DIR/rules-check.log")"
  mkdir -p "$PROM_DIR/rules"
  cp "$file" "$PROM_DIR/rules/$(basename "$file" .yaml).yaml"
}

write_config() {
  local n=0 target
  touch "$PROM_DIR/targets"
  {
    # Every query is logged to $PROM_DIR/queries.log (what the operator asks, for benchmarks and debugging).
    printf 'global:\n  scrape_interval: 1m\n  query_log_file: %s/queries.log\nrule_files: ["%s/rules/*.yaml"]\nscrape_configs:\n' \
      "$PROM_DIR" "$PROM_DIR"
    [[ -s $PROM_DIR/targets ]] || printf '  []\n'
    while read -r target _; do
      [[ -n $target ]] || continue
      n=$((n + 1))
      printf '  - job_name: loadgen-%d\n    honor_labels: true\n    scrape_interval: %s\n    scrape_timeout: %s\n' \
        "$n" "$SCRAPE_INTERVAL" "$SCRAPE_INTERVAL"
      printf '    static_configs: [{targets: ["%s"]}]\n' "$target"
    done <"$PROM_DIR/targets"
  } >"$PROM_DIR/prometheus.yml"
  promtool check config "$PROM_DIR/prometheus.yml" >"$PROM_DIR/check.log" 2>&1 \
    || die "bad Prometheus config: $(tail -n 3 "$PROM_DIR/check.log")"
}

start() {
  # Keep the port across restarts so clients configured with the URL keep working.
  local port; port=$(url | sed -n 's/.*:\([0-9]*\)$/\1/p'); [[ -n $port ]] || port=$(free_port)
  write_config
  setsid prometheus --config.file "$PROM_DIR/prometheus.yml" --storage.tsdb.path "$PROM_DIR/data" \
    --storage.tsdb.retention.time 100y --web.listen-address "127.0.0.1:$port" --web.enable-lifecycle --web.enable-admin-api \
    --log.level warn >"$PROM_DIR/prometheus.log" 2>&1 </dev/null &
  echo $! >"$PROM_DIR/prometheus.pid"
  echo "http://127.0.0.1:$port" >"$PROM_DIR/url"
  WAIT_SECONDS=60 wait_for curl -sf "http://127.0.0.1:$port/-/ready" \
    || die "prometheus did not start; last lines of $PROM_DIR/prometheus.log: $(tail -n 5 "$PROM_DIR/prometheus.log")"
}

reload() {
  write_config
  curl -sf -X POST "$(url)/-/reload" >/dev/null || die "prometheus did not reload: $PROM_DIR/prometheus.log"
}

# parse_live_args ARGS...: --scrape into targets, the rest into FILES.
FILES=()
parse_live_args() {
  local targets=()
  while (($#)); do
    case $1 in
      --scrape) [[ $# -ge 2 ]] || die "--scrape needs HOST:PORT"; targets+=("$2"); shift 2 ;;
      --scrape=*) targets+=("${1#--scrape=}"); shift ;;
      --rules) [[ $# -ge 2 ]] || die "--rules needs FILE"; add_rules "$2"; shift 2 ;;
      *) FILES+=("$1"); shift ;;
    esac
  done
  local t; for t in "${targets[@]}"; do add_target "$t"; done
}

case "${1:-}" in
  up)
    shift; mkdir -p "$PROM_DIR"; parse_live_args "$@"
    if running; then
      backfill "${FILES[@]}"
      if ((${#FILES[@]})); then stop_pidfile "$PROM_DIR/prometheus.pid"; start; else reload; fi
    else backfill "${FILES[@]}"; start; fi
    log "ready: $(url)"; url ;;
  scrape)
    shift; [[ $# -ge 1 ]] || die "usage: $0 scrape HOST:PORT"
    target=$1; shift
    parse_live_args --scrape "$target" "$@"
    ((${#FILES[@]} == 0)) || die "unexpected arguments: ${FILES[*]}"
    running || die "prometheus is not running (state: $PROM_DIR): use 'up'"
    reload; url ;;
  rules)
    shift; [[ $# -ge 1 ]] || die "usage: $0 rules FILE.yaml ..."
    running || die "prometheus is not running (state: $PROM_DIR): use 'up'"
    for f in "$@"; do add_rules "$f"; done
    reload; url ;;
  load)
    shift; backfill "$@"
    if running; then stop_pidfile "$PROM_DIR/prometheus.pid"; start; fi
    url ;;
  down) stop_pidfile "$PROM_DIR/prometheus.pid"; rm -rf "$PROM_DIR"; log "stopped" ;;
  env) echo "export PROMETHEUS_URL=$(url)" ;;
  *) die "usage: $0 up [--scrape HOST:PORT ...] [--rules FILE.yaml ...] [FILE.om ...]|scrape HOST:PORT|rules FILE.yaml ...|load FILE.om ...|down|env" ;;
esac
