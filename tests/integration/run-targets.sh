#!/usr/bin/env bash
# Run integration targets (ansible-test layout: tests/integration/targets/<name>/tasks/main.yml)
# against the running sandbox, each as a role in its own ansible-playbook run on localhost.
# Targets listed in a target's `aliases` file with `disabled` are skipped and reported.
# usage: run-targets.sh [target ...]   (default: every target not named setup_*)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
: "${AWS_ENDPOINT_URL:?source .sandbox/env first (make integration does)}"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
export ANSIBLE_ROLES_PATH="$ROOT/tests/integration/targets"
export SANDBOX_TOOLS_DIR="$ROOT/tests/tools"
export SANDBOX_JOURNAL_TOOL="$SANDBOX_TOOLS_DIR/sandbox_journal.py"
export PATH="$ROOT/.venv/bin:$PATH"

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=()
  for d in tests/integration/targets/*/; do
    t="$(basename "$d")"
    [[ "$t" == setup_* ]] && continue
    if [[ -f "$d/aliases" ]] && grep -qx 'disabled' "$d/aliases"; then
      echo "integration: $t is disabled (see its aliases file)"; continue
    fi
    targets+=("$t")
  done
fi
[[ ${#targets[@]} -gt 0 ]] || { echo "integration: no targets found" >&2; exit 1; }

passed=0; failed=0; failed_names=()
mkdir -p tests/output/integration
for t in "${targets[@]}"; do
  play="$(mktemp --suffix .yml)"
  printf -- '- hosts: localhost\n  connection: local\n  gather_facts: false\n  vars:\n    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n  roles:\n    - role: %s\n' "$t" > "$play"
  start=$(date +%s)
  if ansible-playbook -i localhost, "$play" > "tests/output/integration/$t.log" 2>&1; then
    passed=$((passed + 1)); echo "integration: $t ok ($(( $(date +%s) - start ))s)"
  else
    failed=$((failed + 1)); failed_names+=("$t")
    echo "integration: $t FAILED ($(( $(date +%s) - start ))s); last lines of tests/output/integration/$t.log:"
    tail -n 40 "tests/output/integration/$t.log"
  fi
  rm -f "$play"
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
