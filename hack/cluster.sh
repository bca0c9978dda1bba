#!/usr/bin/env bash
# A real, local, living Kubernetes cluster for development and tests: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler built from the Go module proxy (hack/build.sh), with
# TLS, RBAC, service-account token signing, the validating admission plugins and the aggregation
# layer; kwok simulating the kubelets of $NODES fake Nodes spread over three zones (pods are
# scheduled, turn Running/Ready, Deployments become Available, chaos on demand), and metrics-server
# serving the metrics API from kwok's emulated kubelet resource metrics, so HPAs compute. No Docker.
#
#   hack/cluster.sh up       start (or reuse) the cluster; prints the admin kubeconfig path
#   hack/cluster.sh down     stop every process it started (by pid) and remove its data
#   hack/cluster.sh env      print `export KUBECONFIG=...` for eval
#   hack/cluster.sh status   print whether each component runs and the API server is ready
#   hack/cluster.sh stop-apiserver    stop the kube-apiserver alone (everything else keeps
#                                     running); its command line is kept
#   hack/cluster.sh start-apiserver   start it again with the same flags, port and etcd; waits ready
#   hack/cluster.sh restart-apiserver both of the above (fault tests: clients must reconnect)
#
# NODES=N (default 3) fake Nodes kwok-node-0..N-1, zones zone-a/b/c round robin. NODES=0 is the
# bare control plane of old (no scheduler, kwok, metrics-server, HPA controller): pods stay
# Pending (hack/bench/operator_scale.py --no-pods).
# For large simulated clusters (hack/bench/operator_scale.py): NODE_PODS / NODE_CPU / NODE_MEMORY
# (default 110 / 8 / 32Gi) are each fake Node's capacity; KUBE_API_QPS=N lifts the client rate limit
# of the controller-manager and scheduler (default 20 / 50 requests/s: 30,000 pods would take 25 min);
# HPA_SYNC_PERIOD (default 5s, quick for tests; Kubernetes' own default is 15s). KWOK_PARALLELISM
# (default 16; kwok's own is 4) is how many pod stages kwok plays at once: with 4, a loaded API server
# made ~5 pods a second Running (the 30,000-pod benchmark), with 16 ~18.
# Chaos: label a pod (or a pod template) `readiness.dev/chaos=crash-loop` or `=oom-kill`
# (hack/cluster/stages/pod-chaos.yaml). Usage for HPAs: pod annotations
# `kwok.x-k8s.io/usage-cpu` / `kwok.x-k8s.io/usage-memory` (e.g. 250m, 300Mi; default 1m, 1Mi).
#
# State lives in $CLUSTER_DIR (default: <repo>/.local/cluster), so several clusters can run side by
# side (the test suite uses its own directory). Ports are picked free at `up`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_DIR=${CLUSTER_DIR:-$REPO_ROOT/.local/cluster}
PKI=$CLUSTER_DIR/pki
KUBECONFIG_PATH=$CLUSTER_DIR/admin.kubeconfig
NODES=${NODES:-3}
[[ $NODES =~ ^[0-9]+$ ]] || die "NODES must be a number, not '$NODES'"
NODE_PODS=${NODE_PODS:-110} NODE_CPU=${NODE_CPU:-8} NODE_MEMORY=${NODE_MEMORY:-32Gi}
HPA_SYNC_PERIOD=${HPA_SYNC_PERIOD:-5s}
KUBE_API_QPS=${KUBE_API_QPS:-}
KWOK_PARALLELISM=${KWOK_PARALLELISM:-16}
[[ $KWOK_PARALLELISM =~ ^[1-9][0-9]*$ ]] || die "KWOK_PARALLELISM must be a positive number, not '$KWOK_PARALLELISM'"
[[ -z $KUBE_API_QPS || $KUBE_API_QPS =~ ^[0-9]+$ ]] || die "KUBE_API_QPS must be a number, not '$KUBE_API_QPS'"
# Everything `up` may start (`down` stops them all at once).
COMPONENTS=(metrics-server kubelet-proxy kwok scheduler controller-manager apiserver etcd)

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
    # The aggregation layer: the API server proxies metrics.k8s.io to metrics-server with this
    # client certificate, from its own CA (front-proxy), as kubeadm does.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 \
      -subj "/CN=readiness-front-proxy-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout front-proxy-client.key -out front-proxy-client.csr \
      -subj "/CN=front-proxy-client" 2>/dev/null
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
      -CAcreateserial -out front-proxy-client.crt -days 3650 -extfile <(printf 'extendedKeyUsage=clientAuth') 2>/dev/null
    rm -f front-proxy-client.csr
    # Serving certificates: metrics-server (verified by the aggregator against the APIService's
    # caBundle, by its service DNS name) and the fake kubelets' metrics endpoint.
    sign metrics-server "/CN=metrics-server" \
      "subjectAltName=DNS:metrics-server.kube-system.svc,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
    sign kubelet "/CN=kwok-kubelet" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
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

