"""The execution environment (meta/execution-environment.yml) holds what the collection's code imports and runs:
every third-party Python import of plugins/ and of the Python the roles run on the controller, every program the
plugins and the roles' command tasks run, every collection they use (_ee_contents reads both sides). A new import,
binary or collection that the EE lacks fails here with the file and line that needs it and the file to add it to."""
import os
import shutil
import textwrap

import _ee_contents

ROOT = _ee_contents.ROOT


def test_the_ee_provides_what_the_code_needs():
    found = _ee_contents.problems(ROOT)
    assert not found, 'the execution environment lacks what the code needs:\n' + '\n'.join(found)


def test_the_scanner_reads_the_code():
    """The scanner sees through the shapes the collection uses (an import inside try/except ImportError in a
    function, importlib.import_module, get_bin_path, argv with a role variable, python -c code in a task), so the
    check above is not passing on nothing."""
    needs = _ee_contents.all_needs(ROOT)
    imports = {name for name, _where in needs['python']}
    programs = {name for name, _where in needs['programs']}
    assert {'botocore', 'boto3', 'yaml', 'kubernetes'} <= imports
    assert ('kubernetes', 'plugins/module_utils/_kube.py:37') in needs['python']  # importlib.import_module
    assert 'cryptography' in imports  # python -c in roles/adaptive/tasks/preflight.yml
    assert ('helm', 'plugins/modules/helm_release.py:%d' % _line_of('plugins/modules/helm_release.py', "get_bin_path('helm')")) \
        in needs['programs']
    assert any(w.startswith('roles/observability/') for p, w in needs['programs'] if p == 'helm')  # observability_helm_binary
    assert 'python3' in programs
    assert {'amazon.aws', 'kubernetes.core', 'community.postgresql'} <= {name for name, _where in needs['collections']}


def _line_of(path, text):
    with open(os.path.join(ROOT, path), encoding='utf-8') as handle:
        return next(number for number, line in enumerate(handle, 1) if text in line)


def _tree_like_the_collection(tmp_path):
    """A copy of the EE's definition (and the files it names) with no code yet."""
    for name in ('requirements.txt', 'bindep.txt', 'requirements.yml', _ee_contents.EE_FILE):
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), str(target))
    return tmp_path


def _write(root, path, text):
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text).lstrip())


FAKE_MODULE = '''
    import subprocess

    try:
        import jmespath
    except ImportError:
        jmespath = None

    from ansible_collections.community.general.plugins.module_utils import opennebula


    def main(module):
        jq = module.get_bin_path('jq', required=True)
        subprocess.run(['/usr/bin/skopeo', 'inspect', 'docker://x'], check=True)
        module.run_command([jq, '.'])
'''

FAKE_TASKS = '''
    - name: A block
      block:
        - name: Push with oras
          ansible.builtin.shell: ORAS_CACHE=/tmp oras push x
        - name: Run the tool a default names
          ansible.builtin.command:
            argv: ["{{ fake_tool }}", "version"]
        - name: A program from the environment
          ansible.builtin.command:
            cmd: "{{ lookup('ansible.builtin.env', 'TOOL') }} run"
        - name: Python on the controller
          ansible.builtin.command:
            argv: ["{{ ansible_playbook_python }}", "-c", "import requests, toml"]
        - name: A module of a collection the EE lacks
          community.general.json_patch:
            src: x.json
'''


def test_undeclared_imports_programs_and_collections_are_reported(tmp_path):
    root = _tree_like_the_collection(tmp_path)
    _write(root, 'plugins/modules/fake.py', FAKE_MODULE)
    _write(root, 'roles/fake/tasks/main.yml', FAKE_TASKS)
    _write(root, 'roles/fake/defaults/main.yml', 'fake_tool: /opt/bin/crane\n')
    found = '\n'.join(_ee_contents.problems(str(root)))
    assert 'plugins/modules/fake.py:4 imports jmespath (pip: jmespath), which the EE does not install: add it to requirements.txt' in found
    assert 'plugins/modules/fake.py:12 runs jq, which the EE does not install: add its package to bindep.txt' in found
    assert 'plugins/modules/fake.py:13 runs skopeo' in found
    assert 'roles/fake/tasks/main.yml:3 runs oras' in found
    assert 'roles/fake/tasks/main.yml:5 runs crane' in found
    assert 'additional_build_steps in meta/execution-environment.yml' in found
    assert 'roles/fake/tasks/main.yml:11 imports requests (pip: requests), which the EE does not install' in found
    assert 'roles/fake/tasks/main.yml:11 imports toml, which is not installed here, so its distribution is unknown' in found
    assert ('plugins/modules/fake.py:8, roles/fake/tasks/main.yml:14 uses collection community.general, which the EE does not install: '
            'add it to requirements.yml') in found
    # Listed, as the scanner cannot tell them: a templated program and a run call with a computed argv.
    assert "roles/fake/tasks/main.yml:8 runs {{ lookup('ansible.builtin.env', 'TOOL') }}" in found
    assert 'plugins/modules/fake.py:14' in found.splitlines()[-1]
    assert 'python3' not in found and 'subprocess' not in found


def test_declaring_them_in_the_ee_files_satisfies_the_check(tmp_path):
    root = _tree_like_the_collection(tmp_path)
    _write(root, 'plugins/modules/fake.py', FAKE_MODULE)
    with open(str(root / 'requirements.txt'), 'a') as handle:
        handle.write('jmespath\n')
    with open(str(root / 'bindep.txt'), 'a') as handle:
        handle.write('jq [platform:rpm]\nskopeo [platform:rpm]\n')
    with open(str(root / 'requirements.yml'), 'a') as handle:
        handle.write('  - name: community.general\n')
    assert _ee_contents.problems(str(root)) == []


def test_the_introspected_list_holds_the_imports_and_the_used_collections_requirements():
    """check-ee.sh looks for these in ansible-builder's introspection: the code's own imports (not ansible-core's
    requirements, which the EE's ansible-core brings) and what the used collections declare (not their test tools)."""
    listed = {_ee_contents.normalize(d) for d in _ee_contents.introspected_distributions(ROOT)}
    assert {'boto3', 'botocore', 'pyyaml', 'kubernetes'} <= listed
    assert 'psycopg2-binary' in listed  # community.postgresql, which roles/postgres uses
    assert not listed & {'cryptography', 'pytest', 'pytest-mock'}
