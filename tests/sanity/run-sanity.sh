#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of the collection laid out as ansible-test expects.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
BIN="$ROOT/.venv/bin"
CORE_VERSION="$("$BIN/python" -c 'import ansible.release as r; print(r.__version__)')"
# ansible-test caches get-pip as get_pip_<pip version>.py; ask it which version it will want.
PIP_TAG="$("$BIN/python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version='3.11'))['pip'].replace('.', '_'))
PY
)"
mkdir -p "$HOME/.ansible/test/cache"
cp tests/sanity/get_pip_standin.py "$HOME/.ansible/test/cache/get_pip_${PIP_TAG}.py"

# Outside the checkout: inside it, ansible-test would list files through git and see none.
TREE="${TMPDIR:-/tmp}/genai-stack-sanity/ansible_collections"
rm -rf "$TREE/genai"
mkdir -p "$TREE/genai/stack"
# Tracked and new (not ignored) files only, so local state never reaches the checks. The sandbox,
# its own tests and the benchmarks are tooling of this repository, not collection content (galaxy.yml
# leaves them out of the tarball too). Helm charts are Go templates, not YAML: tests/charts/lint-charts.sh
# runs `helm lint` on them instead of yamllint.
git ls-files -z -co --exclude-standard | grep -zv -e "^\.collections/" -e "^collections/" -e "^sandbox/" -e "^bench/" -e "^tests/sandbox/" -e "^tests/fixtures/charts/" -e "/files/charts/" | \
  tar --null -T - -cf - | tar -xf - -C "$TREE/genai/stack"
SITE="$("$BIN/python" -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])')"
for dep in amazon/aws kubernetes/core community/postgresql; do
  mkdir -p "$TREE/$(dirname "$dep")"
  ln -sfn "$SITE/$dep" "$TREE/$dep"
done
cd "$TREE/genai/stack"
echo "ansible-test sanity (ansible-core $CORE_VERSION)"
"$BIN/ansible-test" sanity --venv --python 3.11 --color no "$@"
