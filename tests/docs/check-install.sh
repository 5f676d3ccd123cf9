#!/usr/bin/env bash
# The collection works as users get it: from its tarball, not from the checkout.
#  1. ansible-galaxy collection build into a temporary directory;
#  2. ansible-galaxy collection install --no-deps into a clean, empty collections path (the
#     dependencies come from the `ansible` package's bundled collections; Galaxy is unreachable);
#  3. from a directory outside the checkout, with an ansible.cfg that names only that path:
#     genai.stack resolves to the installed copy, `ansible-doc genai.stack.eks_gpu_nodegroup`
#     and `ansible-doc -t role genai.stack.cluster_gpu` work;
#  4. the sandbox demo runs by FQCN from the installed collection:
#     ansible-playbook genai.stack.cluster_gpu -i <checkout>/inventories/sandbox, verified in
#     the AWS emulator, then ansible-playbook genai.stack.teardown, verified gone.
# The demo runs on its own cluster (CHECK_INSTALL_CLUSTER, default genai-install-check), made
# like the seeded one and removed at the end, so other runs on the shared sandbox's `sandbox`
# cluster are not disturbed. Needs the sandbox: make sandbox (this script sources .sandbox/env).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_BIN="$ROOT/.venv/bin"
CLUSTER="${CHECK_INSTALL_CLUSTER:-genai-install-check}"
VERSION="$(sed -n 's/^version:[[:space:]]*//p' "$ROOT/galaxy.yml" | tr -d "\"'")"
say() { echo "check-install: $*"; }
fail() { echo "check-install: FAILED: $*"; exit 1; }
elapsed() { echo "$(( SECONDS - $1 )) s"; }

if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
    [[ -f "$ROOT/.sandbox/env" ]] || fail "the sandbox is not running: make sandbox (or sandbox/sandboxctl up)"
    set -a; . "$ROOT/.sandbox/env"; set +a
fi
curl -fsS -m 5 "$AWS_ENDPOINT_URL/_sandbox/health" >/dev/null 2>&1 \
    || fail "the sandbox's AWS emulator does not answer at $AWS_ENDPOINT_URL: make sandbox"

