#!/usr/bin/env bash
# Build the sandbox's Go binaries into the cache, one group at a time.
# usage: build.sh kube|etcd|kwok|registry|metrics-server|cm-sandbox   (env: SANDBOX_CACHE, pins below)
# Each group lands in $SANDBOX_CACHE/<group>-<version>/bin and is marked done
# with a .ok file, so it is rebuilt only when its pin changes.
set -euo pipefail

: "${SANDBOX_CACHE:=$HOME/.cache/genai-stack}"
. "$(dirname "${BASH_SOURCE[0]}")/pins.sh"

export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-buildvcs=false"
GO_P="${SANDBOX_GO_P:-2}"

group="$1"
case "$group" in
  kube) ver=$KUBE_VERSION ;;
  etcd) ver=$ETCD_VERSION ;;
  kwok) ver=$KWOK_VERSION ;;
  registry) ver=$REGISTRY_VERSION ;;
  metrics-server) ver=$METRICS_SERVER_VERSION ;;
  cm-sandbox) ver=$CERT_MANAGER_VERSION ;;
  *) echo "unknown group $group" >&2; exit 2 ;;
esac
dir="$(cache_dir "$group")"
mkdir -p "$SANDBOX_CACHE"
# One build per group at a time (several sandboxes may start at once); the loser waits.
exec 9>"$SANDBOX_CACHE/.build-$group-$ver.lock"
flock 9
if [ -f "$dir/.ok" ]; then
  echo "$group $ver: cached in $dir"
  exit 0
fi
rm -rf "$dir/bin"
mkdir -p "$dir/bin" "$dir/mod"
cd "$dir/mod"
start=$(date +%s)

case "$group" in
kube)
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  stv="v0.${KUBE_VERSION#v1.}"
  {
    echo "module sandbox/kube"
    echo
    echo "go 1.22.0"
    echo
    echo "replace ("
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go \
      cloud-provider cluster-bootstrap code-generator component-base component-helpers \
      controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation \
      endpointslice kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler \
      kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver \
      sample-cli-plugin sample-controller; do
      echo "	k8s.io/$m => k8s.io/$m $stv"
    done
    echo ")"
  } > go.mod
  P="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl"
  go get $(for p in $P; do echo "$p@$KUBE_VERSION"; done)
  D=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  LDF="-s -w -checklinkname=0"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDF="$LDF -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$D"
  done
  go build -p "$GO_P" -trimpath -tags selinux,notest -ldflags "$LDF" -o "$dir/bin/" $P
  ;;
etcd)
  printf 'module sandbox/etcd\n\ngo 1.22.0\n' > go.mod
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -p "$GO_P" -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" go.etcd.io/etcd/server/v3
  ;;
kwok)
  GOBIN="$dir/bin" go install -p "$GO_P" -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  # The kwok controller needs its stages as configuration (kwokctl writes the same defaults):
  # Nodes become Ready and keep a lease; Pods become Ready, complete and get deleted.
  src="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$src/$f"
  done > "$dir/stages.yaml"
  # Its emulation of each Node's kubelet /metrics/resource (what metrics-server scrapes), given to the
  # kwok controller by 20-kube.
  cp "$src/../metrics/resource/metrics-resource.yaml" "$dir/metrics-resource.yaml"
  ;;
registry)
  GOBIN="$dir/bin" go install -p "$GO_P" -trimpath -ldflags "-s -w" \
    "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
  ;;
metrics-server)
  # Its own wrapper module, as `go get -tool` records it: metrics-server pins its own k8s.io
  # libraries (not the control plane's), so it never shares the kube module.
  printf 'module sandbox/metrics-server\n\ngo 1.24.0\n' > go.mod
  go get -tool "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
  go build -p "$GO_P" -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$METRICS_SERVER_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
    -o "$dir/bin/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server
  ;;
cm-sandbox)
  # cert-manager's controllers, webhook and CA injector in one binary of our own (sandbox/certmanager/main.go):
  # the proxy serves the main module github.com/cert-manager/cert-manager (pkg/, internal/) but answers 404 for
  # cmd/controller, cmd/webhook and cmd/cainjector. The module path sits under cert-manager's so that Go's
  # internal rule lets main.go use the webhook's configuration types, as cert-manager's own cmd modules do.
  cp "$CM_SANDBOX_SRC/main.go" .
  printf 'module github.com/cert-manager/cert-manager/genai-stack-sandbox\n\ngo 1.26.0\n\nrequire github.com/cert-manager/cert-manager %s\n' \
    "$CERT_MANAGER_VERSION" > go.mod
  go mod tidy
  go build -p "$GO_P" -trimpath -ldflags "-s -w" -o "$dir/bin/cm-sandbox" .
  ;;
esac
end=$(date +%s)
echo "$group $ver: built in $((end - start)) s" | tee "$dir/build-time.txt"
touch "$dir/.ok"
