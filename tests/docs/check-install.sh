#!/usr/bin/env bash
# The collection as users get it: from its tarball, not from the checkout.
#  1. ansible-galaxy collection build into a temporary directory, from the working tree's files
#     that git knows or does not ignore;
#  2. ansible-galaxy collection install --no-deps --offline into a clean, empty collections path
#     (the dependencies come from the `ansible` package's bundled collections; Galaxy is
#     unreachable); nothing of the checkout's runtime state or tests is in it;
#  3. from a directory outside the checkout, with an ansible.cfg that names only that path:
#     genai.stack resolves to the installed copy, `ansible-doc genai.stack.eks_gpu_nodegroup`
#     and `ansible-doc -t role genai.stack.cluster_gpu` work, and the playbooks genai.stack.site
#     and genai.stack.teardown resolve to the installed copy, from there and from the checkout
#     with ANSIBLE_COLLECTIONS_PATH naming that path (it takes precedence over the checkout's
#     ansible.cfg, which names the checkout itself).
# The site runs from the installed copy in make site-check: tests/playbooks/site installs it with
# this script (--into) and runs the molecule scenario, check mode and the teardown from it, so a
# converge from the tarball, its changed=0 re-run and its teardown are shown there, not twice.
#
# usage: tests/docs/check-install.sh [--into DIR]
#   --into DIR  install into DIR/collections and keep it (removed otherwise); the last line printed
#               is then ANSIBLE_COLLECTIONS_PATH=DIR/collections.
# Needs no sandbox.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_BIN="$ROOT/.venv/bin"
into=""
if [[ "${1:-}" == --into ]]; then
    [[ -n "${2:-}" ]] || { echo "usage: $0 [--into DIR]" >&2; exit 2; }
    into="$(mkdir -p "$2" && cd "$2" && pwd)"
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--into DIR]" >&2; exit 2
fi
VERSION="$(sed -n 's/^version:[[:space:]]*//p' "$ROOT/galaxy.yml" | tr -d "\"'")"
say() { echo "check-install: $*"; }
fail() { echo "check-install: FAILED: $*"; exit 1; }
elapsed() { echo "$(( SECONDS - $1 )) s"; }

work="$(mktemp -d /tmp/genai-check-install.XXXXXX)"
run="$work/run"                       # the user's project directory, outside the checkout
collections="${into:-$work}/collections"
rm -rf "$collections"
mkdir -p "$run" "$collections" "$work/dist"
cleanup() {
    local rc=$?
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

for playbook in site teardown; do
    # (-i localhost,: no inventory is needed to resolve a playbook; its plays match no host here)
    path="$(ansible-playbook "genai.stack.$playbook" -i localhost, --list-hosts 2>"$work/list-hosts.err" | sed -n 's/^playbook: //p')"
    [[ "$path" == "$installed/playbooks/$playbook.yml" ]] \
        || fail "genai.stack.$playbook resolves to '$path', not to $installed/playbooks/$playbook.yml: $(cat "$work/list-hosts.err")"
    # From the checkout with its own ansible.cfg (collections_path names the checkout): the
    # environment variable comes first, as in make site-check.
    path="$(cd "$ROOT" && ANSIBLE_CONFIG="$ROOT/ansible.cfg" ansible-playbook "genai.stack.$playbook" -i localhost, --list-hosts \
        2>"$work/list-hosts.err" | sed -n 's/^playbook: //p')"
    [[ "$path" == "$installed/playbooks/$playbook.yml" ]] \
        || fail "from the checkout, genai.stack.$playbook resolves to '$path', not to $installed/playbooks/$playbook.yml: $(cat "$work/list-hosts.err")"
done
say "genai.stack.site and genai.stack.teardown resolve to $installed, outside the checkout and in it"
say "OK in $(elapsed $begin): the tarball builds, installs into a clean path, and its docs and playbooks load from there"
if [[ -n "$into" ]]; then
    echo "ANSIBLE_COLLECTIONS_PATH=$collections"
fi
