"""The control plane and the registry go away in the middle of helm_release.

- kube-apiserver is killed while an upgrade (wait: true) is under way and started again a few
  seconds later; whatever the interrupted run answered, a re-run converges: one release,
  deployed, with the new values live.
- the registry is stopped before an install: the task fails with an error that says the chart
  could not be pulled from the registry, and no release (not even a failed or pending one) is
  left; with the registry back, a re-run installs cleanly.
"""
import os
import tempfile
import threading
import time

import pytest
import yaml

import _support

NAMESPACE = 'rel-outage'


def _playbook(directory, name, release, message, wait=True, state='present'):
    task = {
        'name': release, 'release_namespace': NAMESPACE, 'create_namespace': True, 'state': state,
        'chart_ref': "oci://{{ lookup('env', 'SANDBOX_REGISTRY') }}/charts/gpu-echo",
        'registry_username': "{{ lookup('env', 'SANDBOX_REGISTRY_USER') }}",
        'registry_password': "{{ lookup('env', 'SANDBOX_REGISTRY_PASSWORD') }}",
        'plain_http': True, 'wait': wait, 'wait_timeout': '120s',
        'values': {'gpu': {'enabled': False}, 'message': message, 'replicaCount': 2},
    }
    if state == 'absent':
        task = {'name': release, 'release_namespace': NAMESPACE, 'state': 'absent', 'wait': True}
    path = os.path.join(directory, name)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'helm_release under outage', 'hosts': 'sandbox', 'gather_facts': False,
                         'tasks': [{'name': 'the release', 'genai.stack.helm_release': task}]}], handle, sort_keys=False)
    return path


def _wait_api(timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _support.kubectl('get', '--raw', '/readyz', check=False).returncode == 0:
            return True
        time.sleep(1)
    return False


def _live_message(release):
    configmaps = _support.kubectl_json('get', 'configmaps', '-n', NAMESPACE, '-l', 'app.kubernetes.io/instance=%s' % release)['items']
    return [cm.get('data', {}) for cm in configmaps]


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix='rel-outage-') as tmp:
        yield tmp
    # Wait: the next test installs into the same namespace, which must not be Terminating.
    _support.kubectl('delete', 'namespace', NAMESPACE, '--ignore-not-found', '--wait=true', '--timeout=180s', check=False)


def test_apiserver_restarted_during_upgrade(workdir):
    release = 'rel-apiserver'
    try:
        install = _support.run_playbook(_playbook(workdir, 'install.yml', release, 'first'))
        assert install.returncode == 0, install
        upgrade_path = _playbook(workdir, 'upgrade.yml', release, 'second')

        # Kill kube-apiserver at the upgrade's first write, start it again 3 s later.
        restarted = {}

        def outage():
            start = _support.mark()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if any(w['resource'] != 'namespaces' for w in _support.kube_writes(start)):
                    restarted['killed_pid'] = _support.stop_component_process('kube-apiserver')
                    time.sleep(3)
                    _support.start_kube()
                    restarted['ready'] = _wait_api()
                    return
                time.sleep(0.05)

        thread = threading.Thread(target=outage, daemon=True)
        thread.start()
        interrupted = _support.run_playbook(upgrade_path)
        thread.join(timeout=400)
        assert restarted.get('killed_pid'), 'the upgrade made no write: %r' % interrupted
        assert restarted.get('ready'), 'kube-apiserver did not come back'

        rerun = _support.run_playbook(upgrade_path)
        assert rerun.returncode == 0, rerun
        releases = _support.helm_releases(NAMESPACE)
        assert [(r['name'], r['status']) for r in releases] == [(release, 'deployed')], releases
        history = sorted(_support.helm_history(release, NAMESPACE), key=lambda h: int(h['revision']))
        # The whole history, compactly (the default repr truncates the revision at fault).
        compact = [(h.get('revision'), h.get('status'), h.get('description')) for h in history]
        assert history[-1]['status'] == 'deployed', compact
        assert [h['status'] for h in history].count('deployed') == 1, compact
        # When the outage cut helm off before it recorded the upgrade's outcome, that revision stays
        # pending-upgrade in the history: helm's rollback (the module's recovery) supersedes only
        # deployed revisions, never the interrupted one. Allowed only when a later revision is
        # helm's rollback past it; any other state is a recovery that did not happen.
        for index, entry in enumerate(history):
            if entry['status'] in ('deployed', 'superseded', 'failed'):
                continue
            assert entry['status'] == 'pending-upgrade', compact
            assert any(str(later.get('description', '')).startswith('Rollback to') for later in history[index + 1:]), compact
        assert any('second' in str(data) for data in _live_message(release)), _live_message(release)
        again = _support.run_playbook(upgrade_path)
        assert again.returncode == 0 and again.changed == 0, again
        _support.record('outages', apiserver_restart={'interrupted_rc': interrupted.returncode, 'rerun_rc': rerun.returncode,
                                                      'revisions': len(_support.helm_history(release, NAMESPACE))})
    finally:
        if not _support.component_running('kube-apiserver'):
            _support.start_kube()
            _wait_api()
        _support.run_playbook(_playbook(workdir, 'down.yml', release, '', state='absent'))


def test_registry_stopped_during_install(workdir):
    release = 'rel-registry'
    path = _playbook(workdir, 'install.yml', release, 'registry')
    try:
        _support.stop_component_process('registry')
        failed = _support.run_playbook(path)
        assert failed.returncode != 0, failed
        text = failed.output.lower()
        # A clear error: it names the chart or the registry and says why.
        assert os.environ['SANDBOX_REGISTRY'].split(':')[0] in failed.output or 'registry' in text, failed
        assert 'connection refused' in text or 'failed to' in text or 'could not' in text, failed
        assert 'chart_ref: ' in failed.output, failed  # the module names the option whose registry is down
        assert os.environ['SANDBOX_REGISTRY_PASSWORD'] not in failed.output
        releases = _support.helm_releases(NAMESPACE) if _support.kubectl('get', 'ns', NAMESPACE, check=False).returncode == 0 else []
        assert releases == [], releases
        assert not [w for w in failed.activity.writes if w['resource'] != 'namespaces'], failed.activity.writes

        _support.start_registry()
        rerun = _support.run_playbook(path)
        assert rerun.returncode == 0, rerun
        releases = _support.helm_releases(NAMESPACE)
        assert [(r['name'], r['status'], str(r['revision'])) for r in releases] == [(release, 'deployed', '1')], releases
        _support.record('outages', registry_stopped={'error_excerpt': [l for l in failed.output.splitlines() if 'msg' in l][:2]})
    finally:
        if not _support.component_running('registry'):
            _support.start_registry()
        _support.run_playbook(_playbook(workdir, 'down.yml', release, '', state='absent'))
