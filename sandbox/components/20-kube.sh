#!/usr/bin/env bash
# The local Kubernetes control plane: etcd, kube-apiserver (RBAC, audit log), kube-controller-
# manager, kube-scheduler and the kwok controller (fake kubelets for the mirrored Nodes), run
# from the binaries 05-tools cached. State: $SANDBOX_DIR/kube; logs: $SANDBOX_DIR/logs.
#
# One control plane per seeded EKS cluster (a fleet when SANDBOX_EKS_CLUSTERS > 1): the first,
# `sandbox`, in $SANDBOX_DIR/kube; each further one, `sandbox-N`, in $SANDBOX_DIR/kube/clusters/sandbox-N
# with its own CA, its own apiserver (on the one etcd, under --etcd-prefix /clusters/sandbox-N/registry),
# controller-manager, scheduler, kwok controller and audit log. $SANDBOX_DIR/kube/fleet.json lists them.
#
# Identities (client certificates signed by each cluster's CA):
#   sandbox-admin        group system:masters   -> $SANDBOX_DIR/kubeconfig (KUBECONFIG)
#   sandbox-nodemirror   ClusterRole sandbox:nodemirror (Nodes; list and delete the Pods of a Node it deletes)
#                        -> kube/nodemirror.kubeconfig
#   sandbox-agents       ClusterRole sandbox:agents (read Nodes and Pods: what the node agents see)
#                        -> kube/agents.kubeconfig (45-alarms' CloudWatch agent publisher)
#   sandbox-kwok         group system:masters   (the kwok controller)
#   sandbox-unprivileged no bindings            -> kube/unprivileged.kubeconfig (RBAC tests)
#   system:kube-controller-manager, system:kube-scheduler (their default RBAC roles)
# (a further cluster's are in kube/clusters/NAME/, its sandbox-admin's in admin.kubeconfig there)
# and EKS bearer tokens (k8s-aws-v1.*) for the apiserver's own EKS cluster, checked by the AWS emulator's
# token webhook against that cluster's access entries (sandbox/aws/eks_access.py).
set -euo pipefail

: "${REPO_ROOT:?}" "${SANDBOX_DIR:?}" "${SANDBOX_CACHE:?}"
. "$REPO_ROOT/sandbox/kube/lib.sh"
. "$REPO_ROOT/sandbox/kube/pins.sh"

K="$SANDBOX_DIR/kube"
ENV_FILE="$SANDBOX_DIR/env.d/20-kube.env"
FLEET_FILE="$K/fleet.json"
KUBEBIN="$(cache_dir kube)/bin"
ETCDBIN="$(cache_dir etcd)/bin"
KWOKDIR="$(cache_dir kwok)"
MSBIN="$(cache_dir metrics-server)/bin"
CMBIN="$(cache_dir cm-sandbox)/bin"
# The first seeded EKS cluster (sandbox/aws/seed.py cluster_names): its control plane is the
# one-cluster sandbox's, with the paths, ports and variables that sandbox always had.
FIRST=sandbox

# use_cluster NAME: point the per-cluster variables (CLUSTER, C, PKI, RUN, LOGS, PORTS, AUDIT_LOG,
# ADMIN_KUBECONFIG, WEBHOOK_KUBECONFIG, APISERVER_EXTRA) at cluster NAME's control plane.
use_cluster() {
  CLUSTER="$1" C="$(cluster_dir "$1")" LOGS="$(cluster_logs "$1")"
  PKI="$C/pki" RUN="$C/run" PORTS="$C/ports" WEBHOOK_KUBECONFIG="$C/eks-token-webhook.kubeconfig"
  if [[ "$1" == "$FIRST" ]]; then
    AUDIT_LOG="$SANDBOX_DIR/logs/kube-audit.jsonl" ADMIN_KUBECONFIG="$SANDBOX_DIR/kubeconfig" APISERVER_EXTRA=()
  else
    AUDIT_LOG="$SANDBOX_DIR/logs/kube-audit-$1.jsonl" ADMIN_KUBECONFIG="$C/admin.kubeconfig"
    APISERVER_EXTRA=(--etcd-prefix "/clusters/$1/registry")
  fi
}

