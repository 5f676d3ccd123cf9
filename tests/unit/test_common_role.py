"""genai.stack.common: the preflight rules and the namespace step that every stack role imports
instead of writing them again (issue 15, item 4).

Read from the roles' task files: every import names an entry point that exists, with exactly the
options its argument spec has; no stack role checks rules or creates a namespace by itself. And run
by ansible-playbook on the controller (the rules step needs no cluster; the namespace step runs
live in every role's playbook test): the message shape, a failing rule failing the host, and the
check-mode leniency only where it is asked for.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BIN = os.path.dirname(sys.executable)
COMMON = os.path.join(ROOT, 'roles', 'common')
STACK_ROLES = sorted(r for r in os.listdir(os.path.join(ROOT, 'roles')) if os.path.isfile(os.path.join(ROOT, 'roles', r, 'tasks', 'main.yml')))
IMPORT_ROLE = ('ansible.builtin.import_role', 'import_role', 'ansible.builtin.include_role', 'include_role')


def _load(path):
    with open(path, encoding='utf-8') as stream:
        return yaml.safe_load(stream) or []


SPECS = _load(os.path.join(COMMON, 'meta', 'argument_specs.yml'))['argument_specs']
# Required, yet left out of the entry point's options (its description says why: the argument
# validation would template the rules before the check-mode leniency applies).
UNVALIDATED = {'rules': {'common_rules'}, 'namespace': set(), 'cluster_needs': set()}


def _tasks(data):
    for task in data or []:
        yield task
        for key in ('block', 'rescue', 'always'):
            yield from _tasks(task.get(key))


def _role_tasks(role):
    tasks_dir = os.path.join(ROOT, 'roles', role, 'tasks')
    for name in sorted(os.listdir(tasks_dir)):
        for task in _tasks(_load(os.path.join(tasks_dir, name))):
            yield '%s/%s' % (role, name), task


def _imports():
    for role in STACK_ROLES:
        for where, task in _role_tasks(role):
            module = next((key for key in task if key in IMPORT_ROLE), None)
            if module:
                yield where, task, module


def test_common_has_entry_points_only():
    """A library of steps, not a stack: no main to run by itself, a task file per entry point."""
    assert 'main' not in SPECS
    files = sorted(f[:-4] for f in os.listdir(os.path.join(COMMON, 'tasks')))
    assert files == sorted(SPECS) == ['cluster_needs', 'namespace', 'rules']


def test_every_import_names_an_entry_point_with_its_options():
    seen, problems = set(), []
    for where, task, module in _imports():
        args = task[module]
        label = '%s: %r' % (where, task.get('name'))
        if module not in ('ansible.builtin.import_role', 'import_role') or args.get('name') != 'genai.stack.common':
            problems.append('%s: %s %s (the stacks import genai.stack.common statically, so its tasks take the tags and '
                            'module_defaults of where they stand)' % (label, module, args.get('name')))
            continue
        entry = args.get('tasks_from')
        if entry not in SPECS:
            problems.append('%s: no entry point %r' % (label, entry))
            continue
        seen.add(entry)
        options = SPECS[entry]['options']
        given = {k for k in (task.get('vars') or {}) if k.startswith('common_')}
        required = {k for k, v in options.items() if v.get('required')} | UNVALIDATED[entry]
        if given - set(options) - UNVALIDATED[entry]:
            problems.append('%s: unknown options %s' % (label, sorted(given - set(options))))
        if required - given:
            problems.append('%s: missing %s' % (label, sorted(required - given)))
    assert not problems, '\n'.join(problems)
    assert seen == {'rules', 'namespace', 'cluster_needs'}, seen


def test_no_stack_role_writes_its_own_rules_loop_or_namespace():
    problems = []
    for role in STACK_ROLES:
        for where, task in _role_tasks(role):
            assert_args = task.get('ansible.builtin.assert') or {}
            if isinstance(assert_args, dict) and assert_args.get('that') == 'item.ok | bool':
                problems.append('%s: %r checks rules itself; import genai.stack.common tasks_from: rules' % (where, task.get('name')))
            k8s = task.get('kubernetes.core.k8s') or {}
            definition = k8s.get('definition')
            kind = k8s.get('kind') or (definition.get('kind') if isinstance(definition, dict) else None)
            if kind == 'Namespace' and k8s.get('state', 'present') == 'present':
                problems.append('%s: %r creates a namespace itself; import genai.stack.common tasks_from: namespace'
                                % (where, task.get('name')))
    assert not problems, '\n'.join(problems)


def test_the_check_catches_a_rules_loop_of_its_own(monkeypatch, tmp_path):
    """The search above is not blind: a role with its own loop is found."""
    role = tmp_path / 'roles' / 'own'
    (role / 'tasks').mkdir(parents=True)
    (role / 'tasks' / 'main.yml').write_text(yaml.safe_dump([{'name': 'Check', 'ansible.builtin.assert': {'that': 'item.ok | bool'}, 'loop': []},
                                                            {'name': 'Ns', 'kubernetes.core.k8s': {'kind': 'Namespace', 'name': 'x'}}]))
    monkeypatch.setattr(sys.modules[__name__], 'ROOT', str(tmp_path))
    monkeypatch.setattr(sys.modules[__name__], 'STACK_ROLES', ['own'])
    with pytest.raises(AssertionError) as failed:
        test_no_stack_role_writes_its_own_rules_loop_or_namespace()
    assert "'Check' checks rules itself" in str(failed.value) and "'Ns' creates a namespace itself" in str(failed.value)


# --- the rules step, run ------------------------------------------------------------------------

def _rules_play(host_vars):
    return [{'name': 'rules', 'hosts': 'all', 'gather_facts': False, 'tasks': [{
        'name': 'Imported as the stacks import it',
        'ansible.builtin.import_role': {'name': 'genai.stack.common', 'tasks_from': 'rules'},
        'vars': {'common_rules_prefix': 'demo preflight', 'common_rules_title': 'the demo variables',
                 'common_rules_soft_in_check_mode': '{{ demo_soft }}',
                 'common_rules': [{'name': 'demo_size', 'ok': '{{ demo_size | int >= 1 }}', 'rule': 'must be at least 1, got {{ demo_size }}'},
                                  {'name': 'demo_name', 'ok': '{{ demo_name is match("^[a-z]+$") }}', 'rule': "must be lower case, got '{{ demo_name }}'"}]},
    }]}], {'all': {'hosts': {name: dict(v, ansible_connection='local', ansible_python_interpreter=sys.executable)
                             for name, v in host_vars.items()}}}


HOSTS = {
    'good': {'demo_size': 2, 'demo_name': 'ok', 'demo_soft': False},
    'small': {'demo_size': 0, 'demo_name': 'ok', 'demo_soft': False},
    'upper': {'demo_size': 1, 'demo_name': 'NO', 'demo_soft': False},
    'soft': {'demo_size': 0, 'demo_name': 'ok', 'demo_soft': True},
}


@pytest.fixture(scope='module', params=[False, True], ids=['run', 'check'])
def rules_run(request, tmp_path_factory):
    """{host: (its stats, the messages of its failed items)} of one run of the rules step, four hosts at once."""
    out = tmp_path_factory.mktemp('common-rules')
    play, inventory = _rules_play(HOSTS)
    (out / 'play.yml').write_text(yaml.safe_dump(play, sort_keys=False), encoding='utf-8')
    (out / 'hosts.yml').write_text(yaml.safe_dump(inventory, sort_keys=False), encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='json',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json', PATH=BIN + os.pathsep + os.environ['PATH'])
    argv = [os.path.join(BIN, 'ansible-playbook'), '-i', str(out / 'hosts.yml'), str(out / 'play.yml')] + (['--check'] if request.param else [])
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    report = json.loads(proc.stdout)
    messages = {host: [] for host in HOSTS}
    for task in report['plays'][0]['tasks']:
        for host, result in task['hosts'].items():
            messages[host].extend(item['msg'] for item in result.get('results', []) if item.get('failed'))
    return request.param, {host: (report['stats'][host], messages[host]) for host in HOSTS}


def test_rules_that_hold_pass(rules_run):
    hosts = rules_run[1]
    stats, messages = hosts['good']
    assert stats['failures'] == 0 and messages == []


@pytest.mark.parametrize('host,message', [
    ('small', 'demo preflight: demo_size: must be at least 1, got 0'),
    ('upper', "demo preflight: demo_name: must be lower case, got 'NO'"),
])
def test_a_broken_rule_fails_the_host_naming_its_variable(rules_run, host, message):
    hosts = rules_run[1]
    stats, messages = hosts[host]
    assert stats['failures'] == 1
    assert [m.strip() for m in messages] == [message]


def test_soft_rules_report_in_check_mode_and_fail_in_a_real_run(rules_run):
    check, hosts = rules_run
    stats, messages = hosts['soft']
    assert len(messages) == 1 and messages[0].startswith('demo preflight: demo_size: must be at least 1, got 0')
    if check:
        assert stats['failures'] == 0 and stats['ignored'] == 1 and 'check mode: reported, not fatal' in messages[0]
    else:
        assert stats['failures'] == 1 and 'check mode' not in messages[0]
