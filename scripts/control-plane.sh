#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver, no kubelet, no controller
# manager) on loopback, for tests and for trying cluster mode locally.
#
#   scripts/control-plane.sh build        build etcd, kube-apiserver, kubectl, and helm
#                                         and CoreDNS for tests/cluster/deploy/, once (from
#                                         Go modules) into the cache; fetch the Gateway
#                                         API and Prometheus Operator CRDs there too
#   scripts/control-plane.sh start DIR    start etcd + kube-apiserver with state in DIR;
#                                         prints DIR/kubeconfig
#   scripts/control-plane.sh stop DIR     stop both
#   scripts/control-plane.sh stop-apiserver DIR / start-apiserver DIR
#                                         restart only the API server (same port, same
#                                         etcd): an API server outage
#   scripts/control-plane.sh up [DIR]     build if needed, start, install crds/ and
#                                         print how to use it
#   scripts/control-plane.sh bin-dir      print where the binaries are cached
#   scripts/control-plane.sh gateway-crds print the directory of the Gateway API CRDs
#                                         (standard channel: GatewayClass, Gateway),
#                                         fetching them first if needed; install them
#                                         with `kubectl apply --server-side -f DIR`
#   scripts/control-plane.sh prometheus-operator-crds
#                                         the same for the Prometheus Operator's
#                                         ServiceMonitor, PodMonitor and PrometheusRule
#                                         CRDs (what the chart's monitoring objects need)
#   scripts/control-plane.sh promtool     print the path of promtool (checks and unit-tests
#                                         the chart's alerting rules), building it first
#                                         if needed; build makes it too
#
# The binaries live outside the repository, in ${FAILOVER_DNS_CACHE:-~/.cache/failover-dns}/bin,
# the Gateway API CRDs beside them (gateway-api-VERSION/), the Prometheus Operator's
# too (prometheus-operator-VERSION/); build fetches all of them.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${FAILOVER_DNS_CACHE:-$HOME/.cache/failover-dns}"
BIN="$CACHE/bin"

K8S_VERSION=v1.34.2
STAGING_VERSION=v0.34.2 # k8s.io/kubernetes pins its staging modules at v0.0.0; these are their tags
ETCD_VERSION=v3.6.5
HELM_VERSION=v3.22.0 # for the chart's tests (tests/cluster/deploy/)
HELM_K8S_MINOR=37    # the Kubernetes minor of its k8s.io/client-go (v0.37), as its release sets it
COREDNS_VERSION=v1.15.0 # for the deploy/coredns/ snippets (tests/cluster/deploy/)
# promtool, for the alerting rules' tests (tests/process/monitoring.rs), from the Go
# module github.com/prometheus/prometheus: release 3.MINOR.PATCH is its v0.3MINOR.PATCH.
PROMETHEUS_VERSION=v0.316.0
PROMTOOL_VERSION=3.16.0
# Gateway API CRDs (valuesFrom.gateway), from the Go module's config/crd/standard/;
# v1.7.0 needs a newer Go than v1.6 (only to download it: nothing is built).
GATEWAY_API_VERSION=v1.6.3
GATEWAY_CRDS="$CACHE/gateway-api-$GATEWAY_API_VERSION"
GATEWAY_CRD_FILES=(gateway.networking.k8s.io_gatewayclasses.yaml gateway.networking.k8s.io_gateways.yaml)
# Prometheus Operator CRDs (the chart's ServiceMonitor, PodMonitor, PrometheusRule and
# deploy/components/monitoring), from the Go module's example/prometheus-operator-crd/.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
PROMETHEUS_OPERATOR_CRDS="$CACHE/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
PROMETHEUS_OPERATOR_CRD_FILES=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_podmonitors.yaml
  monitoring.coreos.com_prometheusrules.yaml)

log() { echo "control-plane: $*" >&2; }
die() { log "$*"; exit 1; }

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  # Where the official Go distribution installs itself.
  if [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go; return; fi
  die "Go is needed to build the control plane (go 1.24 or newer)"
}

# --- build -------------------------------------------------------------------

# Output captured whole: `| grep -q` would end the pipe early and, under pipefail,
# fail on the writer's SIGPIPE.
has_line() {
  local out
  out="$("${@:2}" 2>/dev/null)" || return 1
  grep -qxF "$1" <<<"$out"
}

