"""The control plane and the registry go away in the middle of helm_release.

- kube-apiserver is killed while helm is provably in the middle of an upgrade (wait: true):
  kube-scheduler is paused first, so the upgrade's new pods are never placed and helm, once it
  has written the Deployment (the last object it applies, seen in the audit log), waits for
  them; the apiserver is killed at that write, while helm still runs, and stays down until helm
  has given up (its wait_timeout). helm can record no outcome: the run fails, and once the
  apiserver is back the upgrade's revision is still pending-upgrade, the proof that the outage
  interrupted helm. A re-run then recovers through the module's rollback from pending-upgrade
  and converges: one release, deployed, with the new values live; a further run changes nothing.
- the registry is stopped before an install (not in the middle of the chart pull: the pull of a
  small chart takes milliseconds and the module logs in and renders before it installs, so no
  reliable point inside it can be observed from outside): the task fails with an error that says
  the chart could not be pulled from the registry, and no release (not even a failed or pending
  one) is left; with the registry back, a re-run installs cleanly.

Waits are those of an idle machine times GENAI_TEST_SLOWDOWN (tests/tools/slowdown.py).
"""
import os
import tempfile
import threading
import time

import pytest
import yaml

import _support
from _support import scaled

NAMESPACE = 'rel-outage'
# How long helm waits for the upgrade's pods, which is how long the apiserver stays down: it is
# killed as soon as the audit log shows the Deployment written (helm's wait starts there) and
# started again once helm has given up. It must outlast that audit-log poll, slower under load;
# a longer outage only costs time (past the node monitor grace period, also the pod restart below).
UPGRADE_WAIT = int(scaled(8))


def _playbook(directory, name, release, message, wait=True, state='present', wait_timeout=120):
    task = {
        'name': release, 'release_namespace': NAMESPACE, 'create_namespace': True, 'state': state,
        'chart_ref': "oci://{{ lookup('env', 'SANDBOX_REGISTRY') }}/charts/gpu-echo",
        'registry_username': "{{ lookup('env', 'SANDBOX_REGISTRY_USER') }}",
        'registry_password': "{{ lookup('env', 'SANDBOX_REGISTRY_PASSWORD') }}",
        'plain_http': True, 'wait': wait, 'wait_timeout': '%ds' % wait_timeout,
        'values': {'gpu': {'enabled': False}, 'message': message, 'replicaCount': 2},
    }
    if state == 'absent':
        task = {'name': release, 'release_namespace': NAMESPACE, 'state': 'absent', 'wait': True}
    path = os.path.join(directory, name)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'helm_release under outage', 'hosts': 'sandbox', 'gather_facts': False,
                         'tasks': [{'name': 'the release', 'genai.stack.helm_release': task}]}], handle, sort_keys=False)
    return path


def _poll(predicate, seconds, interval=0.2):
    """True as soon as `predicate` holds, False when `seconds` (already scaled) are over."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def _api_ready():
    return _support.kubectl('get', '--raw', '/readyz', check=False).returncode == 0


def _live_message(release):
    configmaps = _support.kubectl_json('get', 'configmaps', '-n', NAMESPACE, '-l', 'app.kubernetes.io/instance=%s' % release)['items']
    return [cm.get('data', {}) for cm in configmaps]


def _helm_processes(verb, release):
    """Pids of running `helm <verb> <release> ...` processes (the module's child), from /proc."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv = [a.decode(errors='replace') for a in handle.read().split(b'\0') if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith('helm') and argv[1:3] == [verb, release]:
            found.append(int(entry))
    return found


def _ready(conditions):
    return any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in conditions or [])


def _restart_pods_the_outage_left_not_ready(release):
    """Sandbox fidelity, not the module: an outage longer than the node monitor grace period
    (40 s; under load the restart alone can take that long) has the controller-manager mark
    every Node unknown and its pods not Ready. A kubelet reports its pods Ready again once its
    Node is back; kwok does not, so the re-run's rollback would wait for pods that never become
    Ready. Such pods are deleted and their ReplicaSet starts new ones, which kwok makes Ready.

    The controller-manager may do this only some seconds after the apiserver is back (its
    informers first re-list, then its monitor compares heartbeats it saw before the outage), and
    the Nodes' stored status still says Ready until then. So one look is not enough: this acts
    like the kubelets until the Nodes and the release's pods have stayed Ready for a while."""
    deleted = []
    settle = scaled(20)
    deadline = time.monotonic() + scaled(240)
    quiet_since = None
    while time.monotonic() < deadline:
        nodes = _support.kubectl_json('get', 'nodes')['items']
        pods = _support.kubectl_json('get', 'pods', '-n', NAMESPACE, '-l', 'app.kubernetes.io/instance=%s' % release)['items']
        stale = [p['metadata']['name'] for p in pods
                 if p['spec'].get('nodeName') and p['status'].get('phase') == 'Running' and not _ready(p['status'].get('conditions'))]
        if not all(_ready(n['status'].get('conditions')) for n in nodes):
            quiet_since = None
        elif stale:
            _support.kubectl('delete', 'pods', '-n', NAMESPACE, '--wait=false', *stale)
            deleted.extend(stale)
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return deleted
        time.sleep(1)
    raise AssertionError('the Nodes and the pods of %s were not Ready for %d s in a row after the outage (deleted so far: %s)'
                         % (release, settle, deleted))


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix='rel-outage-') as tmp:
        yield tmp
    # Wait: the next test installs into the same namespace, which must not be Terminating.
    _support.kubectl('delete', 'namespace', NAMESPACE, '--ignore-not-found', '--wait=true',
                     '--timeout=%ds' % scaled(180), check=False)


