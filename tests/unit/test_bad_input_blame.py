"""The comparison the bad input catalogue uses (tests/reliability/_blame.py): a failure passes only
when the option it names, read from the failure's structure, equals the expected one. A failure
that blames `cluster_name` does not pass for `name`, nor `values_files` for `values`, however
the message reads.

The ansible-core messages are produced by the installed ansible-core's own validator, so a
change of its wording fails here rather than silently naming nothing in the catalogue.
"""
import json
import os
import sys

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.genai.stack.plugins.module_utils._validation import NamingAnsibleModule

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'reliability'))

import _blame  # noqa: E402  pylint: disable=wrong-import-position


def _module_failure(*errors):
    """A genai.stack module's input failure: the message plus `errors` as data."""
    return {'failed': True, 'msg': 'Invalid input: ' + '; '.join('%s: %s' % e for e in errors),
            'errors': [{'option': o, 'message': m} for o, m in errors]}


class _Failed(Exception):
    pass


def _core_message(spec, params):
    """The first message of ansible-core's validator (as a role's argument_errors hold it)."""
    messages = ArgumentSpecValidator(spec).validate(params).error_messages
    assert messages, 'ansible-core accepted %r' % params
    return messages[0]


def _module_message(monkeypatch, spec, params, **checks):
    """The failure message of the modules' AnsibleModule class given `params`, as a task reports it."""
    payload = dict(params, _ansible_remote_tmp='/tmp', _ansible_keep_remote_files=False)
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': payload})))
    monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy', raising=False)

    def fail_json(self, **result):
        raise _Failed(result['msg'])

    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    with pytest.raises(_Failed) as failed:
        NamingAnsibleModule(argument_spec=spec, **checks)
    return str(failed.value)


# --- the weakness of a substring test, each way it can reach the comparison --------------------

@pytest.mark.parametrize('expected, blamed', [('name', 'cluster_name'), ('values', 'values_files'), ('labels', 'node_labels')])
def test_a_failure_naming_a_longer_option_does_not_name_the_expected_one(expected, blamed):
    result = _module_failure((blamed, 'must not mention %r' % expected))
    assert expected in result['msg']  # a substring test would pass it
    assert _blame.named_options(result) == [blamed]
    assert _blame.blame_problem(expected, result) == 'names [%r], expected [%r]' % (blamed, expected)
    assert _blame.blame_problem(blamed, result) is None


@pytest.mark.parametrize('expected, blamed', [('name', 'cluster_name'), ('values', 'values_files')])
def test_an_ansible_core_message_about_a_longer_option_does_not_name_the_expected_one(monkeypatch, expected, blamed):
    result = {'failed': True, 'msg': _module_message(monkeypatch, {blamed: {'type': 'int'}, expected: {'type': 'str'}},
                                                     {blamed: 'many', expected: 'x'})}
    assert _blame.named_options(result) == [blamed]
    assert _blame.blame_problem(expected, result) is not None
    assert _blame.blame_problem(blamed, result) is None


@pytest.mark.parametrize('expected, blamed', [('name', 'cluster_name'), ('values', 'values_files')])
def test_a_role_preflight_message_is_read_by_its_variable(expected, blamed):
    result = {'failed': True, 'msg': 'cluster_gpu preflight: %s: must not be %s' % (blamed, expected)}
    assert _blame.blame_problem(expected, result) is not None
    assert _blame.blame_problem(blamed, result) is None


def test_an_unstructured_message_names_nothing_even_when_it_contains_the_option():
    result = {'failed': True, 'msg': 'name: no node group named x'}
    assert _blame.named_options(result) == []
    assert _blame.blame_problem('name', result).startswith('names no option')


def test_one_option_too_many_is_a_problem_and_a_listed_set_is_compared_whole():
    result = _module_failure(('subnets', 'a'), ('instance_type', 'b'))
    assert _blame.blame_problem('subnets', result) is not None
    assert _blame.blame_problem(['instance_type', 'subnets'], result) is None
    assert _blame.blame_problem(['instance_type', 'subnets', 'disk_size'], result) is not None


def test_a_module_failure_with_single_option_fields():
    result = {'failed': True, 'msg': 'node_role: required', 'option': 'node_role',
              'errors': [{'option': 'node_role', 'message': 'required'}]}
    assert _blame.named_options(result) == ['node_role']


# --- ansible-core's wording, produced by ansible-core ------------------------------------------

