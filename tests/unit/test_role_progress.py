"""Progress and summaries of the roles, read from their task files (issue 7).

A user watching a run must see, before a long wait starts, what it waits for and for how long at
most: every task that waits (a module's ``wait``/``wait_timeout``, ``wait_for``'s ``timeout``, or
``until``/``retries``) must have a name saying ``seconds at most: <bound>``, where the bound is
the task's own timeout: the same variable(s) as the timeout expression, or the same number when
the timeout is a literal. And every role's present path must end with a summary task saying
what was deployed, its endpoints, versions and the GPU capacity.
"""
import os
import re

import jinja2
import jinja2.meta
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLES_DIR = os.path.join(ROOT, 'roles')
ROLES = sorted(r for r in os.listdir(ROLES_DIR) if os.path.isdir(os.path.join(ROLES_DIR, r, 'tasks')))
# The stacks; genai.stack.common holds only task files the stacks import (no main, no summary).
STACK_ROLES = [r for r in ROLES if os.path.isfile(os.path.join(ROLES_DIR, r, 'tasks', 'main.yml'))]

# Task keywords: every other key of a task is its module (or action).
KEYWORDS = {
    'name', 'when', 'loop', 'loop_control', 'with_items', 'with_dict', 'with_list', 'with_nested', 'with_together', 'register', 'vars',
    'until', 'retries', 'delay', 'failed_when', 'changed_when', 'ignore_errors', 'no_log', 'tags', 'notify', 'become', 'become_user',
    'check_mode', 'diff', 'delegate_to', 'run_once', 'environment', 'module_defaults', 'block', 'rescue', 'always', 'args', 'timeout',
    'throttle', 'any_errors_fatal', 'ignore_unreachable', 'listen', 'async', 'poll', 'collections', 'connection', 'debugger',
}
INCLUDES = {'include_tasks', 'import_tasks', 'ansible.builtin.include_tasks', 'ansible.builtin.import_tasks'}
BOUND = re.compile(r'seconds at most:?\s*(?P<bound>.+)$', re.I)


class _AnyFilter(dict):
    """Every filter name is known (Ansible's and the collection's too) and passes its value through."""

    def __contains__(self, name):
        return True

    def __missing__(self, name):
        return lambda value, *args, **kwargs: value

    def get(self, name, default=None):
        return self[name]


ENV = jinja2.Environment()
ENV.filters = _AnyFilter(ENV.filters)
ENV.tests = _AnyFilter(ENV.tests)


def _task_files(role):
    tasks = os.path.join(ROLES_DIR, role, 'tasks')
    return sorted(os.path.join(tasks, f) for f in os.listdir(tasks) if f.endswith(('.yml', '.yaml')))


def _load(path):
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle) or []


def _walk(tasks):
    """Every task, blocks opened (a block's own name is not a task that waits)."""
    for task in tasks or []:
        if any(key in task for key in ('block', 'rescue', 'always')):
            for key in ('block', 'rescue', 'always'):
                yield from _walk(task.get(key))
        else:
            yield task


def _module(task):
    names = [k for k in task if k not in KEYWORDS]
    return (names[0], task[names[0]]) if names else (None, None)


def _variables(value):
    """Variables a templated value reads (filters and literals left out); empty for a literal."""
    text = str(value)
    if '{{' not in text:
        return set()
    return set(jinja2.meta.find_undeclared_variables(ENV.parse(text)))


DURATION = re.compile(r'^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$')


def _literal(value):
    """The number a literal or purely arithmetic template gives (a helm duration such as 5m0s in seconds), else None."""
    text = str(value).strip()
    if _variables(text):
        return None
    try:
        rendered = ENV.from_string(text).render() if '{{' in text else text
    except jinja2.TemplateError:
        return None
    try:
        return float(rendered)
    except ValueError:
        duration = DURATION.match(rendered.strip())
        if not duration or not any(duration.groupdict().values()):
            return None
        return sum(float(duration.group(unit) or 0) * factor for unit, factor in (('h', 3600), ('m', 60), ('s', 1)))