work="$(mktemp -d /tmp/genai-check-install.XXXXXX)"
run="$work/run"                       # the user's project directory, outside the checkout
collections="$work/collections"
mkdir -p "$run" "$collections" "$work/dist"
cleanup() {
    local rc=$?
    if [[ -n "${needs_teardown:-}" ]]; then
        say "cleaning up after a failure: teardown of $CLUSTER (up to a few minutes)"
        (cd "$run" && ansible-playbook genai.stack.teardown "${inventory_args[@]}" >"$work/cleanup.log" 2>&1) \
            || { tail -n 20 "$work/cleanup.log"; say "teardown failed; log above"; }
    fi
    "$VENV_BIN/python" "$ROOT/tests/docs/install_check_cluster.py" delete "$CLUSTER" || say "could not delete cluster $CLUSTER"
    if [[ $rc -ne 0 ]]; then say "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Nothing of the caller's configuration or of the checkout may leak into the runs below.
unset ANSIBLE_COLLECTIONS_PATHS ANSIBLE_ROLES_PATH ANSIBLE_INVENTORY ANSIBLE_LIBRARY ANSIBLE_MODULE_UTILS
cat >"$run/ansible.cfg" <<CFG
[defaults]
collections_path = $collections
stdout_callback = default
callback_result_format = yaml
interpreter_python = auto_silent
retry_files_enabled = false
CFG
export ANSIBLE_CONFIG="$run/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$collections" ANSIBLE_NOCOLOR=1
export PATH="$VENV_BIN:$PATH"

start=$SECONDS
say "building the tarball (ansible-galaxy collection build)"
(cd "$ROOT" && ansible-galaxy collection build --output-path "$work/dist" . >/dev/null)
tarball="$work/dist/genai-stack-$VERSION.tar.gz"
[[ -f "$tarball" ]] || fail "no $tarball"
say "installing $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB) into an empty collections path, --no-deps"
(cd "$run" && ansible-galaxy collection install --no-deps --offline "$tarball" >"$work/install.log" 2>&1) \
    || { cat "$work/install.log"; fail "ansible-galaxy collection install"; }
installed="$collections/ansible_collections/genai/stack"
[[ -f "$installed/MANIFEST.json" ]] || fail "genai.stack is not in $collections after the install"
for leaked in .collections .venv .sandbox sandbox tests/output; do
    [[ ! -e "$installed/$leaked" ]] || fail "the tarball contains $leaked (galaxy.yml build_ignore)"
done
say "built and installed in $(elapsed $start)"

start=$SECONDS
cd "$run"
say "ansible-doc from $run (outside the checkout)"
path="$(ansible-doc --json genai.stack.eks_gpu_nodegroup | python -c 'import json, sys; print(json.load(sys.stdin)["genai.stack.eks_gpu_nodegroup"]["doc"]["filename"])')"
[[ "$path" == "$installed/"* ]] || fail "ansible-doc read genai.stack.eks_gpu_nodegroup from $path, not from the installed copy"
ansible-doc genai.stack.eks_gpu_nodegroup >/dev/null || fail "ansible-doc genai.stack.eks_gpu_nodegroup"
ansible-doc -t role genai.stack.cluster_gpu >/dev/null || fail "ansible-doc -t role genai.stack.cluster_gpu"
say "ansible-doc OK ($(elapsed $start)): module and role documentation load from $installed"

say "creating cluster $CLUSTER in the AWS emulator for this check (like the seeded sandbox cluster)"
"$VENV_BIN/python" "$ROOT/tests/docs/install_check_cluster.py" create "$CLUSTER"
NODEGROUP=gpu-install-check
# The checkout's sandbox inventory (its group_vars: node role, CPU node group, Kubernetes steps)
# plus this check's cluster. The sandbox has one Kubernetes for all its EKS clusters, so the
# names that live there or on the shared node role get this check's own values.
cat >"$work/cluster.yml" <<INV
all:
  children:
    eks_clusters:
      hosts:
        $CLUSTER:
          cluster_gpu_nodegroup_name: $NODEGROUP
          cluster_gpu_node_policy_name: genai-stack-install-check
          cluster_gpu_device_plugin_namespace: nvidia-device-plugin-install-check
INV
inventory_args=(-i "$ROOT/inventories/sandbox" -i "$work/cluster.yml" --limit "$CLUSTER")

recap_ok() {  # the PLAY RECAP line of $CLUSTER shows no failure and no unreachable host
    grep -Eq "^$CLUSTER +: ok=[0-9]+ +changed=[0-9]+ +unreachable=0 +failed=0" "$1"
}

start=$SECONDS
needs_teardown=1
say "ansible-playbook genai.stack.cluster_gpu on $CLUSTER (GPU node group, alarms, device plugin, waits up to 60 s for the GPU Nodes; 1-3 min, stopped at 15 min)"
timeout 900 ansible-playbook genai.stack.cluster_gpu "${inventory_args[@]}" >"$work/apply.log" 2>&1 \
    || { tail -n 40 "$work/apply.log"; fail "ansible-playbook genai.stack.cluster_gpu (log: $work/apply.log)"; }
recap_ok "$work/apply.log" || { tail -n 40 "$work/apply.log"; fail "the apply's PLAY RECAP"; }
grep -A3 '^PLAY RECAP' "$work/apply.log" | grep "$CLUSTER" | sed 's/^/  /'
python - "$CLUSTER" "$NODEGROUP" <<'PY' || fail "the GPU node group is not in the AWS emulator after the apply"
import sys, boto3
group = boto3.client('eks').describe_nodegroup(clusterName=sys.argv[1], nodegroupName=sys.argv[2])['nodegroup']
assert group['labels'].get('capability') == 'gpu', group['labels']
print('  verified in the emulator: node group %s (%s, desired %s, launch template %s v%s)' % (
    group['nodegroupName'], group['status'], group['scalingConfig']['desiredSize'],
    group['launchTemplate']['id'], group['launchTemplate']['version']))
PY
say "apply OK in $(elapsed $start)"

start=$SECONDS
say "ansible-playbook genai.stack.teardown on $CLUSTER (alarms, node group, template, policy, device plugin; about 1 min)"
timeout 900 ansible-playbook genai.stack.teardown "${inventory_args[@]}" >"$work/teardown.log" 2>&1 \
    || { tail -n 40 "$work/teardown.log"; fail "ansible-playbook genai.stack.teardown (log: $work/teardown.log)"; }
needs_teardown=
recap_ok "$work/teardown.log" || { tail -n 40 "$work/teardown.log"; fail "the teardown's PLAY RECAP"; }
python - "$CLUSTER" "$NODEGROUP" <<'PY' || fail "the GPU node group is still in the AWS emulator after the teardown"
import sys, boto3
assert sys.argv[2] not in boto3.client('eks').list_nodegroups(clusterName=sys.argv[1])['nodegroups']
print('  verified in the emulator: node group %s is gone' % sys.argv[2])
PY
say "teardown OK in $(elapsed $start)"
say "OK: the tarball installs into a clean path and the demo runs from it by FQCN"
