"""helm_release's planning functions: the release as read and the release as wanted in, the action
and its reasons out, with no call to helm or the API."""
import pytest

from ansible_collections.genai.stack.plugins.module_utils._kube import value_hash
from ansible_collections.genai.stack.plugins.modules import helm_release

CM = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: "%s"\n'


def shown(values):
    """A mask that shows it was applied: the diff must hold masked copies only."""
    return {'masked': values}


def desired(**changes):
    wanted = {'chart': 'app-1.0.0', 'values': {'replicas': 2}, 'manifest': CM % 1}
    wanted.update(changes)
    return wanted


def current(**changes):
    release = {'status': 'deployed', 'chart': 'app-1.0.0', 'values': {'replicas': 2}, 'manifest': CM % 1,
               'has_deployed_revision': None, 'drift': ([], {}, {})}
    release.update(changes)
    return release


def plan(release, wanted=None, **kwargs):
    return helm_release.plan_release(release, wanted or desired(), shown, 'ns', **kwargs)


@pytest.mark.parametrize('status, has_deployed, action', [
    ('pending-install', None, 'reinstall'), ('uninstalling', None, 'reinstall'), ('failed', False, 'reinstall'),
    ('pending-upgrade', None, 'rollback'), ('pending-rollback', None, 'rollback'),
    ('failed', True, 'upgrade'), ('deployed', None, None), ('superseded', None, None),
])
def test_recovery_action(status, has_deployed, action):
    assert helm_release.recovery_action(status, has_deployed) == action


def test_a_missing_release_is_installed_and_every_object_is_new():
    result = plan(None)
    assert (result.action, result.reasons) == ('install', ['the release is not installed'])
    assert result.tracker.changed_fields() == ['status', 'chart', 'values']
    assert result.tracker.diff()['before']['values'] == {'masked': None}
    assert result.details['objects_before'] == {} and list(result.details['objects_after']) == ['ConfigMap/ns/cfg']
    assert result.details['drift'] == []


def test_an_equal_release_needs_nothing():
    result = plan(current())
    assert (result.action, result.reasons, result.tracker.changed_fields()) == ('none', [], [])
    assert result.details['objects_before'] == {} == result.details['objects_after']


@pytest.mark.parametrize('release, wanted, reasons', [
    (current(chart='app-0.9.0'), desired(), ['the chart differs']),
    (current(values={'replicas': 3}), desired(), ['the values differ']),
    (current(status='superseded'), desired(), ['the release is not deployed']),
    (current(drift=(['ConfigMap/ns/cfg data.a'], {'ConfigMap/ns/cfg': 'live'}, {'ConfigMap/ns/cfg': 'wanted'})), desired(),
     ['live objects drifted']),
])
def test_a_differing_release_is_upgraded_with_its_reasons(release, wanted, reasons):
    result = plan(release, wanted)
    assert (result.action, result.reasons) == ('upgrade', reasons)


def test_the_diff_holds_the_masked_values_and_the_drifted_objects():
    drift = (['ConfigMap/ns/cfg data.a'], {'ConfigMap/ns/cfg': 'live'}, {'ConfigMap/ns/cfg': 'wanted'})
    result = plan(current(values={'replicas': 3}, drift=drift))
    diff = result.tracker.diff()
    assert diff['before']['values'] == {'masked': {'replicas': 3}} and diff['after']['values'] == {'masked': {'replicas': 2}}
    assert diff['before']['drift'] == ['ConfigMap/ns/cfg data.a'] and diff['after']['drift'] == []
    assert result.details['drift'] == ['ConfigMap/ns/cfg data.a']
    assert result.details['objects_before'] == {'ConfigMap/ns/cfg': 'live'}


def test_values_the_mask_hides_are_told_by_digest():
    def hide(values):
        return 'hidden'

    result = helm_release.plan_release(current(values={'password': 'a'}), desired(values={'password': 'b'}), hide, 'ns')
    assert result.action == 'upgrade' and result.tracker.changed_fields() == ['values_digest']
    assert result.reasons == ['the values differ']
    # True == 1 in Python, not in helm's values.
    result = plan(current(values={'on': 1}), desired(values={'on': True}))
    assert result.tracker.changed_fields() == ['values_digest']


def test_the_manifest_is_compared_only_when_asked():
    changed = desired(manifest=CM % 2)
    assert plan(current(), changed).action == 'none'
    result = plan(current(), changed, compare_manifest=True)
    assert (result.action, result.reasons) == ('upgrade', ['the rendered manifest differs'])
    assert result.tracker.diff()['after']['manifest'] == value_hash((CM % 2).strip())
    assert list(result.details['objects_after']) == ['ConfigMap/ns/cfg']


@pytest.mark.parametrize('status, has_deployed, action', [
    ('pending-install', None, 'reinstall'), ('failed', False, 'reinstall'), ('pending-upgrade', None, 'rollback'),
    ('failed', True, 'upgrade'),
])
def test_a_stuck_release_is_recovered_without_comparing_its_live_objects(status, has_deployed, action):
    release = current(status=status, has_deployed_revision=has_deployed)
    del release['drift']  # not read for a release the status decides
    result = plan(release)
    assert (result.action, result.reasons) == (action, ['the release is %s' % status])
    assert 'drift' not in result.tracker.diff()['after'] and result.details['drift'] == []


@pytest.mark.parametrize('release, action, fields', [
    (None, 'none', []), ({'status': 'deployed'}, 'uninstall', ['status']), ({'status': 'failed'}, 'uninstall', ['status']),
])
def test_plan_uninstall(release, action, fields):
    result = helm_release.plan_uninstall(release)
    assert (result.action, result.tracker.changed_fields()) == (action, fields)
    assert bool(result.reasons) == (action == 'uninstall')


SECRET = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  labels:\n    helm.sh/chart: app-1.0.0\ndata:\n  p: eA==\n'


def _docs(*texts):
    import yaml
    return [(text, yaml.safe_load(text)) for text in texts]


def test_rendered_files_that_match_need_nothing():
    result = helm_release.plan_rendered({'configmap-cfg.yaml': CM % 1}, _docs(CM % 1))
    assert (result.action, result.reasons, result.details['stale']) == ('none', [], [])
    assert result.details['wanted'] == {'configmap-cfg.yaml': CM % 1} and result.details['chart'] is None


def test_rendered_files_are_written_and_stale_ones_removed_with_secrets_as_fingerprints():
    existing = {'configmap-cfg.yaml': CM % 0, 'service-old.yaml': 'kind: Service\n'}
    result = helm_release.plan_rendered(existing, _docs(CM % 1, SECRET))
    assert result.action == 'write'
    assert result.reasons == ['to write: configmap-cfg.yaml, secret-creds.yaml', 'no longer rendered: service-old.yaml']
    assert result.details['stale'] == ['service-old.yaml'] and result.details['chart'] == 'app-1.0.0'
    diff = result.tracker.diff()
    assert diff['after']['files'] == {'configmap-cfg.yaml': CM % 1, 'secret-creds.yaml': value_hash(SECRET)}
    assert diff['before']['files'] == existing


def test_a_stale_file_alone_is_a_write():
    result = helm_release.plan_rendered({'configmap-cfg.yaml': CM % 1, 'old.yaml': 'x'}, _docs(CM % 1))
    assert (result.action, result.reasons) == ('write', ['no longer rendered: old.yaml'])
