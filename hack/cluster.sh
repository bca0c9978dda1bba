#!/usr/bin/env bash
# A real, local Kubernetes control plane for development and tests: etcd, kube-apiserver and
# kube-controller-manager built from the Go module proxy (hack/build.sh), with TLS, RBAC,
# service-account token signing and the validating admission plugins. No Docker needed.
#
#   hack/cluster.sh up       start (or reuse) the control plane; prints the admin kubeconfig path
#   hack/cluster.sh down     stop every process it started (by pid) and remove its data
#   hack/cluster.sh env      print `export KUBECONFIG=...` for eval
#   hack/cluster.sh status   print whether each component runs and the API server is ready
#   hack/cluster.sh stop-apiserver    stop the kube-apiserver alone (etcd and the controller
#                                     manager keep running); its command line is kept
#   hack/cluster.sh start-apiserver   start it again with the same flags, port and etcd; waits ready
#   hack/cluster.sh restart-apiserver both of the above (fault tests: clients must reconnect)
#
# State lives in $CLUSTER_DIR (default: <repo>/.local/cluster), so several control planes can
# run side by side (the test suite uses its own directory). Ports are picked free at `up`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_DIR=${CLUSTER_DIR:-$REPO_ROOT/.local/cluster}
PKI=$CLUSTER_DIR/pki
KUBECONFIG_PATH=$CLUSTER_DIR/admin.kubeconfig

is_ready() {
  [[ -f $KUBECONFIG_PATH ]] && kubectl --kubeconfig "$KUBECONFIG_PATH" --request-timeout=2s get --raw /readyz 2>/dev/null | grep -qx ok
}

running() { [[ -f $CLUSTER_DIR/$1.pid ]] && kill -0 "$(cat "$CLUSTER_DIR/$1.pid")" 2>/dev/null; }

# failed NAME says why a component did not come up, with its log tail (test temp dirs vanish).
failed() { printf '%s did not start; last lines of %s:\n%s' "$1" "$CLUSTER_DIR/$1.log" "$(tail -n 20 "$CLUSTER_DIR/$1.log" 2>/dev/null)"; }