def test_apiserver_killed_while_helm_waits_for_an_upgrade(workdir):  # pylint: disable=too-many-locals
    release = 'rel-apiserver'
    paused = None
    try:
        install = _support.run_playbook(_playbook(workdir, 'install.yml', release, 'first'))
        assert install.returncode == 0, install
        assert [h['status'] for h in _support.helm_history(release, NAMESPACE)] == ['deployed']
        upgrade_path = _playbook(workdir, 'upgrade.yml', release, 'second', wait_timeout=UPGRADE_WAIT)

        # The scheduler paused, the upgrade's new pods are never placed, so never Ready: helm,
        # once it has applied the objects, stays in its wait until the kill.
        paused = _support.suspend_component('kube-scheduler')
        start = _support.mark()
        upgrade = {}
        thread = threading.Thread(target=lambda: upgrade.setdefault('run', _support.run_playbook(upgrade_path)), daemon=True)
        thread.start()

        # The Deployment is the last object helm applies; its write (audit log) is where helm
        # starts to wait. Kill the apiserver right there.
        def deployment_written():
            return any(w['resource'] == 'deployments' and (w['name'] or '').startswith(release) for w in _support.kube_writes(start))
        seen = _poll(deployment_written, scaled(240), interval=0.05)
        helm_pids = _helm_processes('upgrade', release)
        if seen:
            _support.stop_component_process('kube-apiserver')
        assert seen, 'the upgrade wrote no Deployment: %r' % upgrade.get('run')
        # The kill came first: helm was still running once the apiserver was gone.
        assert helm_pids and any(_support.process_running(pid) for pid in helm_pids), 'helm ended before the apiserver was killed'

        # The apiserver stays down until helm has given up (its wait ran out): it can record nothing.
        assert _poll(lambda: not any(_support.process_running(pid) for pid in helm_pids), scaled(UPGRADE_WAIT + 60)), \
            'helm still runs %s s after the kill' % scaled(UPGRADE_WAIT + 60)
        _support.start_kube()
        assert _poll(_api_ready, scaled(120), interval=1), 'kube-apiserver did not come back'
        _support.resume_component(paused)
        paused = None
        _restart_pods_the_outage_left_not_ready(release)
        thread.join(timeout=scaled(300))
        assert not thread.is_alive(), 'the interrupted upgrade did not end'
        interrupted = upgrade['run']

        # helm's own word: the upgrade failed (its wait ran out against an apiserver that was gone).
        assert interrupted.returncode != 0 and 'UPGRADE FAILED' in interrupted.output, interrupted
        history = sorted(_support.helm_history(release, NAMESPACE), key=lambda h: int(h['revision']))
        compact = [(h.get('revision'), h.get('status'), h.get('description')) for h in history]
        # The interruption happened: helm never recorded the upgrade's outcome.
        assert [(h['revision'], h['status']) for h in history] == [(1, 'deployed'), (2, 'pending-upgrade')], compact

        # The same values, with the usual patience (the control plane is catching up after the outage).
        rerun_path = _playbook(workdir, 'rerun.yml', release, 'second', wait_timeout=int(scaled(120)))
        rerun = _support.run_playbook(rerun_path, env_extra={'ANSIBLE_STDOUT_CALLBACK': 'json'})
        result = rerun.json()['plays'][0]['tasks'][0]['hosts']['sandbox']
        assert rerun.returncode == 0, result
        assert result.get('recovered') == 'rolled back from pending-upgrade to revision 1', result
        assert result.get('changed') is True, result
        releases = _support.helm_releases(NAMESPACE)
        assert [(r['name'], r['status']) for r in releases] == [(release, 'deployed')], releases
        history = sorted(_support.helm_history(release, NAMESPACE), key=lambda h: int(h['revision']))
        compact = [(h.get('revision'), h.get('status'), h.get('description')) for h in history]
        # The interrupted revision stays pending-upgrade (helm's rollback supersedes only deployed
        # revisions); the rollback to 1, then the upgrade the re-run asked for.
        assert [(h['revision'], h['status']) for h in history] == [
            (1, 'superseded'), (2, 'pending-upgrade'), (3, 'superseded'), (4, 'deployed')], compact
        assert str(history[2].get('description', '')).startswith('Rollback to 1'), compact
        assert any('second' in str(data) for data in _live_message(release)), _live_message(release)
        again = _support.run_playbook(rerun_path)
        assert again.returncode == 0 and again.changed == 0, again
        _support.record('outages', apiserver_restart={'interrupted_rc': interrupted.returncode, 'rerun_rc': rerun.returncode,
                                                      'revisions': len(history)})
    finally:
        if paused:
            _support.resume_component(paused)
        if not _support.component_running('kube-apiserver'):
            _support.start_kube()
            _poll(_api_ready, scaled(120), interval=1)
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