# fleet_size: SANDBOX_EKS_CLUSTERS (default 1), at most SANDBOX_KUBE_CLUSTERS when set (the bench's large
# AWS-only fleets: each control plane costs ~0.5 GB; the clusters past it have none, and their node
# groups no Nodes), never fewer than the control planes already here: an `up` without the variable
# keeps a grown fleet (as the emulator keeps its seeded clusters); `down` ends it.
fleet_size() {
  local n="${SANDBOX_EKS_CLUSTERS:-1}" name i
  if [[ -n "${SANDBOX_KUBE_CLUSTERS:-}" ]] && (( n > SANDBOX_KUBE_CLUSTERS )); then n=$SANDBOX_KUBE_CLUSTERS; fi
  for name in $(extra_clusters); do
    i="${name#sandbox-}"
    if [[ "$i" =~ ^[0-9]+$ ]] && (( i > n )); then n=$i; fi
  done
  echo "$n"
}

# The access policies an access entry may have associated, cluster-wide, and the ClusterRole each is
# bound to. EKS enforces access policies with an authorizer of its own; the sandbox approximates it
# with RBAC: the webhook puts the user in group sandbox:eks-access-policy:<policy> (sandbox/aws/eks_auth.py).
EKS_ACCESS_POLICY_ROLES="AmazonEKSClusterAdminPolicy=cluster-admin AmazonEKSAdminPolicy=admin AmazonEKSEditPolicy=edit AmazonEKSViewPolicy=view"

# --- PKI -------------------------------------------------------------------------------------
cert() { # cert NAME CN [O] [SAN]  : key + certificate signed by the CA in $PKI
  local name="$1" cn="$2" o="${3:-}" san="${4:-}" subj ext
  [[ -f "$PKI/$name.crt" ]] && return 0
  subj="/CN=$cn"; [[ -n "$o" ]] && subj="/O=$o$subj"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  ext="$PKI/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$san" ]]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  if [[ ! -f "$PKI/ca.crt" ]]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=$CLUSTER-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt" 2>/dev/null
  fi
  if [[ ! -f "$PKI/sa.key" ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  cert apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin sandbox-admin system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kwok sandbox-kwok system:masters
  cert nodemirror sandbox-nodemirror
  cert agents sandbox-agents
  cert unprivileged sandbox-unprivileged
  cert podnet sandbox-podnet
  front_proxy_pki
}

# The aggregation layer's own CA and client certificate, as every cluster has them (kubeadm's
# front-proxy-ca): the API server proxies metrics.k8s.io (and any APIService) with this certificate
# and the user in X-Remote-User headers, which the extension server trusts because its CA is in
# kube-system/extension-apiserver-authentication (requestheader-client-ca-file).
front_proxy_pki() {
  if [[ ! -f "$PKI/front-proxy-ca.crt" ]]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=$CLUSTER-front-proxy-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/front-proxy-ca.crt" 2>/dev/null
  fi
  [[ -f "$PKI/front-proxy-client.crt" ]] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-client.key" 2>/dev/null
  openssl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$PKI/front-proxy-client.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' \
    >"$PKI/front-proxy-client.ext"
  openssl x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$PKI/front-proxy-client.ext" -out "$PKI/front-proxy-client.crt" 2>/dev/null
  rm -f "$PKI/front-proxy-client.csr" "$PKI/front-proxy-client.ext"
}

kubeconfig() { # kubeconfig FILE CERTNAME USER
  local file="$1" name="$2" user="$3"
  cat >"$file.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
    client-key-data: $(base64 -w0 "$PKI/$name.key")
contexts:
- name: $CLUSTER
  context: {cluster: $CLUSTER, user: $user}
current-context: $CLUSTER
KC
  chmod 600 "$file.tmp"; mv "$file.tmp" "$file"
}

audit_policy() {
  cat >"$K/audit-policy.yaml" <<'YAML'
# Every write, by every user, at Metadata (who, verb, object, response code; never bodies, so
# Secret data stays out of the log). Secrets are also recorded on reads. Everything else: None.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets]
- level: None
YAML
}

# One ClusterRoleBinding per access policy the sandbox maps (EKS_ACCESS_POLICY_ROLES).
access_policy_bindings() {
  local pair policy role
  for pair in $EKS_ACCESS_POLICY_ROLES; do
    policy="${pair%%=*}" role="${pair#*=}"
    cat <<YAML
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: sandbox:eks-access-policy:$policy
  labels: {sandbox.genai.stack/managed: "true"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $role}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "sandbox:eks-access-policy:$policy"}
YAML
  done
}

