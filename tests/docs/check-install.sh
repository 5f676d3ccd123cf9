#!/usr/bin/env bash
# The collection works as users get it: from its tarball, not from the checkout.
#  1. ansible-galaxy collection build into a temporary directory;
#  2. ansible-galaxy collection install --no-deps into a clean, empty collections path (the
#     dependencies come from the `ansible` package's bundled collections; Galaxy is unreachable);
#  3. from a directory outside the checkout, with an ansible.cfg that names only that path:
#     genai.stack resolves to the installed copy, `ansible-doc genai.stack.eks_gpu_nodegroup`
#     and `ansible-doc -t role genai.stack.cluster_gpu` work;
#  4. the sandbox demo (site.yml: every stack) runs by FQCN from the installed collection:
#     ansible-playbook genai.stack.site -i <a copy of inventories/sandbox>, verified by another
#     route (helm list --all-namespaces has a new deployed release in every chart stack's
#     namespace, PostgreSQL has new databases, the AWS emulator has the GPU node group), then
#     ansible-playbook genai.stack.teardown, verified gone: releases, namespaces, databases and
#     database roles are exactly those found before the check.
# Nothing is read from the checkout by the runs: the inventory is copied (whatever
# inventories/sandbox holds at run time, group_vars included) into the temporary directory.
# The demo runs on its own EKS cluster (CHECK_INSTALL_CLUSTER, default genai-install-check), made
# like the seeded one and removed at the end, so the `sandbox` cluster's node groups are not
# touched. The sandbox has one Kubernetes and one PostgreSQL for all its clusters, so the stacks
# land in their usual namespaces: the check refuses to start when one of them is already there
# (its teardown would remove what it did not make). make test runs it after integration and
# before site-check; it leaves the sandbox as it found it.
# Needs the sandbox: make sandbox (this script sources .sandbox/env unless the env is set).
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

begin=$SECONDS
start=$SECONDS
# Built from the files of the working tree that git knows or does not ignore, as in a fresh
# clone with the local changes: the checkout may also hold runtime state (private sandboxes
# .sandbox-<name> with live sockets) that ansible-galaxy cannot read and a user never ships.
say "building the tarball (ansible-galaxy collection build, from the working tree's files that git does not ignore)"
mkdir -p "$work/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do if [[ -e "$f" ]]; then printf '%s\0' "$f"; fi; done \
    | tar --null -T - -cf - | tar -xf - -C "$work/src")
(cd "$work/src" && ansible-galaxy collection build --output-path "$work/dist" . >/dev/null)
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
# A copy of the checkout's sandbox inventory (whatever it holds at run time, group_vars included)
# plus this check's cluster, so that the runs read nothing from the checkout. The sandbox has one
# Kubernetes for all its EKS clusters, so the names that live there per cluster, or on the shared
# node role, get this check's own values.
inventory="$work/inventory"
cp -R "$ROOT/inventories/sandbox" "$inventory"
cat >"$inventory/zz-install-check.yml" <<INV
all:
  children:
    eks_clusters:
      hosts:
        $CLUSTER:
          cluster_gpu_nodegroup_name: $NODEGROUP
          cluster_gpu_node_policy_name: genai-stack-install-check
          cluster_gpu_device_plugin_namespace: nvidia-device-plugin-install-check
INV
inventory_args=(-i "$inventory" --limit "$CLUSTER")
ansible-inventory "${inventory_args[@]}" --host "$CLUSTER" >"$work/hostvars.json" \
    || fail "ansible-inventory cannot read the copied inventory $inventory"

recap_ok() {  # every PLAY RECAP line of $CLUSTER shows no failure and no unreachable host
    grep -Eq "^$CLUSTER +: ok=[0-9]+ +changed=[0-9]+ +unreachable=0 +failed=0" "$1" \
        && ! grep -E "^$CLUSTER +: " "$1" | grep -Evq "unreachable=0 +failed=0"
}
helper() { "$VENV_BIN/python" "$ROOT/tests/docs/install_check_cluster.py" "$@"; }

helper unused "$work/hostvars.json" "$installed" \
    || fail "the sandbox already holds a stack of site.yml; remove it first (ansible-playbook playbooks/teardown.yml) so that this check removes only what it makes"
helper state "$work/before.json"
playbook_path="$(ansible-playbook genai.stack.site "${inventory_args[@]}" --list-hosts | sed -n 's/^playbook: //p')"
[[ "$playbook_path" == "$installed/playbooks/site.yml" ]] || fail "genai.stack.site resolves to '$playbook_path', not to $installed/playbooks/site.yml"

start=$SECONDS
needs_teardown=1
say "ansible-playbook genai.stack.site on $CLUSTER (GPU node group, observability, postgres, the engines, OPEA, Saxml; 2-6 min, stopped at 20 min)"
timeout 1200 ansible-playbook genai.stack.site "${inventory_args[@]}" -v >"$work/apply.log" 2>&1 \
    || { tail -n 40 "$work/apply.log"; fail "ansible-playbook genai.stack.site (log: $work/apply.log)"; }
recap_ok "$work/apply.log" || { tail -n 40 "$work/apply.log"; fail "the apply's PLAY RECAP"; }
grep -q "^Using $ANSIBLE_CONFIG as config file" "$work/apply.log" || fail "the apply did not use $ANSIBLE_CONFIG"
grep -A3 '^PLAY RECAP' "$work/apply.log" | grep "^$CLUSTER" | tail -n 1 | sed 's/^/  last recap: /'
say "the stacks, by another route (helm list --all-namespaces, pg_database):"
helper applied "$work/before.json" "$work/hostvars.json" "$installed" || fail "the stacks are not all deployed"
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
say "ansible-playbook genai.stack.teardown on $CLUSTER (every stack in reverse order, then the GPU capacity; 1-3 min)"
timeout 1200 ansible-playbook genai.stack.teardown "${inventory_args[@]}" >"$work/teardown.log" 2>&1 \
    || { tail -n 40 "$work/teardown.log"; fail "ansible-playbook genai.stack.teardown (log: $work/teardown.log)"; }
needs_teardown=
recap_ok "$work/teardown.log" || { tail -n 40 "$work/teardown.log"; fail "the teardown's PLAY RECAP"; }
python - "$CLUSTER" "$NODEGROUP" <<'PY' || fail "the GPU node group is still in the AWS emulator after the teardown"
import sys, boto3
assert sys.argv[2] not in boto3.client('eks').list_nodegroups(clusterName=sys.argv[1])['nodegroups']
print('  verified in the emulator: node group %s is gone' % sys.argv[2])
PY
helper restored "$work/before.json" || fail "the teardown left the sandbox other than the check found it"
say "teardown OK in $(elapsed $start)"
say "OK in $(elapsed $begin): the tarball installs into a clean path and site.yml runs from it by FQCN ($playbook_path)"
