"""Every role sends every Kubernetes call to its host's cluster, and sets no AWS region the user did
not give (issue 14, items 1 and 3).

Read from the roles' task files: each role's tasks/main.yml holds the whole role in blocks whose
module_defaults give each Kubernetes module the role's connection variable (built from the host's
genai_stack_kube in vars/main.yml), and no task names a connection option or a region itself. Either
would erase a play's module_defaults for the module's group when the value is omitted (ansible-core
merges a task's arguments and action defaults over group defaults, and an omitted value removes the
key): tests/playbooks/conftest.py's host_connection shows the connection live, in every playbook test.
"""
import glob
import os

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLES = sorted(os.path.basename(path) for path in glob.glob(os.path.join(ROOT, 'roles', '*')))
# genai.stack.common has no main.yml: its tasks run inside the importing role's block and take its module_defaults.
STACK_ROLES = [role for role in ROLES if os.path.isfile(os.path.join(ROOT, 'roles', role, 'tasks', 'main.yml'))]
KUBE_MODULES = {'kubernetes.core.k8s', 'kubernetes.core.k8s_info', 'genai.stack.helm_release', 'genai.stack.k8s_secret'}
CONNECTION_OPTIONS = {'kubeconfig', 'context', 'kube_context', 'host', 'api_key', 'username', 'password', 'validate_certs',
                      'verify_ssl', 'ca_cert', 'ssl_ca_cert', 'client_cert', 'cert_file', 'client_key', 'key_file', 'proxy',
                      'no_proxy', 'proxy_headers', 'persist_config', 'impersonate_user', 'impersonate_groups'}
AWS_MODULE_PREFIXES = ('amazon.aws.', 'genai.stack.eks_', 'genai.stack.scaling_alarm')
NOT_MODULE_KEYS = {'name', 'when', 'loop', 'register', 'vars', 'block', 'rescue', 'always', 'module_defaults', 'tags',
                   'no_log', 'changed_when', 'failed_when', 'check_mode', 'diff', 'until', 'retries', 'delay', 'loop_control',
                   'ignore_errors', 'delegate_to', 'run_once', 'environment', 'become', 'listen', 'notify', 'throttle',
                   'args', 'any_errors_fatal', 'ignore_unreachable', 'timeout'}


def tasks_of(data):
    """Every task (blocks opened) of a task list."""
    for task in data or []:
        yield task
        for key in ('block', 'rescue', 'always'):
            if key in task:
                yield from tasks_of(task[key])


def module_of(task):
    names = [key for key in task if key not in NOT_MODULE_KEYS and '.' in key]
    return names[0] if names else None


def role_tasks(role):
    for path in sorted(glob.glob(os.path.join(ROOT, 'roles', role, 'tasks', '*.yml'))):
        with open(path, encoding='utf-8') as stream:
            for task in tasks_of(yaml.safe_load(stream)):
                yield os.path.basename(path), task


def test_there_are_roles():
    assert len(STACK_ROLES) >= 7, STACK_ROLES


@pytest.mark.parametrize('role', STACK_ROLES)
def test_main_gives_every_kubernetes_module_the_hosts_connection(role):
    with open(os.path.join(ROOT, 'roles', role, 'tasks', 'main.yml'), encoding='utf-8') as stream:
        top = yaml.safe_load(stream)
    assert len(top) == 1 and 'block' in top[0], 'tasks/main.yml of %s must be one block holding the whole role' % role
    defaults = top[0].get('module_defaults') or {}
    variable = '{{ _%s_kube }}' % role
    assert {module: defaults.get(module) for module in KUBE_MODULES} == {module: variable for module in KUBE_MODULES}
    with open(os.path.join(ROOT, 'roles', role, 'vars', 'main.yml'), encoding='utf-8') as stream:
        built = yaml.safe_load(stream)['_%s_kube' % role]
    assert 'genai_stack_kube' in built


@pytest.mark.parametrize('role', ROLES)
def test_no_task_names_its_own_connection_or_region(role):
    used, offending = set(), []
    for path, task in role_tasks(role):
        module = module_of(task)
        if module is None:
            continue
        args = task[module] if isinstance(task[module], dict) else {}
        if module.startswith(('kubernetes.core.', 'genai.stack.helm_release', 'genai.stack.k8s_secret')):
            used.add(module)
            if CONNECTION_OPTIONS & set(args):
                offending.append('%s: %s sets %s' % (path, task.get('name'), sorted(CONNECTION_OPTIONS & set(args))))
        if module.startswith(AWS_MODULE_PREFIXES) and 'region' in args:
            offending.append('%s: %s sets region' % (path, task.get('name')))
    assert not offending, offending
    assert used <= KUBE_MODULES, 'a Kubernetes module main.yml does not give the connection: %s' % sorted(used - KUBE_MODULES)
