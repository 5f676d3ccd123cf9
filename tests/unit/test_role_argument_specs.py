"""Every role's meta/argument_specs.yml documents exactly its public defaults, with equal defaults."""
import os

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
COLLECTION_WIDE = ('genai_stack_chart_mirror', 'genai_stack_chart_mirror_username', 'genai_stack_chart_mirror_password',
                   'genai_stack_chart_mirror_plain_http', 'genai_stack_kube')
# The stacks (a tasks/main.yml); genai.stack.common is imported by them through its own entry points
# (tests/unit/test_common_role.py).
ROLES = sorted(d for d in os.listdir(os.path.join(ROOT, 'roles')) if os.path.isfile(os.path.join(ROOT, 'roles', d, 'tasks', 'main.yml')))


def _load(role, *parts):
    path = os.path.join(ROOT, 'roles', role, *parts)
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle) or {}


def test_there_are_roles():
    assert 'cluster_gpu' in ROLES


@pytest.mark.parametrize('role', ROLES)
def test_argument_specs_match_defaults(role):
    defaults = _load(role, 'defaults', 'main.yml')
    specs = _load(role, 'meta', 'argument_specs.yml')
    assert defaults is not None, '%s has no defaults/main.yml' % role
    assert specs is not None, '%s has no meta/argument_specs.yml' % role
    # The collection-wide variables (chart mirror, cluster connection) are documented in each role that reads them, with no role default.
    options = {k: v for k, v in specs['argument_specs']['main']['options'].items() if k not in COLLECTION_WIDE}
    public = {k: v for k, v in defaults.items() if not k.startswith('_')}
    assert sorted(public) == sorted(options), 'defaults and argument_specs differ for %s' % role
    for name, value in public.items():
        assert name.startswith(role + '_'), '%s is not prefixed with the role name' % name
        spec = options[name]
        assert spec.get('description'), '%s has no description' % name
        if spec.get('required'):
            continue
        assert spec.get('default') == value, '%s: default %r in argument_specs, %r in defaults' % (name, spec.get('default'), value)


@pytest.mark.parametrize('role', ROLES)
def test_every_role_documents_the_cluster_connection(role):
    """Every role talks to its host's cluster (genai_stack_kube): a dictionary, documented alike everywhere."""
    specs = _load(role, 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    reference = _load('cluster_gpu', 'meta', 'argument_specs.yml')['argument_specs']['main']['options']['genai_stack_kube']
    assert specs.get('genai_stack_kube') == reference and reference['type'] == 'dict' and 'default' not in reference