rbac() {
  access_policy_bindings | "$KUBEBIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" apply -f - >/dev/null
  "$KUBEBIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: sandbox:nodemirror
  labels: {sandbox.genai.stack/managed: "true"}
rules:
- apiGroups: [""]
  resources: [nodes, nodes/status]
  verbs: [get, list, watch, create, update, patch, delete]
# The Pods bound to a Node it deletes go with it (nodemirror.py).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: sandbox:nodemirror
  labels: {sandbox.genai.stack/managed: "true"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sandbox:nodemirror}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: sandbox-nodemirror}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: sandbox:agents
  labels: {sandbox.genai.stack/managed: "true"}
rules:
- apiGroups: [""]
  resources: [nodes, pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: sandbox:agents
  labels: {sandbox.genai.stack/managed: "true"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sandbox:agents}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: sandbox-agents}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: sandbox:podnet
  labels: {sandbox.genai.stack/managed: "true"}
rules:
- apiGroups: [""]
  resources: [nodes, services]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list]
- apiGroups: [""]
  resources: [serviceaccounts/token]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: sandbox:podnet
  labels: {sandbox.genai.stack/managed: "true"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sandbox:podnet}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: sandbox-podnet}
YAML
}

# Where the apiserver's connections into the cluster network go (admission webhooks, aggregated
# APIs, kubelet logs/exec): an HTTP CONNECT proxy on a unix socket, the cluster's pod network
# (sandbox/kube/podnet.py, started by controllers_up). kwok runs no containers, so behind most
# Services nothing listens: podnet answers 503 at once, with the reason, and each webhook's
# failurePolicy decides at once (Ignore admits the object with a warning in the apiserver log, Fail
# refuses it), as on a real cluster whose webhook server is down. Left direct, the apiserver would
# dial the Service's ClusterIP (10.96/16, no kube-proxy here): on a host whose network drops such
# packets every create waits the webhook's timeoutSeconds, and on a 10/8 corporate network it could
# reach a stranger's machine. The Services podnet serves are those of metrics-server (the metrics API)
# and cert-manager's webhook, whose Deployments it runs on the host (podnet.py's HOST_RUNNERS).
# One socket per cluster: each cluster's ClusterIPs are its own.
egress_config() {
  cat >"$C/egress-selector.yaml.tmp" <<YAML
apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: $C/pod-network.sock
YAML
  mv "$C/egress-selector.yaml.tmp" "$C/egress-selector.yaml"
  rm -f "$K/no-pod-network-in-the-sandbox.sock"
}

# kwok's emulation of each Node's kubelet resource metrics (/metrics/nodes/NODE/metrics/resource on
# its server; the node mirror's annotation metrics.k8s.io/resource-metrics-path points metrics-server
# there), from kwok's own Metric "metrics-resource" (copied from the kwok module by build.sh), and the
# usage it reports: per container, the Pod's annotations sandbox.genai.stack/cpu-usage and
# sandbox.genai.stack/memory-usage (quantities, e.g. "400m", "300Mi"; a test sets them to put a
# workload under load), else an idle 1m of CPU and 16Mi of memory. A Node's usage is its Pods' sum.
kwok_usage_config() {
  cat >"$K/kwok-usage.yaml.tmp" <<'YAML'
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterResourceUsage
metadata:
  name: sandbox-usage-from-annotations
spec:
  usages:
  - usage:
      cpu:
        expression: |
          "sandbox.genai.stack/cpu-usage" in pod.metadata.annotations
          ? Quantity(pod.metadata.annotations["sandbox.genai.stack/cpu-usage"])
          : Quantity("1m")
      memory:
        expression: |
          "sandbox.genai.stack/memory-usage" in pod.metadata.annotations
          ? Quantity(pod.metadata.annotations["sandbox.genai.stack/memory-usage"])
          : Quantity("16Mi")
YAML
  mv "$K/kwok-usage.yaml.tmp" "$K/kwok-usage.yaml"
}

