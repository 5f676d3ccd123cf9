"""Say what a running sandbox holds beyond its seed (`sandboxctl reset` prints it before it resets).

One line per kind of thing that a demo, a test or an interrupted run leaves behind: Helm
releases, namespaces, EKS node groups and launch templates, metric alarms, databases, queued
faults. Read-only. Run with the virtualenv's Python and the sandbox's env exported; a part that
cannot be read is reported as such, never as empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

SEEDED_NAMESPACES = {'default', 'kube-system', 'kube-public', 'kube-node-lease'}
SEEDED_DATABASES = {'postgres', 'template0', 'template1'}


def _kubectl_items(*args):
    out = subprocess.run([os.environ.get('KUBECTL_BIN', 'kubectl'), 'get', *args, '-o', 'json', '--request-timeout=10s'],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return json.loads(out)['items']


def helm_releases():
    return sorted({'%s/%s' % (s['metadata']['namespace'], s['metadata'].get('labels', {}).get('name', '?'))
                   for s in _kubectl_items('secrets', '-A', '-l', 'owner=helm')})


def namespaces():
    return sorted({n['metadata']['name'] for n in _kubectl_items('namespaces')} - SEEDED_NAMESPACES)


def aws_extras():
    import boto3  # pylint: disable=import-outside-toplevel
    eks = boto3.client('eks')
    groups = ['%s/%s' % (cluster, group) for cluster in eks.list_clusters()['clusters']
              for group in eks.list_nodegroups(clusterName=cluster)['nodegroups'] if group != '%s-cpu' % cluster]
    templates = [t['LaunchTemplateName'] for t in boto3.client('ec2').describe_launch_templates()['LaunchTemplates']
                 if not t['LaunchTemplateName'].startswith('eks-')]
    alarms = [a['AlarmName'] for a in boto3.client('cloudwatch').describe_alarms()['MetricAlarms']]
    return groups, templates, alarms


def databases():
    psql = os.path.join(os.environ.get('SANDBOX_POSTGRES_BIN', ''), 'psql')
    out = subprocess.run([psql, '-X', '-w', '-A', '-t', '-c', 'SELECT datname FROM pg_database'], capture_output=True, text=True,
                         timeout=30, check=True, env=dict(os.environ, PGCONNECT_TIMEOUT='5')).stdout
    return sorted(set(out.split()) - SEEDED_DATABASES)


def faults():
    with urllib.request.urlopen(os.environ['AWS_ENDPOINT_URL'].rstrip('/') + '/_sandbox/faults', timeout=10) as response:
        return json.loads(response.read() or b'{}').get('faults', [])


def _line(what, reader):
    try:
        found = reader()
    except Exception as exc:  # pylint: disable=broad-except
        return 'sandbox:   %s: could not be read (%s)' % (what, str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
    shown = ', '.join(str(x) for x in found[:8]) + (', ...' if len(found) > 8 else '')
    return 'sandbox:   %s: %d%s' % (what, len(found), ' (%s)' % shown if found else '')


def main():
    print('sandbox: it holds, beyond its seed:')
    groups = {}

    def aws(index):
        if 'value' not in groups:
            groups['value'] = aws_extras()
        return groups['value'][index]

    for what, reader in (('Helm releases', helm_releases), ('namespaces', namespaces),
                         ('EKS node groups', lambda: aws(0)), ('launch templates', lambda: aws(1)),
                         ('metric alarms', lambda: aws(2)), ('databases', databases), ('queued AWS faults', faults)):
        print(_line(what, reader))
    return 0


if __name__ == '__main__':
    sys.exit(main())