def _bounds(task):
    """(what, value) for each bound of a waiting task: the timeout expressions it waits under."""
    module, args = _module(task)
    args = args if isinstance(args, dict) else {}
    found = []
    short = (module or '').rsplit('.', 1)[-1]
    if short == 'wait_for':
        found.append(('timeout', args.get('timeout', 300)))
    elif 'wait_timeout' in args:
        found.append(('wait_timeout', args['wait_timeout']))
    elif args.get('wait') not in (None, False, 'false', 'no', 'False'):
        found.append(('wait', None))
    if 'until' in task or 'retries' in task:
        retries, delay = task.get('retries', 3), task.get('delay', 5)
        found.append(('retries', retries if _variables(retries) else (_literal(retries) or 0) * (_literal(delay) or 0)))
    return found


def _role_vars(role):
    path = os.path.join(ROLES_DIR, role, 'vars', 'main.yml')
    return (_load(path) or {}) if os.path.exists(path) else {}


def _expand(names, role_vars):
    """The variables `names` read, through the role's internal variables (vars/main.yml), themselves included."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_variables(role_vars.get(name, '')))
    return seen


def _bound_problem(task, role_vars=None):
    """None when the task's name states each of its bounds, else what is wrong.

    A name's bound may go through an internal variable of the role (a duration in seconds, say):
    it counts when what it reads includes the timeout's variable.
    """
    name = str(task.get('name', ''))
    match = BOUND.search(name)
    if not match:
        return "name does not say 'seconds at most: <bound>'"
    bound = match.group('bound')
    named_vars = _expand(_variables(bound), role_vars or {})
    for what, value in _bounds(task):
        if what == 'wait':
            return 'waits with the module default timeout: set wait_timeout so the name can state it'
        needed = _expand(_variables(value), role_vars or {})
        if needed:
            if not needed & named_vars:
                return 'the bound %r does not use %s of %s' % (bound, ' or '.join(sorted(needed)), what)
        elif _literal(value) is None or _literal(bound) != float(_literal(value)):
            return 'the bound %r is not %s=%s' % (bound, what, value)
    return None


def _waiting_tasks(role):
    for path in _task_files(role):
        for task in _walk(_load(path)):
            if _bounds(task):
                yield os.path.relpath(path, ROOT), task


def _present_flow(role, filename='present.yml', seen=None):
    """The tasks of the present path in order, static includes inlined."""
    seen = seen or set()
    path = os.path.join(ROLES_DIR, role, 'tasks', filename)
    if path in seen or not os.path.exists(path):
        return []
    seen.add(path)
    flow = []
    for task in _walk(_load(path)):
        module, args = _module(task)
        target = args if isinstance(args, str) else (args or {}).get('file') if isinstance(args, dict) else None
        if module in INCLUDES and target and '{{' not in target:
            flow.extend(_present_flow(role, target, seen))
        else:
            flow.append(task)
    return flow


def _summary_text(task):
    """The literal words of a debug task's message (what Jinja computes left out), else None."""
    module, args = _module(task)
    if (module or '').rsplit('.', 1)[-1] != 'debug' or not isinstance(args, dict):
        return None
    return re.sub(r'\{\{.*?\}\}|\{%.*?%\}', ' ', str(args.get('msg', '')), flags=re.S)


# What each summary must say. cluster_gpu serves nothing, so it has no endpoint to give, and its
# versions are the AMI and the launch template's.
SUMMARY_WORDS = {'cluster_gpu': ('ami', 'launch template', 'gpu')}


UNFIXED = {}