# The default StorageClass, as EKS clusters have one (gp2/gp3 through the EBS CSI driver): charts
# ask PersistentVolumeClaims with no storageClassName (opensearch's data volume). The controller-
# manager's in-tree hostPath provisioner (--enable-hostpath-provisioner) creates a PersistentVolume
# for each claim, bound by its PV controller; WaitForFirstConsumer as on EKS, so the claim binds
# once the scheduler picked a Node for the Pod. Nothing mounts it (kwok runs no containers); the
# provisioner only makes an empty directory /tmp/hostpath_pv/<uid> and removes it with the PV.
storage_class() {
  "$KUBEBIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" apply -f - >/dev/null <<'YAML'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  labels: {sandbox.genai.stack/managed: "true"}
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
YAML
}

# The apiserver's token webhook: the AWS emulator's TokenReview endpoint for $CLUSTER, over
# plain http on loopback (kube-apiserver takes an http:// server in a webhook kubeconfig). Sets
# WEBHOOK_CHANGED=1 when the file changed (another emulator port), since the apiserver reads it at start.
token_webhook_config() {
  local tmp="$WEBHOOK_KUBECONFIG.tmp"
  if [[ -z "${AWS_ENDPOINT_URL:-}" && -f "$SANDBOX_DIR/env.d/10-aws.env" ]]; then
    . "$SANDBOX_DIR/env.d/10-aws.env"
  fi
  : "${AWS_ENDPOINT_URL:?20-kube: no AWS emulator (AWS_ENDPOINT_URL); run 10-aws first}"
  cat >"$tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: sandbox-eks-token-webhook
  cluster:
    server: $AWS_ENDPOINT_URL/_sandbox/eks/clusters/$CLUSTER/tokenreview
users:
- name: kube-apiserver
  user: {}
contexts:
- name: webhook
  context: {cluster: sandbox-eks-token-webhook, user: kube-apiserver}
current-context: webhook
KC
  WEBHOOK_CHANGED=0
  if cmp -s "$tmp" "$WEBHOOK_KUBECONFIG"; then rm -f "$tmp"; else mv "$tmp" "$WEBHOOK_KUBECONFIG"; WEBHOOK_CHANGED=1; fi
}

# A running apiserver started without the webhook (an older sandbox) or with another webhook file is
# restarted; its state is in etcd and every client reconnects.
restart_apiserver_if_stale() {
  local pid
  alive "$RUN/kube-apiserver.pid" || return 0
  pid=$(cat "$RUN/kube-apiserver.pid")
  if [[ "$WEBHOOK_CHANGED" == 1 ]] || ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- --authentication-token-webhook-config-file; then
    echo "20-kube: restarting $(label)kube-apiserver for its EKS token webhook configuration"
    stop_proc kube-apiserver "$RUN"
  elif ! cmdline_of "$RUN/kube-apiserver.pid" | grep -qF -- "--egress-selector-config-file $C/egress-selector.yaml --requestheader-client-ca-file"; then
    echo "20-kube: restarting $(label)kube-apiserver for its pod network and front proxy (the metrics API)"
    stop_proc kube-apiserver "$RUN"
  fi
}

