"""genai.stack module_utils._validation: the option a dict given as an unreadable value is named
with ansible-core's own message, found through its public validator."""
import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.genai.stack.plugins.module_utils import _validation

UNPARSED = 'dictionary requested, could not parse JSON or key=value'
SPEC = {
    'tls': {'type': 'dict', 'options': {'cert': {'type': 'str'}, 'key': {'type': 'str', 'required': True}}},
    'outer': {'type': 'dict', 'aliases': ['wrapper'], 'options': {'inner': {'type': 'dict', 'options': {'c': {}}}}},
    'items': {'type': 'list', 'elements': 'dict', 'options': {'inner': {'type': 'dict', 'options': {'c': {}}}}},
    'plain': {'type': 'dict'},
    'name': {'type': 'str'},
}


@pytest.mark.parametrize('params', [
    {}, {'name': 'x'}, {'tls': {'key': 'k'}}, {'tls': 'key=k'}, {'tls': '{"key": "k"}'}, {'plain': 'three'},
    {'outer': {'inner': {'c': 1}}}, {'items': [{'inner': {}}, {'inner': 'c=1'}]}, {'items': None},
])
def test_readable_values_leave_nothing_to_name(params):
    assert _validation.unreadable_dict_option(SPEC, params) is None
    assert _validation.option_naming_message(SPEC, params) is None


def test_a_string_for_a_dict_option_is_narrowed_to_the_option_without_suboptions():
    spec, params = _validation.unreadable_dict_option(SPEC, {'name': 'x', 'tls': 'three'})
    assert spec == {'tls': {'type': 'dict'}} and params == {'tls': 'three'}


def test_a_value_other_than_a_string_or_mapping_is_unreadable():
    spec, params = _validation.unreadable_dict_option(SPEC, {'tls': 3})
    assert spec == {'tls': {'type': 'dict'}} and params == {'tls': 3}


def test_a_nested_option_keeps_the_path_to_it():
    spec, params = _validation.unreadable_dict_option(SPEC, {'outer': {'inner': 'three'}})
    assert spec == {'outer': dict(SPEC['outer'], options={'inner': {'type': 'dict'}})}
    assert params == {'outer': {'inner': 'three'}}


def test_an_alias_is_read():
    assert _validation.unreadable_dict_option(SPEC, {'wrapper': 'three'})[1] == {'outer': 'three'}


def test_a_list_element_and_a_nested_option_in_a_list():
    assert _validation.unreadable_dict_option(SPEC, {'items': ['three']}) == (
        {'items': {'type': 'list', 'elements': 'dict'}}, {'items': ['three']})
    spec, params = _validation.unreadable_dict_option(SPEC, {'items': [{'inner': {}}, {'inner': 'three'}]})
    assert spec['items']['options'] == {'inner': {'type': 'dict'}} and params == {'items': [{'inner': 'three'}]}


@pytest.mark.parametrize('params, start', [
    ({'tls': 'three'}, "argument 'tls' is of type str and we were unable to convert to dict: "),
    ({'outer': {'inner': 'three'}}, "argument 'inner' is of type str found in 'outer'."),
    ({'items': ['three']}, "Elements value for option 'items' is of type str"),
    ({'tls': 3}, "argument 'tls' is of type int"),
])
def test_the_message_is_ansible_cores_and_names_the_option(params, start):
    message = _validation.option_naming_message(SPEC, params)
    assert message.startswith(start), message


class _Failed(Exception):
    pass


def _build(monkeypatch, params, **checks):
    payload = dict(params, _ansible_remote_tmp='/tmp', _ansible_keep_remote_files=False)
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': payload})))
    monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy', raising=False)

    def fail_json(self, **result):
        raise _Failed(result['msg'])

    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    return _validation.NamingAnsibleModule(argument_spec=SPEC, **checks)


def test_the_module_reports_the_named_message(monkeypatch):
    with pytest.raises(_Failed) as failed:
        _build(monkeypatch, {'tls': 'three'})
    assert str(failed.value).startswith("argument 'tls' is of type str"), str(failed.value)
    assert str(failed.value) != UNPARSED


def test_other_failures_keep_ansible_cores_message(monkeypatch):
    with pytest.raises(_Failed) as failed:
        _build(monkeypatch, {'name': 'x', 'tls': {'cert': 'c'}})
    assert str(failed.value) == 'missing required arguments: key found in tls'


def test_failures_after_the_module_is_built_are_left_alone(monkeypatch):
    module = _build(monkeypatch, {'name': 'x'})
    module.params['tls'] = 'three'
    with pytest.raises(_Failed) as failed:
        module.fail_json(msg='later')
    assert str(failed.value) == 'later'
    with pytest.raises(_Failed) as failed:
        module.fail_option('name', 'is wrong')
    assert str(failed.value) == 'name: is wrong'