# kwok's own stages (from its module) and ours: nodes initialise and heartbeat; pods get an IP
# and turn Running/Ready, complete, are deleted; chaos; resource usage from pod annotations and
# the emulated kubelet `/metrics/resource` for metrics-server.
kwok_configs() {
  local mod; mod=$(kwok_module_dir)/kustomize
  local file
  for file in stage/node/fast/node-initialize.yaml stage/node/heartbeat/node-heartbeat.yaml \
    stage/pod/fast/pod-ready.yaml stage/pod/fast/pod-complete.yaml stage/pod/fast/pod-delete.yaml \
    metrics/usage/usage-from-annotation.yaml metrics/resource/metrics-resource.yaml; do
    [[ -f $mod/$file ]] || die "kwok's $file is missing from $mod (hack/build.sh kwok restores it)"
    printf -- '--config=%s\n' "$mod/$file"
  done
  printf -- '--config=%s\n' "$HACK_DIR/cluster/stages/pod-chaos.yaml"
  cat > "$CLUSTER_DIR/kwok-configuration.yaml" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options: {podPlayStageParallelism: $KWOK_PARALLELISM, nodePlayStageParallelism: 4, nodeLeaseParallelism: 4}
YAML
  printf -- '--config=%s\n' "$CLUSTER_DIR/kwok-configuration.yaml"
}

# node_manifest INDEX KUBELET_PORT: a fake Node kwok manages (annotation kwok.x-k8s.io/node=fake),
# with a zone, a capacity like a mid-size VM, and its kubelet endpoint at 127.0.0.1:KUBELET_PORT
# (the metrics proxy), which is where metrics-server scrapes `/metrics/resource`.
node_manifest() {
  local i=$1 port=$2 zones=(zone-a zone-b zone-c)
  local name=kwok-node-$i zone=${zones[$((i % 3))]}
  # A /22 per node (1,022 pod IPs; a /24 ran out at 254 pods in the 30,000-pod benchmark on 100
  # nodes), from 10.64.0.0/10: room for 4,096 nodes.
  local cidr=10.$((64 + i / 64)).$(((i % 64) * 4)).0/22
  cat <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    node.kubernetes.io/instance-type: kwok-8x32
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: $zone
    type: kwok
spec:
  podCIDR: $cidr
  podCIDRs: [$cidr]
status:
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  - {type: Hostname, address: $name}
  daemonEndpoints:
    kubeletEndpoint: {Port: $port}
  capacity: {cpu: "$NODE_CPU", memory: $NODE_MEMORY, pods: "$NODE_PODS", ephemeral-storage: 100Gi}
  allocatable: {cpu: "$NODE_CPU", memory: $NODE_MEMORY, pods: "$NODE_PODS", ephemeral-storage: 100Gi}
YAML
}

# The metrics API (v1beta1.metrics.k8s.io) served by our metrics-server through the aggregation
# layer: an ExternalName Service pointing at loopback (the aggregator resolves it to host:port).
metrics_api_manifest() {
  local port=$1 ca; ca=$(base64 -w0 <"$PKI/ca.crt")
  cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system, labels: {k8s-app: metrics-server}}
spec:
  type: ExternalName
  externalName: 127.0.0.1
  ports: [{name: https, port: $port, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io, labels: {k8s-app: metrics-server}}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: $ca
  service: {name: metrics-server, namespace: kube-system, port: $port}
YAML
}

kctl() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# await NAME SECONDS CMD...: wait until CMD succeeds; fail at once (with the log tail) if the
# component NAME exits meanwhile, or after SECONDS.
await() {
  local name=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    running "$name" && ((SECONDS < deadline)) || die "$(failed "$name")"
    sleep 0.2
  done
}

nodes_ready() {
  [[ $(kctl get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True) -eq $NODES ]]
}

metrics_api_available() {
  kctl get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' | grep -qx True
}