kube_ok() {
  [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kubectl" ] &&
    has_line "Kubernetes $K8S_VERSION" "$BIN/kube-apiserver" --version &&
    has_line "Client Version: $K8S_VERSION" "$BIN/kubectl" version --client
}

etcd_ok() {
  [ -x "$BIN/etcd" ] && has_line "etcd Version: ${ETCD_VERSION#v}" "$BIN/etcd" --version
}

helm_ok() {
  [ -x "$BIN/helm" ] && has_line "$HELM_VERSION" "$BIN/helm" version --template '{{.Version}}'
}

coredns_ok() {
  [ -x "$BIN/coredns" ] && has_line "CoreDNS-${COREDNS_VERSION#v}" "$BIN/coredns" -version
}

promtool_ok() {
  [ -x "$BIN/promtool" ] || return 1
  local out
  out="$("$BIN/promtool" --version 2>/dev/null)" || return 1
  grep -q "^promtool, version $PROMTOOL_VERSION " <<<"$out"
}

# Every file there, of the pinned release (its bundle-version annotation).
gateway_crds_ok() {
  local f
  for f in "${GATEWAY_CRD_FILES[@]}"; do
    [ -s "$GATEWAY_CRDS/$f" ] &&
      grep -qF "gateway.networking.k8s.io/bundle-version: $GATEWAY_API_VERSION" "$GATEWAY_CRDS/$f" ||
      return 1
  done
}

# Every file there, of the pinned release (its operator.prometheus.io/version annotation).
prometheus_operator_crds_ok() {
  local f
  for f in "${PROMETHEUS_OPERATOR_CRD_FILES[@]}"; do
    [ -s "$PROMETHEUS_OPERATOR_CRDS/$f" ] &&
      grep -qF "operator.prometheus.io/version: ${PROMETHEUS_OPERATOR_VERSION#v}" "$PROMETHEUS_OPERATOR_CRDS/$f" ||
      return 1
  done
}

# What start needs; build also makes the tools of tests/cluster/deploy/ and fetches the
# Gateway API and Prometheus Operator CRDs.
built() { kube_ok && etcd_ok; }
tools_ok() { helm_ok && coredns_ok && promtool_ok && gateway_crds_ok && prometheus_operator_crds_ok; }

build_kube() {
  local go="$1" work="$2"
  mkdir -p "$work/kube"
  cd "$work/kube"
  printf 'module failover-dns-control-plane\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n' "$K8S_VERSION" >go.mod
  log "downloading k8s.io/kubernetes $K8S_VERSION"
  local gomod
  gomod="$("$go" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes $K8S_VERSION"
  # Every staging module k/k replaces with ./staging/... gets its published tag instead.
  local staging
  staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$gomod")"
  [ -n "$staging" ] || die "no staging modules found in $gomod"
  {
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } >>go.mod
  local pkg=k8s.io/kubernetes/cmd
  # The version the binaries report (kubectl compares client and server by it).
  local minor="${K8S_VERSION#v1.}" ldflags="-s -w"
  minor="${minor%%.*}"
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
  done
  log "building kube-apiserver and kubectl $K8S_VERSION (several minutes)"
  GOFLAGS=-mod=mod CGO_ENABLED=0 "$go" build -ldflags "$ldflags" -o "$work/out-kube/" \
    "$pkg/kube-apiserver" "$pkg/kubectl"
}

build_etcd() {
  local go="$1" work="$2"
  mkdir -p "$work/etcd"
  cd "$work/etcd"
  # `go install` refuses etcd's server module (it has replace directives); a wrapper works.
  printf 'module failover-dns-etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >go.mod
  cat >main.go <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  log "building etcd $ETCD_VERSION"
  GOFLAGS=-mod=mod CGO_ENABLED=0 "$go" build -ldflags "-s -w" -o "$work/out-etcd/etcd" .
}

build_helm() {
  local go="$1" work="$2"
  log "building helm $HELM_VERSION"
  # `go install` leaves the versions helm reports (its own, and the Kubernetes version
  # templates and lint assume) at their defaults; these are what its release build sets.
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$HELM_K8S_MINOR"
  done
  GOBIN="$work/out-helm" CGO_ENABLED=0 "$go" install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# CoreDNS with only the plugins deploy/coredns/ uses (the full set pulls in every
# cloud SDK), the way CoreDNS documents custom builds: its own main, fewer directives.
build_coredns() {
  local go="$1" work="$2"
  mkdir -p "$work/coredns"
  cd "$work/coredns"
  printf 'module failover-dns-coredns\n\ngo 1.24.0\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" >go.mod
  cat >main.go <<'EOF'
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/reload"
)

// In CoreDNS's own order (core/dnsserver/zdirectives.go).
func init() {
	dnsserver.Directives = []string{"reload", "bind", "prometheus", "errors", "log", "cache", "loop", "forward"}
}

func main() { coremain.Run() }
EOF
  log "building CoreDNS $COREDNS_VERSION (the plugins deploy/coredns/ uses)"
  GOFLAGS=-mod=mod CGO_ENABLED=0 "$go" build -ldflags "-s -w" -o "$work/out-coredns/coredns" .
}

build_promtool() {
  local go="$1" work="$2"
  log "building promtool $PROMTOOL_VERSION (github.com/prometheus/prometheus $PROMETHEUS_VERSION; a few minutes)"
  # `go install` leaves the version promtool reports empty; its release builds set it.
  local ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMTOOL_VERSION"
  GOBIN="$work/out-promtool" CGO_ENABLED=0 "$go" install -ldflags "$ldflags" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
}

# Copies FILES of directory SUBDIR of the Go module MODULE at VERSION, from the Go module
# proxy (or Go's module cache; downloaded, not built), into DEST; the caller holds the
# build lock and owns WORK.
#   fetch_module_files GO WORK MODULE VERSION SUBDIR DEST FILE...
fetch_module_files() {
  local go="$1" work="$2" module="$3" version="$4" subdir="$5" dest="$6"
  shift 6
  local out="$work/out-${module//\//_}"
  mkdir -p "$work/module" "$out"
  (
    cd "$work/module" # no go.mod here: `go mod download` of a module by its version
    log "downloading $module $version (its $subdir)"
    local dir f
    dir="$("$go" mod download -json "$module@$version" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [ -d "$dir/$subdir" ] || die "could not download $module $version"
    for f in "$@"; do
      [ -s "$dir/$subdir/$f" ] || die "$module $version has no $subdir/$f"
      # The module cache is read-only; the copies need not be.
      cp "$dir/$subdir/$f" "$out/$f"
      chmod 644 "$out/$f"
    done
  ) || exit 1
  # Same file system as the cache: the directory appears whole or not at all.
  rm -rf "$dest"
  mv "$out" "$dest"
}

# The Gateway API CRDs (config/crd/standard/ of sigs.k8s.io/gateway-api), unless there.
ensure_gateway_crds() {
  gateway_crds_ok || fetch_module_files "$1" "$2" sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION" \
    config/crd/standard "$GATEWAY_CRDS" "${GATEWAY_CRD_FILES[@]}"
}

# The Prometheus Operator CRDs (example/prometheus-operator-crd/ of its module), unless there.
ensure_prometheus_operator_crds() {
  prometheus_operator_crds_ok || fetch_module_files "$1" "$2" \
    github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
    example/prometheus-operator-crd "$PROMETHEUS_OPERATOR_CRDS" "${PROMETHEUS_OPERATOR_CRD_FILES[@]}"
}

cmd_build() {
  mkdir -p "$BIN"
  # One build at a time (a test run and a developer may both ask for it).
  exec 9>"$CACHE/build.lock"
  flock 9
  if built && tools_ok; then log "binaries up to date in $BIN"; return; fi
  local go work start
  go="$(find_go)"
  work="$(mktemp -d "$CACHE/build.XXXXXX")"
  BUILD_DIR="$work"
  trap 'rm -rf "${BUILD_DIR:-}"' EXIT
  start=$SECONDS
  if ! etcd_ok; then
    (build_etcd "$go" "$work")
    mv -f "$work/out-etcd/etcd" "$BIN/etcd"
  fi
  if ! kube_ok; then
    (build_kube "$go" "$work")
    # Same file system as $BIN, so each mv is atomic.
    mv -f "$work/out-kube/kubectl" "$BIN/kubectl"
    mv -f "$work/out-kube/kube-apiserver" "$BIN/kube-apiserver"
  fi
  if ! helm_ok; then
    (build_helm "$go" "$work")
    mv -f "$work/out-helm/helm" "$BIN/helm"
  fi
  if ! coredns_ok; then
    (build_coredns "$go" "$work")
    mv -f "$work/out-coredns/coredns" "$BIN/coredns"
  fi
  promtool_ok || make_promtool "$go" "$work"
  ensure_gateway_crds "$go" "$work"
  ensure_prometheus_operator_crds "$go" "$work"
  built && tools_ok || die "the built binaries do not report the expected versions"
  log "built in $((SECONDS - start)) s: $BIN"
}

# Makes OK hold, under the build lock, by running MAKE GO WORK unless it holds already,
# then prints WHERE; WHAT names it when MAKE did not make it so.
#   ensure_cached OK MAKE WHERE WHAT
ensure_cached() {
  local ok="$1" make="$2" where="$3" what="$4"
  mkdir -p "$CACHE" "$BIN"
  if ! "$ok"; then
    exec 9>"$CACHE/build.lock"
    flock 9
    if ! "$ok"; then
      local go work
      go="$(find_go)"
      work="$(mktemp -d "$CACHE/build.XXXXXX")"
      BUILD_DIR="$work"
      trap 'rm -rf "${BUILD_DIR:-}"' EXIT
      "$make" "$go" "$work"
      "$ok" || die "$what"
    fi
  fi
  echo "$where"
}

cmd_gateway_crds() {
  ensure_cached gateway_crds_ok ensure_gateway_crds "$GATEWAY_CRDS" \
    "the Gateway API CRDs in $GATEWAY_CRDS are not those of $GATEWAY_API_VERSION"
}

cmd_prometheus_operator_crds() {
  ensure_cached prometheus_operator_crds_ok ensure_prometheus_operator_crds "$PROMETHEUS_OPERATOR_CRDS" \
    "the Prometheus Operator CRDs in $PROMETHEUS_OPERATOR_CRDS are not those of $PROMETHEUS_OPERATOR_VERSION"
}

# Builds promtool into the cache bin dir.
make_promtool() {
  (build_promtool "$1" "$2") || exit 1
  mv -f "$2/out-promtool/promtool" "$BIN/promtool"
}

# The path of promtool, built first unless it is there (`build` makes it too).
cmd_promtool() {
  ensure_cached promtool_ok make_promtool "$BIN/promtool" \
    "$BIN/promtool does not report version $PROMTOOL_VERSION"
}

# --- start / stop ------------------------------------------------------------

need_binaries() {
  built || die "etcd/kube-apiserver/kubectl missing or outdated in $BIN: run scripts/control-plane.sh build"
}

# A port nobody listens on, below the kernel's ephemeral range so that outgoing
# connections do not take it meanwhile.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

kill_pidfile() {
  local f="$1"
  [ -f "$f" ] || return 0
  local pid
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

start_etcd() {
  local dir="$1" client peer
  client="$(free_port)"
  peer="$(free_port)"
  [ "$client" != "$peer" ] || peer="$(free_port)"
  echo "$client" >"$dir/etcd.port"
  setsid "$BIN/etcd" --name default --data-dir "$dir/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" --log-level warn \
    </dev/null >>"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
}

cmd_start_apiserver() {
  local dir="$1"
  need_binaries
  [ -f "$dir/apiserver.port" ] || die "$dir holds no control plane (run start first)"
  alive "$dir/apiserver.pid" && die "the API server in $dir is already running"
  local port etcd
  port="$(cat "$dir/apiserver.port")"
  etcd="$(cat "$dir/etcd.port")"
  setsid "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd" \
    --bind-address 127.0.0.1 --secure-port "$port" --cert-dir "$dir/certs" \
    --token-auth-file "$dir/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer "https://127.0.0.1:$port" \
    --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount \
    </dev/null >>"$dir/apiserver.log" 2>&1 &
  echo $! >"$dir/apiserver.pid"
  wait_ready "$dir"
}

wait_ready() {
  local dir="$1"
  for _ in $(seq 600); do
    alive "$dir/apiserver.pid" || die "kube-apiserver exited; see $dir/apiserver.log"
    if "$BIN/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout 2s get --raw /readyz >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  die "kube-apiserver not ready after 120 s; see $dir/apiserver.log"
}

cmd_stop_apiserver() { kill_pidfile "$1/apiserver.pid"; }

# Stops the control plane in DIR once process WATCH is gone (a test run that dies).
watch() {
  local dir="$1" pid="$2"
  (
    while kill -0 "$pid" 2>/dev/null && [ -f "$dir/etcd.pid" ]; do sleep 1; done
    "$ROOT/scripts/control-plane.sh" stop "$dir"
  ) </dev/null >/dev/null 2>&1 &
}

cmd_start() {
  local dir="" watch_pid=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --watch) watch_pid="$2"; shift 2 ;;
      *) [ -z "$dir" ] || die "start takes one DIR"; dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || die "usage: control-plane.sh start DIR [--watch PID]"
  need_binaries
  command -v openssl >/dev/null || die "openssl is needed (Debian package openssl)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  alive "$dir/etcd.pid" && die "a control plane is already running in $dir"
  mkdir -p "$dir/certs"
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  local token port
  token="$(openssl rand -hex 16)"
  echo "$token,admin,admin,\"system:masters\"" >"$dir/tokens.csv"
  # The deployed ServiceAccount's identity (what its pod's token would give), for
  # RBAC tests: DIR/kubeconfig-failover-dns-sa uses it instead of admin.
  local sa_token sa_user=system:serviceaccount:failover-dns:failover-dns
  sa_token="$(openssl rand -hex 16)"
  echo "$sa_token,$sa_user,failover-dns-sa,\"system:serviceaccounts,system:serviceaccounts:failover-dns\"" >>"$dir/tokens.csv"
  port="$(free_port)"
  echo "$port" >"$dir/apiserver.port"
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: failover-dns-test
  cluster:
    server: https://127.0.0.1:$port
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $token
contexts:
- name: failover-dns-test
  context:
    cluster: failover-dns-test
    user: admin
    namespace: default
current-context: failover-dns-test
EOF
  sed -e "s/^- name: admin$/- name: failover-dns-sa/" -e "s/^    user: admin$/    user: failover-dns-sa/" \
    -e "s/^    token: $token$/    token: $sa_token/" "$dir/kubeconfig" >"$dir/kubeconfig-failover-dns-sa"
  start_etcd "$dir"
  [ -z "$watch_pid" ] || watch "$dir" "$watch_pid"
  if ! cmd_start_apiserver "$dir"; then
    cmd_stop "$dir"
    exit 1
  fi
  echo "$dir/kubeconfig"
}