# DescribeCluster of $CLUSTER answers this apiserver's endpoint and CA (every up: the
# emulator keeps it in memory only).
register_control_plane() {
  curl -fsS --max-time 10 -X POST -H 'Content-Type: application/json' \
    -d "{\"endpoint\": \"https://127.0.0.1:$API_PORT\", \"certificateAuthority\": \"$(base64 -w0 "$PKI/ca.crt")\"}" \
    "$AWS_ENDPOINT_URL/_sandbox/eks/clusters/$CLUSTER/control-plane" >/dev/null \
    || { echo "20-kube: could not register the control plane of $CLUSTER with the AWS emulator" >&2; return 1; }
}

api_ready() {
  curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz" | grep -q ok
}

# label: "" for the first cluster (its messages read as the one-cluster sandbox's), else "NAME ".
label() { [[ "$CLUSTER" == "$FIRST" ]] || echo "$CLUSTER "; }

kubeconfigs() {
  kubeconfig "$ADMIN_KUBECONFIG" admin sandbox-admin
  kubeconfig "$C/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  kubeconfig "$C/scheduler.kubeconfig" scheduler system:kube-scheduler
  kubeconfig "$C/kwok.kubeconfig" kwok sandbox-kwok
  kubeconfig "$C/nodemirror.kubeconfig" nodemirror sandbox-nodemirror
  kubeconfig "$C/agents.kubeconfig" agents sandbox-agents
  kubeconfig "$C/unprivileged.kubeconfig" unprivileged sandbox-unprivileged
  kubeconfig "$C/podnet.kubeconfig" podnet sandbox-podnet
}

