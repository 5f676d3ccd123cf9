"""k8s_secret's planning functions: the live object and the desired one in, the action and the
fields that differ out, with no call to the API."""
import base64

import pytest

from ansible_collections.genai.stack.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.genai.stack.plugins.module_utils._kube import Fingerprints
from ansible_collections.genai.stack.plugins.modules import k8s_secret

PRINTS = Fingerprints(key=b'k' * 32)


def _b64(value):
    return base64.b64encode(value).decode('ascii')


def desired(**changes):
    wanted = {'name': 's', 'namespace': 'ns', 'api_version': 'v1', 'type': 'Opaque', 'data': {'a': b'1'},
              'labels': {'team': 'x'}, 'annotations': None}
    wanted.update(changes)
    return wanted


def live(**changes):
    obj = {'type': 'Opaque', 'data': {'a': _b64(b'1')},
           'metadata': {'name': 's', 'namespace': 'ns', 'resourceVersion': '7', 'labels': {'team': 'x', 'other': 'y'}}}
    obj.update(changes)
    return obj


def test_the_tracker_names_the_fields_that_differ_in_order():
    tracker = DifferenceTracker()
    tracker.add('b', 1, 2)
    tracker.add('a', 1, 1)
    tracker.add('c', None, {})
    assert tracker.changed_fields() == ['b', 'c']


@pytest.mark.parametrize('current, action, verbs', [(None, 'none', ()), (live(), 'delete', ('delete',))])
def test_absent(current, action, verbs):
    plan = k8s_secret.plan_absent(current)
    assert (plan.action, plan.verbs, plan.body) == (action, verbs, None)
    assert plan.fields == (['exists'] if current else [])


def test_a_missing_secret_is_created_with_its_data_encoded():
    plan = k8s_secret.plan_secret(None, desired(), PRINTS)
    assert plan.action == 'create' and plan.verbs == ('create',)
    assert plan.fields == ['exists', 'type', 'data', 'labels']
    assert plan.body == {'apiVersion': 'v1', 'kind': 'Secret', 'type': 'Opaque', 'data': {'a': _b64(b'1')},
                         'metadata': {'name': 's', 'namespace': 'ns', 'labels': {'team': 'x'}, 'annotations': {}}}
    assert plan.tracker.diff()['after']['data'] == {'a': PRINTS.of(b'1')}


def test_an_equal_secret_needs_nothing():
    plan = k8s_secret.plan_secret(live(), desired(), PRINTS)
    assert (plan.action, plan.verbs, plan.fields) == ('none', (), [])


@pytest.mark.parametrize('changes, fields', [
    ({'data': {'a': b'2'}}, ['data']),
    ({'data': {'a': b'1', 'b': b''}}, ['data']),
    ({'labels': {'team': 'z'}}, ['labels']),
    ({'annotations': {'note': 1}}, ['annotations']),
])
def test_a_differing_secret_is_replaced_at_its_resource_version(changes, fields):
    plan = k8s_secret.plan_secret(live(), desired(**changes), PRINTS)
    assert (plan.action, plan.verbs, plan.fields) == ('replace', ('replace',), fields)
    assert plan.body['metadata']['resourceVersion'] == '7'
    # Labels and annotations the options do not name are kept.
    assert plan.body['metadata']['labels']['other'] == 'y'


def test_the_diff_shows_only_the_managed_labels_and_fingerprints():
    plan = k8s_secret.plan_secret(live(), desired(data={'a': b'2'}, annotations={'n': 3}), PRINTS)
    diff = plan.tracker.diff()
    assert diff['before']['labels'] == {'team': 'x'} and diff['after']['annotations'] == {'n': '3'}
    assert diff['before']['data'] == {'a': PRINTS.of(b'1')} and diff['after']['data'] == {'a': PRINTS.of(b'2')}


@pytest.mark.parametrize('current, wanted', [
    (live(), desired(type='kubernetes.io/tls')),
    (live(immutable=True), desired(data={'a': b'2'})),
])
def test_a_type_change_or_an_immutable_secret_is_recreated(current, wanted):
    plan = k8s_secret.plan_secret(current, wanted, PRINTS)
    assert (plan.action, plan.verbs) == ('recreate', ('delete', 'create'))
    assert 'resourceVersion' not in plan.body['metadata']


def test_an_immutable_secret_that_matches_is_left_alone():
    assert k8s_secret.plan_secret(live(immutable=True), desired(), PRINTS).action == 'none'


SPEC = {'refreshInterval': '1h', 'secretStoreRef': {'name': 'aws', 'kind': 'ClusterSecretStore'}}


def external(**changes):
    wanted = {'name': 's', 'namespace': 'ns', 'api_version': 'external-secrets.io/v1beta1', 'spec': SPEC,
              'labels': None, 'annotations': None}
    wanted.update(changes)
    return wanted


def test_a_missing_external_secret_is_created():
    plan = k8s_secret.plan_external(None, external())
    assert (plan.action, plan.fields) == ('create', ['exists', 'spec'])
    assert plan.body == {'apiVersion': 'external-secrets.io/v1beta1', 'kind': 'ExternalSecret', 'spec': SPEC,
                         'metadata': {'name': 's', 'namespace': 'ns', 'labels': {}, 'annotations': {}}}


def test_operator_defaults_in_the_live_spec_are_no_drift():
    current = {'spec': dict(SPEC, target={'creationPolicy': 'Owner', 'deletionPolicy': 'Retain'}), 'metadata': {}}
    plan = k8s_secret.plan_external(current, external())
    assert (plan.action, plan.fields) == ('none', [])


def test_a_drifted_external_secret_is_replaced_and_the_diff_shows_the_live_spec():
    current = {'spec': dict(SPEC, refreshInterval='5m'), 'metadata': {'resourceVersion': '3'}}
    plan = k8s_secret.plan_external(current, external())
    assert (plan.action, plan.verbs, plan.fields) == ('replace', ('replace',), ['spec'])
    assert plan.tracker.diff()['before']['spec']['refreshInterval'] == '5m'
    assert plan.body['metadata']['resourceVersion'] == '3'


def test_a_label_alone_replaces_an_external_secret():
    current = {'spec': SPEC, 'metadata': {'labels': {'a': 'b'}}}
    plan = k8s_secret.plan_external(current, external(labels={'a': 'c'}))
    assert (plan.action, plan.fields) == ('replace', ['labels'])