up() {
  local name all=1
  for name in etcd apiserver controller-manager; do running "$name" || all=0; done
  if ((NODES > 0)); then for name in scheduler kwok kubelet-proxy metrics-server; do running "$name" || all=0; done; fi
  if ((all)) && is_ready; then
    log "already running"
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  down_quiet
  "$HACK_DIR/build.sh" etcd
  "$HACK_DIR/build.sh" kube
  if ((NODES > 0)); then "$HACK_DIR/build.sh" kwok; "$HACK_DIR/build.sh" metrics-server; fi
  local kube etcd; kube=$(kube_bin_dir)/kube; etcd=$(etcd_bin_dir)/etcd
  mkdir -p "$CLUSTER_DIR"
  make_pki

  local etcd_port peer_port api_port kcm_port sched_port kwok_port ms_port kubelet_ports
  # shellcheck disable=SC2207
  local ports=($(free_ports $((7 + NODES))))
  etcd_port=${ports[0]} peer_port=${ports[1]} api_port=${ports[2]} kcm_port=${ports[3]}
  sched_port=${ports[4]} kwok_port=${ports[5]} ms_port=${ports[6]} kubelet_ports=("${ports[@]:7}")
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
    --disable-admission-plugins TaintNodesByCondition \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --allow-privileged=true --profiling=false \
    --cert-dir "$CLUSTER_DIR/apiserver-certs"
  write_kubeconfig "$api_port"
  WAIT_SECONDS=90 wait_for is_ready || die "$(failed apiserver)"

  # The node lifecycle controller stays off (kwok's heartbeats are not a kubelet's), so the API server
  # must not taint new Nodes not-ready (TaintNodesByCondition, above): nothing would remove it.
  # Without metrics (NODES=0) the HPA controller would only log errors: leave it off there.
  local controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl'
  ((NODES > 0)) || controllers+=',-horizontal-pod-autoscaler-controller'
  local -a qps=()
  [[ -z $KUBE_API_QPS ]] || qps=(--kube-api-qps "$KUBE_API_QPS" --kube-api-burst "$((2 * KUBE_API_QPS))")
  start controller-manager "$kube" controller-manager \
    --kubeconfig "$KUBECONFIG_PATH" --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=false \
    --controllers "$controllers" \
    --horizontal-pod-autoscaler-sync-period "$HPA_SYNC_PERIOD" "${qps[@]}" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port"

  if ((NODES > 0)); then
    start scheduler "$kube" scheduler --kubeconfig "$KUBECONFIG_PATH" --leader-elect=false "${qps[@]}" \
      --authentication-kubeconfig "$KUBECONFIG_PATH" --authorization-kubeconfig "$KUBECONFIG_PATH" \
      --bind-address 127.0.0.1 --secure-port "$sched_port"
    local -a kwok_args; mapfile -t kwok_args < <(kwok_configs)
    start kwok "$(kwok_bin_dir)/kwok" --kubeconfig "$KUBECONFIG_PATH" "${kwok_args[@]}" \
      --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
      --cidr 10.64.0.0/10 --server-address "127.0.0.1:$kwok_port"
    local i node_args=() manifests=""
    for ((i = 0; i < NODES; i++)); do
      node_args+=("kwok-node-$i=${kubelet_ports[$i]}")
      manifests+=$(node_manifest "$i" "${kubelet_ports[$i]}")$'\n---\n'
    done
    start kubelet-proxy python3 "$HACK_DIR/cluster/kubelet_metrics_proxy.py" --kwok "http://127.0.0.1:$kwok_port" \
      --cert "$PKI/kubelet.crt" --key "$PKI/kubelet.key" "${node_args[@]}"
    start metrics-server "$(metrics_server_bin_dir)/metrics-server" \
      --kubeconfig "$KUBECONFIG_PATH" --authentication-kubeconfig "$KUBECONFIG_PATH" \
      --authorization-kubeconfig "$KUBECONFIG_PATH" \
      --bind-address 127.0.0.1 --secure-port "$ms_port" \
      --tls-cert-file "$PKI/metrics-server.crt" --tls-private-key-file "$PKI/metrics-server.key" \
      --kubelet-insecure-tls --kubelet-use-node-status-port --kubelet-preferred-address-types InternalIP \
      --metric-resolution 10s --kubelet-request-timeout 5s
    # Nodes are created with their status (a kubelet registers the same way); kwok then keeps
    # them Ready. Created before kwok is up, they are picked up when it starts.
    printf '%s' "$manifests" | kctl create -f - >/dev/null || die "creating the fake Nodes failed"
    metrics_api_manifest "$ms_port" | kctl apply -f - >/dev/null || die "registering the metrics API failed"
  fi

  # The service-account controller creating "default" proves the controller manager works.
  await controller-manager 120 kctl -n default get serviceaccount default
  if ((NODES > 0)); then
    await scheduler 60 curl -skf "https://127.0.0.1:$sched_port/healthz"
    await kwok 60 nodes_ready
    await kubelet-proxy 30 curl -skf "https://127.0.0.1:${kubelet_ports[0]}/healthz"
    await metrics-server 90 metrics_api_available
  fi
  log "ready: kube-apiserver https://127.0.0.1:$api_port ($KUBE_VERSION), etcd :$etcd_port, $NODES kwok nodes"
  echo "$KUBECONFIG_PATH"
}

down_quiet() {
  local name files=()
  for name in "${COMPONENTS[@]}"; do files+=("$CLUSTER_DIR/$name.pid"); done
  stop_pidfiles "${files[@]}"
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
  for name in etcd apiserver controller-manager scheduler kwok kubelet-proxy metrics-server; do
    if running "$name"; then echo "$name: running (pid $(cat "$CLUSTER_DIR/$name.pid"))"
    elif [[ -f $CLUSTER_DIR/$name.log ]]; then echo "$name: stopped"; rc=1
    fi
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
