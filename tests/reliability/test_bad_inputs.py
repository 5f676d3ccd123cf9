"""The bad input catalogue (bad_inputs.yml): every case fails, names exactly the option at fault
(read from the failure's structure by _blame.py, compared by equality: a message about
`cluster_name` does not name `name`), and leaves no mutating AWS request and no Kubernetes write
behind.

Modules and the lookup run as one playbook (a task per case, ignore_errors); roles run as one
playbook over one inventory host per case, so a failing role ends only its own host. Results
come from the json stdout callback; AWS requests are attributed to a case by the access key id
each case runs with (the journal records it), Kubernetes writes by the time window of the
case's task (modules) or for the whole batch (roles, which run in parallel).
"""
import copy
import datetime
import json
import os
import tempfile

import boto3
import pytest
import yaml

import _blame
import _support

HERE = os.path.dirname(__file__)
KINDS = {'type', 'range', 'malformed', 'k8s_name', 'secret_format', 'conflict', 'missing_resource'}


def _catalogue():
    with open(os.path.join(HERE, 'bad_inputs.yml'), encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def _case_key(case_id):
    # Access key ids are journaled per request: one per case attributes AWS calls to it.
    return 'BADCASE' + case_id.upper().replace('-', '')


def _module_args(catalogue, case):
    args = copy.deepcopy(catalogue['bases'].get(case['module'], {}))
    for key, value in (case.get('args') or {}).items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return args


def _modules_playbook(catalogue):
    tasks = []
    for case in catalogue['modules']:
        tasks.append({'name': 'case %s' % case['id'], case['module']: _module_args(catalogue, case),
                      'environment': {'AWS_ACCESS_KEY_ID': _case_key(case['id'])}, 'ignore_errors': True})
    for case in catalogue['lookups']:
        tasks.append({'name': 'case %s' % case['id'], 'ansible.builtin.set_fact': {'_bad_input_result': '{{ %s }}' % case['expr']},
                      'environment': {'AWS_ACCESS_KEY_ID': _case_key(case['id'])}, 'ignore_errors': True})
    return [{'name': 'bad input catalogue: modules', 'hosts': 'sandbox', 'gather_facts': False, 'tasks': tasks}]


def _roles_inventory(catalogue):
    hosts = {}
    for case in catalogue['roles']:
        host_vars = {'case_role': case['role'], 'cluster_gpu_cluster_name': 'sandbox',
                     'cluster_gpu_cpu_nodegroup_name': 'sandbox-cpu'}
        host_vars.update(case.get('vars') or {})
        hosts['case-' + case['id']] = host_vars
    return {'all': {'children': {'bad_input_cases': {'hosts': hosts}}}}


ROLES_PLAYBOOK = [{
    'name': 'bad input catalogue: roles', 'hosts': 'bad_input_cases', 'gather_facts': False,
    'environment': {'AWS_ACCESS_KEY_ID': "{{ 'BADCASE' ~ (inventory_hostname | upper | replace('-', '') | replace('CASE', '', 1)) }}"},
    'tasks': [{'name': 'run the role of the case', 'ansible.builtin.include_role': {'name': 'genai.stack.{{ case_role }}'}}],
}]


def _messages(result):
    found = []
    # The text a reader of the report sees; which option a case blames is read by _blame.
    for key in ('msg', 'message', 'stderr'):
        if isinstance(result.get(key), str):
            found.append(result[key])
    for item in result.get('results') or []:
        if isinstance(item, dict) and item.get('failed'):
            found.append(_messages(item))
    if isinstance(result.get('errors'), list):
        found.extend(json.dumps(e) for e in result['errors'])
    return '\n'.join(found)


def _parse_ts(text):
    return datetime.datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()


def _write_yaml(directory, name, data):
    path = os.path.join(directory, name)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(data, handle, sort_keys=False, width=1000)
    return path


def _cleanup():
    """Remove what a case that wrongly succeeded may have created."""
    for call in (lambda: boto3.client('eks').delete_nodegroup(clusterName='sandbox', nodegroupName='rel-bad-ng'),
                 lambda: boto3.client('ec2').delete_launch_template(LaunchTemplateName='sandbox-rel-bad-ng'),
                 lambda: boto3.client('eks').update_nodegroup_config(clusterName='sandbox', nodegroupName='sandbox-cpu',
                                                                     labels={'removeLabels': ['rel-bad']})):
        try:
            call()
        except Exception:  # pylint: disable=broad-except  # nothing to clean up
            pass
    _support.kubectl('delete', 'secret', 'rel-bad-secret', '-n', 'default', '--ignore-not-found', check=False)
    _support.kubectl('delete', 'externalsecret', 'rel-bad-secret', '-n', 'default', '--ignore-not-found', check=False)
    import subprocess
    subprocess.run([os.environ.get('HELM_BIN', 'helm'), 'uninstall', 'rel-bad-release', '-n', 'default'], capture_output=True, check=False)


def _evaluate(case, result, aws_mutating, kube_writes):
    problems = []
    if not result:
        problems.append('no result (the case did not run)')
    elif not result.get('failed'):
        problems.append('did not fail')
    else:
        problem = _blame.blame_problem(case['option'], result)
        if problem:
            problems.append('%s: %s' % (problem, _messages(result)[:400]))
    if aws_mutating:
        problems.append('mutating AWS requests: %s' % aws_mutating)
    if kube_writes:
        problems.append('Kubernetes writes: %s' % kube_writes)
    return problems


def test_bad_input_catalogue():
    catalogue = _catalogue()
    cases = catalogue['modules'] + catalogue['lookups'] + catalogue['roles']
    ids = [c['id'] for c in cases]
    assert len(cases) >= 80, len(cases)
    assert len(set(ids)) == len(ids), 'duplicate case ids'
    assert all(c['kind'] in KINDS for c in cases), [c['id'] for c in cases if c['kind'] not in KINDS]
    assert KINDS == {c['kind'] for c in cases}

    report = {}
    with tempfile.TemporaryDirectory(prefix='bad-inputs-') as tmp:
        try:
            modules_run = _support.run_playbook(_write_yaml(tmp, 'modules.yml', _modules_playbook(catalogue)),
                                                env_extra={'ANSIBLE_STDOUT_CALLBACK': 'json', 'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json'},
                                                separate_stderr=True)
            inventory = _write_yaml(tmp, 'cases.yml', _roles_inventory(catalogue))
            roles_run = _support.run_playbook(_write_yaml(tmp, 'roles.yml', ROLES_PLAYBOOK), '-i', 'inventories/sandbox', '-i', inventory,
                                              env_extra={'ANSIBLE_STDOUT_CALLBACK': 'json', 'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json'},
                                              separate_stderr=True)
        finally:
            _cleanup()

    # Modules and lookups: one task per case, in order.
    tasks = modules_run.json()['plays'][0]['tasks']
    by_name = {t['task']['name']: t for t in tasks}
    for case in catalogue['modules'] + catalogue['lookups']:
        task = by_name.get('case %s' % case['id'])
        result = (task or {}).get('hosts', {}).get('sandbox')
        aws = [r['operation'] for r in modules_run.activity.mutating if r.get('client') == _case_key(case['id'])]
        writes = []
        if task:
            start, end = _parse_ts(task['task']['duration']['start']), _parse_ts(task['task']['duration']['end'])
            writes = [w for w in modules_run.activity.writes if w['ts'] and start <= _parse_ts(w['ts']) <= end + 0.5]
        report[case['id']] = {'case': case, 'problems': _evaluate(case, result, aws, writes), 'named': _blame.named_options(result or {}),
                              'message': _messages(result or {})[:600], 'writes': writes}

    # Roles: the last failed result of each case's host (the one that ended it; earlier ones
    # may be failures a role ignores on purpose, like genai_engine's secret dry run).
    role_results = {}
    for play in roles_run.json()['plays']:
        for task in play['tasks']:
            for host, result in task['hosts'].items():
                if result.get('failed'):
                    role_results[host] = result
    for case in catalogue['roles']:
        host = 'case-' + case['id']
        aws = [r['operation'] for r in roles_run.activity.mutating if r.get('client') == _case_key(case['id'])]
        result = role_results.get(host, {'failed': False})
        report[case['id']] = {'case': case, 'problems': _evaluate(case, result, aws, []), 'named': _blame.named_options(result),
                              'message': _messages(result)[:600]}
    # Writes of a known-bug case are reported with it; any other write fails the catalogue.
    known_writes = [w for v in report.values() if v['case'].get('known_bug') for w in v.get('writes', [])]
    batch_writes = [w for w in roles_run.activity.writes + modules_run.activity.writes if w not in known_writes]
    unattributed_aws = [r for r in modules_run.activity.mutating + roles_run.activity.mutating
                        if not str(r.get('client', '')).startswith('BADCASE')]

    os.makedirs(_support.OUTPUT_DIR, exist_ok=True)
    with open(os.path.join(_support.OUTPUT_DIR, 'bad_inputs.json'), 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=2, default=str)

    failures = {k: v['problems'] for k, v in report.items() if v['problems'] and not v['case'].get('known_bug')}
    fixed = [k for k, v in report.items() if v['case'].get('known_bug') and not v['problems']]
    known = {k: v['problems'] for k, v in report.items() if v['case'].get('known_bug') and v['problems']}
    _support.record('bad_inputs', cases=len(cases), module_cases=len(catalogue['modules']), lookup_cases=len(catalogue['lookups']),
                    role_cases=len(catalogue['roles']), passed=len(cases) - len(failures) - len(known),
                    failing=sorted(failures), known_bugs=sorted(known),
                    kube_writes=len(batch_writes), unattributed_mutating_aws=len(unattributed_aws),
                    seconds=round(modules_run.duration + roles_run.duration))
    assert not batch_writes, batch_writes
    assert not unattributed_aws, unattributed_aws
    assert not failures, json.dumps(failures, indent=1)
    assert not fixed, 'known_bug cases that now pass (remove known_bug): %s' % fixed
    if known:
        pytest.xfail('known bugs: %s' % json.dumps(known, indent=1))