# The one etcd of the fleet; each cluster's apiserver keeps its objects under its own prefix.
etcd_up() {
  local run="$K/run"
  ETCD_PORT=$(port_of etcd "$K/ports")
  ETCD_PEER_PORT=$(port_of etcd_peer "$K/ports")
  start_proc etcd "$SANDBOX_DIR/logs" "$run" "$ETCDBIN/etcd" --name sandbox --data-dir "$K/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "sandbox=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" --unsafe-no-fsync --quota-backend-bytes 2147483648 \
    --auto-compaction-retention 1h --log-level warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

# Bearer tokens go to the emulator's EKS token webhook (token_webhook_config). The apiserver caches
# each token's answer, accepted or refused, for --authentication-token-webhook-cache-ttl: 30 s
# instead of the default 2 min, so an access entry deleted or changed reaches a token already in use
# within 30 s (EKS's own authenticator caches too), while a client reusing its token (kubectl does
# for 14 min) still costs the emulator one review per 30 s, not one per request.
apiserver_up() {
  start_proc kube-apiserver "$LOGS" "$RUN" "$KUBEBIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" "${APISERVER_EXTRA[@]}" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC --anonymous-auth=false --allow-privileged=true \
    --audit-policy-file "$K/audit-policy.yaml" --audit-log-path "$AUDIT_LOG" \
    --audit-log-format json --audit-log-mode blocking --audit-log-maxsize 0 \
    --egress-selector-config-file "$C/egress-selector.yaml" \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --authentication-token-webhook-config-file "$WEBHOOK_KUBECONFIG" \
    --authentication-token-webhook-version v1 --authentication-token-webhook-cache-ttl 30s \
    --enable-priority-and-fairness=false --profiling=false --v 1
  wait_for "$(label)kube-apiserver" 120 api_ready
}

# The HorizontalPodAutoscaler controller's pace: Kubernetes' defaults are a 15 s sync and 5 min of
# downscale stabilization (an autoscaler scales in only to the highest recommendation of the last
# 5 min). The sandbox syncs every 5 s and stabilizes for 30 s, so a test sees a scale-out and the
# scale-in after it within a minute or two; the decisions are the controller's own.
HPA_SYNC="${SANDBOX_HPA_SYNC_PERIOD:-5s}"
HPA_DOWNSCALE="${SANDBOX_HPA_DOWNSCALE_STABILIZATION:-30s}"

# restart_if_lacking NAME TEXT: stop NAME (started again next) when its command line lacks TEXT:
# a sandbox started before a flag was added gets it on its next `up`; its state is in etcd.
restart_if_lacking() {
  alive "$RUN/$1.pid" || return 0
  if ! cmdline_of "$RUN/$1.pid" | grep -qF -- "$2"; then
    echo "20-kube: restarting $(label)$1 for: $2"
    stop_proc "$1" "$RUN"
  fi
}

controllers_up() {
  restart_if_lacking kube-controller-manager \
    "--horizontal-pod-autoscaler-sync-period $HPA_SYNC --horizontal-pod-autoscaler-downscale-stabilization $HPA_DOWNSCALE "
  restart_if_lacking kwok "--config $K/kwok-usage.yaml "
  restart_if_lacking podnet "--cm-sandbox-bin $CMBIN/cm-sandbox "
  start_proc kube-controller-manager "$LOGS" "$RUN" "$KUBEBIN/kube-controller-manager" \
    --kubeconfig "$C/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$C/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$C/controller-manager.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true --cluster-name "$CLUSTER" \
    --enable-hostpath-provisioner \
    --horizontal-pod-autoscaler-sync-period "$HPA_SYNC" \
    --horizontal-pod-autoscaler-downscale-stabilization "$HPA_DOWNSCALE" \
    --profiling=false --v 1
  start_proc kube-scheduler "$LOGS" "$RUN" "$KUBEBIN/kube-scheduler" \
    --kubeconfig "$C/scheduler.kubeconfig" \
    --authentication-kubeconfig "$C/scheduler.kubeconfig" \
    --authorization-kubeconfig "$C/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --profiling=false --v 1
  start_proc kwok "$LOGS" "$RUN" "$KWOKDIR/bin/kwok" \
    --kubeconfig "$C/kwok.kubeconfig" --config "$KWOKDIR/stages.yaml" \
    --config "$KWOKDIR/metrics-resource.yaml" --config "$K/kwok-usage.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds 40 --node-ip 127.0.0.1 --node-port "$KWOK_PORT" \
    --server-address "127.0.0.1:$KWOK_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key"
  start_proc podnet "$LOGS" "$RUN" "$SANDBOX_PYTHON" "$REPO_ROOT/sandbox/kube/podnet.py" \
    --cluster "$CLUSTER" --kubeconfig "$C/podnet.kubeconfig" --socket "$C/pod-network.sock" \
    --proxy-port "$(port_of podnet "$PORTS")" --kubelet-port "$KWOK_PORT" \
    --metrics-server-bin "$MSBIN/metrics-server" --cm-sandbox-bin "$CMBIN/cm-sandbox" \
    --state-dir "$RUN/podnet" --log-dir "$LOGS"
}

# control_plane_up NAME: cluster NAME's PKI, kubeconfigs, apiserver (registered with the emulator for
# DescribeCluster), RBAC, StorageClass and controllers; what already runs is left alone.
control_plane_up() {
  use_cluster "$1"
  mkdir -p "$C" "$RUN" "$LOGS"
  API_PORT=$(port_of apiserver "$PORTS")
  KWOK_PORT=$(port_of kwok "$PORTS")
  pki
  kubeconfigs
  egress_config
  token_webhook_config
  restart_apiserver_if_stale
  apiserver_up
  register_control_plane
  rbac
  storage_class
  controllers_up
}

# control_plane_ready NAME: its controllers run and made the default ServiceAccount (pods need it).
control_plane_ready() {
  local p
  use_cluster "$1"
  wait_for "$(label)the default ServiceAccount" 60 \
    "$KUBEBIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" get serviceaccount default -n default
  for p in kube-controller-manager kube-scheduler kwok podnet; do
    alive "$RUN/$p.pid" || { echo "20-kube: $(label)$p exited; see $LOGS/$p.log" >&2; tail -20 "$LOGS/$p.log" >&2; return 1; }
  done
}

# fleet.json: every cluster's apiserver and files, in seeded order (the first is the sandbox's own).
write_fleet() {
  local name sep=""
  {
    echo '{"clusters": ['
    for name in "$@"; do
      use_cluster "$name"
      printf '%s  {"name": "%s", "server": "https://127.0.0.1:%s", "kubeconfig": "%s", "audit_log": "%s", "ca": "%s",' \
        "$sep" "$name" "$(port_of apiserver "$PORTS")" "$ADMIN_KUBECONFIG" "$AUDIT_LOG" "$PKI/ca.crt"
      printf ' "nodemirror_kubeconfig": "%s", "agents_kubeconfig": "%s"}' "$C/nodemirror.kubeconfig" "$C/agents.kubeconfig"
      sep=$',\n'
    done
    printf '\n]}\n'
  } >"$FLEET_FILE.tmp"
  mv "$FLEET_FILE.tmp" "$FLEET_FILE"
}

write_env() {
  use_cluster "$FIRST"
  cat >"$ENV_FILE" <<ENV
export KUBECONFIG="$ADMIN_KUBECONFIG"
export SANDBOX_KUBE_AUDIT="$AUDIT_LOG"
export SANDBOX_KUBE_SERVER="https://127.0.0.1:$(port_of apiserver "$PORTS")"
export SANDBOX_KUBE_ADMIN_USER="sandbox-admin"
export SANDBOX_KUBECONFIG_NODEMIRROR="$C/nodemirror.kubeconfig"
export SANDBOX_KUBECONFIG_AGENTS="$C/agents.kubeconfig"
export SANDBOX_KUBECONFIG_UNPRIVILEGED="$C/unprivileged.kubeconfig"
export SANDBOX_EKS_TOKEN_CLUSTER="$FIRST"
export SANDBOX_FLEET_FILE="$FLEET_FILE"
export SANDBOX_FLEET="$*"
ENV
}

up() {
  local names name
  mkdir -p "$K" "$SANDBOX_DIR/logs" "$SANDBOX_DIR/env.d"
  [[ -f "$KWOKDIR/.ok" && -f "$KWOKDIR/metrics-resource.yaml" && -x "$KUBEBIN/kube-apiserver" && -x "$ETCDBIN/etcd" \
     && -x "$MSBIN/metrics-server" && -x "$CMBIN/cm-sandbox" ]] || {
    echo "20-kube: binaries missing; run 05-tools first" >&2; return 1; }
  mapfile -t names < <(fleet_names "$(fleet_size)")
  audit_policy
  kwok_usage_config
  etcd_up
  for name in "${names[@]}"; do control_plane_up "$name"; done
  for name in "${names[@]}"; do control_plane_ready "$name"; done
  write_fleet "${names[@]}"
  write_env "${names[@]}"
}

# control_plane_down NAME
control_plane_down() {
  local p d
  use_cluster "$1"
  # The hostPath provisioner's empty directories of the volumes still bound (see storage_class):
  # the PVs go with etcd, so remove their directories while the apiserver can still name them.
  if [[ -f "$ADMIN_KUBECONFIG" ]] && alive "$RUN/kube-apiserver.pid"; then
    for d in $("$KUBEBIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" get pv --request-timeout 5s \
                 -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null); do
      [[ "$d" == /tmp/hostpath_pv/* ]] && rmdir "$d" 2>/dev/null || true
    done
  fi
  for p in podnet kwok kube-scheduler kube-controller-manager kube-apiserver; do
    stop_proc "$p" "$RUN"
  done
}

down() {
  local name
  for name in $(extra_clusters) "$FIRST"; do control_plane_down "$name"; done
  stop_proc etcd "$K/run"
  rm -f "$ENV_FILE"
}

status() {
  local rc=0 p name
  for name in "$FIRST" $(extra_clusters); do
    use_cluster "$name"
    for p in etcd kube-apiserver kube-controller-manager kube-scheduler kwok podnet; do
      [[ "$p" == etcd && "$name" != "$FIRST" ]] && continue
      if alive "$RUN/$p.pid"; then
        echo "20-kube: $(label)$p running (pid $(cat "$RUN/$p.pid"), RSS $(rss_of "$RUN/$p.pid"))"
      else
        echo "20-kube: $(label)$p not running"; rc=1
      fi
    done
  done
  return $rc
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