TAINTS = {'taints': {'type': 'list', 'elements': 'dict', 'options': {
    'key': {'type': 'str', 'required': True}, 'effect': {'type': 'str', 'choices': ['NO_SCHEDULE', 'NO_EXECUTE']}}}}
REGISTRY = {'docker_registry': {'type': 'dict', 'options': {'server': {'type': 'str'}, 'password': {'type': 'str', 'required': True}}}}


@pytest.mark.parametrize('spec, params, checks, named', [
    ({'disk_size': {'type': 'int'}}, {'disk_size': 'lots'}, {}, ['disk_size']),
    ({'scaling_config': {'type': 'dict', 'options': {'min_size': {'type': 'int'}}}}, {'scaling_config': 'three'}, {}, ['scaling_config']),
    ({'state': {'choices': ['present', 'absent']}}, {'state': 'sideways'}, {}, ['state']),
    ({'subnets': {'type': 'list', 'elements': 'int'}}, {'subnets': ['x']}, {}, ['subnets']),
    ({'name': {'required': True}, 'cluster_name': {'required': True}}, {'cluster_name': 'c'}, {}, ['name']),
    (TAINTS, {'taints': [{'key': 'a', 'effect': 'Sometimes'}]}, {}, ['taints.effect']),
    (TAINTS, {'taints': [{'effect': 'NO_SCHEDULE'}]}, {}, ['taints.key']),
    (REGISTRY, {'docker_registry': {'server': 'ghcr.io'}}, {}, ['docker_registry.password']),
    ({'data': {'type': 'dict'}, 'tls': {'type': 'dict'}}, {'data': {'a': 'b'}, 'tls': {'c': 'd'}},
     {'mutually_exclusive': [['data', 'tls']]}, ['data', 'tls']),
    ({'username': {}, 'password': {}}, {'username': 'u'}, {'required_together': [['username', 'password']]}, ['username', 'password']),
    ({'state': {}, 'render_dir': {}}, {'state': 'rendered'}, {'required_if': [['state', 'rendered', ['render_dir']]]}, ['render_dir']),
    ({'name': {'type': 'str'}}, {'name': 'a', 'instance_types': ['g5.xlarge']}, {}, ['instance_types']),
])
def test_ansible_core_messages_name_the_exact_option_path(monkeypatch, spec, params, checks, named):
    message = _module_message(monkeypatch, spec, params, **checks)
    assert _blame.core_options(message) == named, message


def test_a_role_argument_spec_failure_is_read_from_argument_errors():
    result = {'failed': True, 'msg': 'Validation of arguments failed:\n...',
              'argument_errors': [_core_message({'cluster_gpu_disk_size': {'type': 'int'}}, {'cluster_gpu_disk_size': 'lots'})]}
    assert _blame.named_options(result) == ['cluster_gpu_disk_size']


def test_failed_loop_items_are_read_each():
    result = {'failed': True, 'msg': 'One or more items failed', 'results': [
        {'failed': False, 'msg': 'All assertions passed'},
        {'failed': True, 'msg': 'postgres preflight: postgres_databases[].name: must be lower case, got [Bad-DB]'}]}
    assert _blame.named_options(result) == ['postgres_databases[].name']


def test_lookup_messages():
    wrapped = "The lookup plugin 'genai.stack.eks_gpu_ami' failed: eks_gpu_ami: _terms: Kubernetes version '1.12' is not supported"
    assert _blame.named_options({'failed': True, 'msg': wrapped}) == ['_terms']
    config = "Invalid value 'UBUNTU' for config 'ami_type' for 'genai.stack.eks_gpu_ami' lookup plugin."
    assert _blame.named_options({'failed': True, 'msg': config}) == ['ami_type']


def test_every_catalogue_case_expects_option_paths_the_comparison_can_equal():
    """A catalogue `option` is one path or a list of paths, in the form the failures name them."""
    import re

    import yaml

    with open(os.path.join(ROOT, 'tests', 'reliability', 'bad_inputs.yml'), encoding='utf-8') as handle:
        catalogue = yaml.safe_load(handle)
    path = re.compile(r'^%s$' % _blame._NAME)  # pylint: disable=protected-access
    cases = catalogue['modules'] + catalogue['lookups'] + catalogue['roles']
    assert len(cases) >= 80
    for case in cases:
        expected = [case['option']] if isinstance(case['option'], str) else case['option']
        assert isinstance(expected, list) and expected, case['id']
        assert all(isinstance(o, str) and path.match(o) for o in expected), case['id']
        assert len(set(expected)) == len(expected), case['id']