@pytest.mark.parametrize('role', [pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=UNFIXED[r])) if r in UNFIXED else r for r in ROLES])
def test_every_wait_states_what_and_its_bound(role):
    role_vars = _role_vars(role)
    problems = ['%s: %r: %s' % (path, task.get('name'), problem) for path, task in _waiting_tasks(role)
                for problem in [_bound_problem(task, role_vars)] if problem]
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('role', STACK_ROLES)
def test_present_path_ends_with_a_summary(role):
    flow = _present_flow(role)
    assert flow, 'roles/%s/tasks/present.yml: missing or empty' % role
    last = flow[-1]
    text = _summary_text(last)
    assert str(last.get('name', '')).startswith('Summary') and text is not None, \
        'roles/%s: the present path ends with %r, not a Summary debug task' % (role, last.get('name'))
    missing = [word for word in SUMMARY_WORDS.get(role, ('endpoint', 'version', 'gpu')) if word not in text.lower()]
    assert not missing, 'roles/%s: the summary does not say: %s' % (role, ', '.join(missing))


# The checker itself, on tasks written here: it must catch what it is meant to catch.
CASES = [
    ({'name': 'Install the chart', 'genai.stack.helm_release': {'wait': True, 'wait_timeout': '{{ x_wait_timeout }}'}}, 'does not say'),
    ({'name': 'Install, seconds at most: {{ x_other }}', 'genai.stack.helm_release': {'wait': True, 'wait_timeout': '{{ x_wait_timeout }}'}},
     'does not use x_wait_timeout'),
    ({'name': 'Install, seconds at most: {{ x_wait_timeout }}', 'genai.stack.helm_release': {'wait': True, 'wait_timeout': '{{ x_wait_timeout }}'}},
     None),
    ({'name': 'Poll, seconds at most: {{ 30 * 5 }}', 'kubernetes.core.k8s_info': {}, 'until': 'r.ok', 'retries': 30, 'delay': 5}, None),
    ({'name': 'Poll, seconds at most: 60', 'kubernetes.core.k8s_info': {}, 'until': 'r.ok', 'retries': 30, 'delay': 5}, 'is not retries=150'),
    ({'name': 'Poll, seconds at most: 15', 'kubernetes.core.k8s_info': {}, 'until': 'r.ok'}, None),
    ({'name': 'Wait for pods, seconds at most: 120', 'kubernetes.core.k8s': {'wait': True}}, 'module default'),
    ({'name': 'Port, seconds at most: {{ t }}', 'ansible.builtin.wait_for': {'port': 5432, 'timeout': '{{ t | int }}'}}, None),
]


@pytest.mark.parametrize('task,problem', CASES, ids=[str(i) for i in range(len(CASES))])
def test_the_checker_catches_unbounded_names(task, problem):
    assert _bounds(task), task
    found = _bound_problem(task)
    if problem is None:
        assert found is None, found
    else:
        assert found is not None and problem in found, found


def test_a_bound_may_go_through_an_internal_variable():
    task = {'name': 'Install, seconds at most: {{ _x_seconds }}', 'genai.stack.helm_release': {'wait': True, 'wait_timeout': '{{ x_wait_timeout }}'}}
    assert _bound_problem(task, {'_x_seconds': "{{ x_wait_timeout | regex_findall('([0-9]+)s') | first }}"}) is None
    assert 'does not use' in _bound_problem(task, {'_x_seconds': '{{ 300 }}'})


def test_a_summary_counts_its_words_not_its_expressions():
    assert _summary_text({'name': 'Summary', 'ansible.builtin.debug': {'msg': 'chart {{ x_chart_version }}'}}).split() == ['chart']
    assert _summary_text({'name': 'Summary', 'ansible.builtin.set_fact': {'x': 1}}) is None


def test_a_task_without_wait_is_not_checked():
    assert not _bounds({'name': 'Install', 'genai.stack.helm_release': {'wait': False}})
    assert not _bounds({'name': 'Read', 'kubernetes.core.k8s_info': {'kind': 'Pod'}})