cmd_stop() {
  local dir="$1"
  kill_pidfile "$dir/apiserver.pid"
  kill_pidfile "$dir/etcd.pid"
}

cmd_up() {
  local dir="${1:-}"
  [ -n "$dir" ] || dir="$(mktemp -d "${TMPDIR:-/tmp}/failover-dns-cluster.XXXXXX")"
  built || cmd_build
  local kubeconfig
  kubeconfig="$(cmd_start "$dir")"
  "$BIN/kubectl" --kubeconfig "$kubeconfig" apply -f "$ROOT/crds/" >&2
  "$BIN/kubectl" --kubeconfig "$kubeconfig" wait --for condition=Established --timeout 60s \
    crd/healthchecks.failoverdns.io crd/failoverrecords.failoverdns.io >&2
  cat <<EOF

A Kubernetes API server runs on loopback with the failover-dns CRDs installed
(state and logs in $dir). In another shell:

  export KUBECONFIG=$kubeconfig
  export PATH=$BIN:\$PATH      # kubectl $K8S_VERSION, matching the server
  kubectl apply -f examples/
  kubectl get hc,frec
  cargo run --release -- serve --zone example.internal --dns-addr 127.0.0.1:5353 --admin-addr 127.0.0.1:8053
  dig @127.0.0.1 -p 5353 www.example.internal +short

Stop it with: scripts/control-plane.sh stop $dir (then remove $dir)
EOF
}

case "${1:-}" in
  build) cmd_build ;;
  start) shift; cmd_start "$@" ;;
  stop) [ $# = 2 ] || die "usage: control-plane.sh stop DIR"; cmd_stop "$2" ;;
  stop-apiserver) [ $# = 2 ] || die "usage: control-plane.sh stop-apiserver DIR"; cmd_stop_apiserver "$2" ;;
  start-apiserver) [ $# = 2 ] || die "usage: control-plane.sh start-apiserver DIR"; cmd_start_apiserver "$(cd "$2" && pwd)" ;;
  up) cmd_up "${2:-}" ;;
  bin-dir) echo "$BIN" ;;
  gateway-crds) cmd_gateway_crds ;;
  prometheus-operator-crds) cmd_prometheus_operator_crds ;;
  promtool) cmd_promtool ;;
  *) sed -n '2,/^set -euo pipefail$/{/^#/p}' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