make_pki() {
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=readiness-local-ca" 2>/dev/null
    sign() { # name subject extensions
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
        -days 3650 -extfile <(printf '%b' "$3") 2>/dev/null
      rm -f "$1.csr"
    }
    sign apiserver "/CN=kube-apiserver" \
      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth"
    sign admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() {
  local port=$1
  KUBECONFIG=$KUBECONFIG_PATH kubectl config set-cluster local --server="https://127.0.0.1:$port" \
    --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
  KUBECONFIG=$KUBECONFIG_PATH kubectl config set-credentials admin \
    --client-certificate="$PKI/admin.crt" --client-key="$PKI/admin.key" --embed-certs=true >/dev/null
  KUBECONFIG=$KUBECONFIG_PATH kubectl config set-context local --cluster=local --user=admin >/dev/null
  KUBECONFIG=$KUBECONFIG_PATH kubectl config use-context local >/dev/null
  chmod 600 "$KUBECONFIG_PATH"
}

# start NAME CMD... runs CMD in its own session, logging to NAME.log, pid in NAME.pid.
start() {
  local name=$1; shift
  setsid "$@" >"$CLUSTER_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$CLUSTER_DIR/$name.pid"
}

up() {
  if running etcd && running apiserver && is_ready; then
    log "already running"
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  down_quiet
  "$HACK_DIR/build.sh" etcd
  "$HACK_DIR/build.sh" kube
  local kube etcd; kube=$(kube_bin_dir)/kube; etcd=$(etcd_bin_dir)/etcd
  mkdir -p "$CLUSTER_DIR"
  make_pki

  local etcd_port peer_port api_port kcm_port
  read -r etcd_port peer_port api_port kcm_port < <(free_ports 4)
  start etcd "$etcd" --name local --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "local=http://127.0.0.1:$peer_port" --unsafe-no-fsync --quota-backend-bytes 8589934592 \
    --log-level warn
  WAIT_SECONDS=30 wait_for curl -sf "http://127.0.0.1:$etcd_port/health" || die "$(failed etcd)"

  start apiserver "$kube" apiserver \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --secure-port "$api_port" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --enable-admission-plugins NamespaceLifecycle,ServiceAccount,DefaultStorageClass,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook,ResourceQuota \
    --allow-privileged=true --profiling=false \
    --cert-dir "$CLUSTER_DIR/apiserver-certs"
  write_kubeconfig "$api_port"
  WAIT_SECONDS=90 wait_for is_ready || die "$(failed apiserver)"

  start controller-manager "$kube" controller-manager \
    --kubeconfig "$KUBECONFIG_PATH" --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=false \
    --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl,-horizontal-pod-autoscaler-controller' \
    --bind-address 127.0.0.1 --secure-port "$kcm_port"
  # The service-account controller creating "default" proves the controller manager works.
  WAIT_SECONDS=120 wait_for kubectl --kubeconfig "$KUBECONFIG_PATH" -n default get serviceaccount default \
    || die "$(failed controller-manager)"
  log "ready: kube-apiserver https://127.0.0.1:$api_port ($KUBE_VERSION), etcd :$etcd_port"
  echo "$KUBECONFIG_PATH"
}

down_quiet() {
  local name
  for name in controller-manager apiserver etcd; do stop_pidfile "$CLUSTER_DIR/$name.pid"; done
  rm -rf "$CLUSTER_DIR/etcd" "$CLUSTER_DIR/pki" "$CLUSTER_DIR/apiserver-certs" "$KUBECONFIG_PATH"
}

down() {
  [[ -d $CLUSTER_DIR ]] || { log "nothing to stop"; return 0; }
  down_quiet
  rm -rf "$CLUSTER_DIR"
  log "stopped"
}

status() {
  local name rc=0
  for name in etcd apiserver controller-manager; do
    if running "$name"; then echo "$name: running (pid $(cat "$CLUSTER_DIR/$name.pid"))"; else echo "$name: stopped"; rc=1; fi
  done
  if is_ready; then echo "apiserver: ready ($KUBECONFIG_PATH)"; else echo "apiserver: not ready"; rc=1; fi
  return $rc
}

# The API server's command line (NUL-separated), saved from /proc when it is stopped alone.
APISERVER_CMDLINE=$CLUSTER_DIR/apiserver.cmdline

stop_apiserver() {
  running apiserver || die "kube-apiserver is not running (state: $CLUSTER_DIR)"
  cp "/proc/$(cat "$CLUSTER_DIR/apiserver.pid")/cmdline" "$APISERVER_CMDLINE"
  stop_pidfile "$CLUSTER_DIR/apiserver.pid"
  log "kube-apiserver stopped"
}

start_apiserver() {
  running apiserver && { log "kube-apiserver already running"; return 0; }
  [[ -s $APISERVER_CMDLINE ]] || die "no saved kube-apiserver command line: run stop-apiserver first"
  running etcd || die "etcd is not running: use 'up'"
  local -a cmd
  mapfile -d '' -t cmd <"$APISERVER_CMDLINE"
  echo "--- restarted $(date -u +%FT%TZ)" >>"$CLUSTER_DIR/apiserver.log"
  setsid "${cmd[@]}" >>"$CLUSTER_DIR/apiserver.log" 2>&1 </dev/null &
  echo $! >"$CLUSTER_DIR/apiserver.pid"
  WAIT_SECONDS=90 wait_for is_ready || die "$(failed apiserver)"
  log "kube-apiserver ready again"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_PATH" ;;
  status) status ;;
  stop-apiserver) stop_apiserver ;;
  start-apiserver) start_apiserver ;;
  restart-apiserver) stop_apiserver; start_apiserver ;;
  *) die "usage: $0 up|down|env|status|stop-apiserver|start-apiserver|restart-apiserver" ;;
esac
