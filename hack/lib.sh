# Shared helpers for hack/ scripts. Source it; it defines paths and small functions only.
# shellcheck shell=bash

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HACK_DIR/.." && pwd)
CACHE_ROOT=${READINESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/readiness-operator}

# Pinned versions: the cache is keyed by these (and by a hash of the build inputs).
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.19.5
KWOK_VERSION=v0.8.0
METRICS_SERVER_VERSION=v0.8.0
SLOTH_VERSION=v0.16.0  # a test tool only: the SLO oracle of tests/e2e/test_sloth_oracle.py

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# free_ports N prints N distinct TCP ports on 127.0.0.1 that nothing listens on right now (all
# sockets are held open together, so the kernel cannot hand out the same port twice).
free_ports() {
  python3 - "${1:-1}" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}
free_port() { free_ports 1; }

# inputs_hash prints a short hash of the files a build depends on, so a changed go.mod rebuilds.
inputs_hash() {
  cat "$@" | sha256sum | cut -c1-12
}

kube_bin_dir() { echo "$CACHE_ROOT/bin/kube-$KUBE_VERSION-$(inputs_hash "$HACK_DIR"/cluster/kube/go.mod "$HACK_DIR"/cluster/kube/go.sum "$HACK_DIR"/cluster/kube/main.go)"; }
etcd_bin_dir() { echo "$CACHE_ROOT/bin/etcd-$ETCD_VERSION-$(inputs_hash "$HACK_DIR"/cluster/etcd/go.mod "$HACK_DIR"/cluster/etcd/go.sum "$HACK_DIR"/cluster/etcd/main.go)"; }
helm_bin_dir() { echo "$CACHE_ROOT/bin/helm-$HELM_VERSION"; }
kwok_bin_dir() { echo "$CACHE_ROOT/bin/kwok-$KWOK_VERSION"; }
sloth_bin_dir() { echo "$CACHE_ROOT/bin/sloth-$SLOTH_VERSION"; }
metrics_server_bin_dir() { echo "$CACHE_ROOT/bin/metrics-server-$METRICS_SERVER_VERSION"; }
# kwok's own stage and metrics YAML, read at run time from its module (filled by `go install`).
kwok_module_dir() { echo "$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION"; }

# Prefer the kubectl built with the control plane (same version as the server) and our helm.
PATH="$(kube_bin_dir):$(helm_bin_dir):$PATH"
export PATH

# wait_for CMD... retries a command for up to $WAIT_SECONDS (default 60) seconds.
wait_for() {
  local deadline=$((SECONDS + ${WAIT_SECONDS:-60}))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

# stop_pidfile FILE stops the process recorded in FILE (TERM, then KILL) and removes FILE.
stop_pidfile() {
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# stop_pidfiles FILE... stops all those processes at once (TERM to each, up to 5 s for all, then KILL):
# a teardown waits for the slowest one, not the sum of them.
stop_pidfiles() {
  local file pids=() pid alive
  for file in "$@"; do
    [[ -f $file ]] || continue
    pid=$(cat "$file")
    kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1 && break; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$@"
}
