"""Read AWS state straight from the API (boto3), as a second route for integration tests.

  aws_state.py nodegroup CLUSTER NAME [TEMPLATE]
                                           node group, its launch template versions and its ASG; without
                                           a node group the template is still looked up by name
                                           (TEMPLATE, default CLUSTER-NAME)
  aws_state.py updates CLUSTER NAME        the node group's EKS updates: id, type, status, params
  aws_state.py leftovers CLUSTER NAME [--template T] [--prefix P] [--role R --policy N]
                                           what of a node group is still there: node group, launch
                                           template by name, ASGs tagged with it, scaling policies and
                                           alarms named P* (default CLUSTER-NAME-), the inline policy
  aws_state.py ssm-parameter NAME          the value of an SSM parameter
  aws_state.py faults JSON                 queue sandbox faults (POST /_sandbox/faults), JSON list
  aws_state.py clear-faults                clear queued faults
  aws_state.py role-policy ROLE NAME       an inline policy of an IAM role ({"document": null} when absent)
Prints JSON; a missing node group prints {"nodegroup": null, "launch_template": ...}.
"""
import argparse
import json
import os
import sys
import urllib.parse
import urllib.request

import boto3
import botocore


def _not_found(exc):
    code = exc.response.get('Error', {}).get('Code') or ''
    return 'NotFound' in code or code == 'NoSuchEntity'


def _template_versions(template_id, in_use=None):
    versions = boto3.client('ec2').describe_launch_template_versions(LaunchTemplateId=template_id)['LaunchTemplateVersions']
    return {
        'id': template_id,
        'versions': sorted(v['VersionNumber'] for v in versions),
        'in_use': next((v['LaunchTemplateData'] for v in versions if str(v['VersionNumber']) == str(in_use)), None),
    }


def template_by_name(name):
    """The launch template named NAME with its versions, or None."""
    try:
        found = boto3.client('ec2').describe_launch_templates(LaunchTemplateNames=[name])['LaunchTemplates']
    except botocore.exceptions.ClientError as exc:
        if _not_found(exc):
            return None
        raise
    return _template_versions(found[0]['LaunchTemplateId']) if found else None


def nodegroup(cluster, name, template_name=None):
    eks = boto3.client('eks')
    try:
        group = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)['nodegroup']
    except botocore.exceptions.ClientError as exc:
        if exc.response['Error']['Code'] != 'ResourceNotFoundException':
            raise
        # No node group: its launch template may still be there (a teardown that stopped half way).
        return {'nodegroup': None, 'launch_template': template_by_name(template_name or '%s-%s' % (cluster, name)), 'autoscaling_group': None}
    out = {'nodegroup': group, 'launch_template': None, 'autoscaling_group': None}
    template = group.get('launchTemplate') or {}
    if template.get('id'):
        out['launch_template'] = _template_versions(template['id'], template.get('version'))
    asgs = (group.get('resources') or {}).get('autoScalingGroups') or []
    if asgs:
        found = boto3.client('autoscaling').describe_auto_scaling_groups(AutoScalingGroupNames=[asgs[0]['name']])['AutoScalingGroups']
        out['autoscaling_group'] = found[0] if found else None
    return out


def updates(cluster, name):
    eks = boto3.client('eks')
    out = []
    for update_id in eks.list_updates(name=cluster, nodegroupName=name)['updateIds']:
        update = eks.describe_update(name=cluster, nodegroupName=name, updateId=update_id)['update']
        out.append({'id': update['id'], 'type': update.get('type'), 'status': update.get('status'),
                    'params': {p['type']: p['value'] for p in update.get('params') or []}})
    return out


def _tagged_groups(cluster, name):
    """Auto Scaling groups EKS tags with the node group (eks:cluster-name and eks:nodegroup-name)."""
    paginator = boto3.client('autoscaling').get_paginator('describe_auto_scaling_groups')
    names = []
    for page in paginator.paginate(Filters=[{'Name': 'tag:eks:nodegroup-name', 'Values': [name]}]):
        for group in page['AutoScalingGroups']:
            tags = {t['Key']: t['Value'] for t in group.get('Tags') or []}
            if tags.get('eks:nodegroup-name') == name and tags.get('eks:cluster-name') == cluster:
                names.append(group['AutoScalingGroupName'])
    return sorted(names)


def leftovers(cluster, name, template_name=None, prefix=None, role=None, policy=None):
    """Everything of node group NAME that is still in the account; all empty after a clean teardown."""
    prefix = prefix if prefix is not None else '%s-%s-' % (cluster, name)
    state = nodegroup(cluster, name, template_name)
    policies = []
    for page in boto3.client('autoscaling').get_paginator('describe_policies').paginate():
        policies.extend('%s/%s' % (p['AutoScalingGroupName'], p['PolicyName']) for p in page['ScalingPolicies'] if p['PolicyName'].startswith(prefix))
    alarms = []
    for page in boto3.client('cloudwatch').get_paginator('describe_alarms').paginate(AlarmNamePrefix=prefix):
        alarms.extend(a['AlarmName'] for a in page['MetricAlarms'])
    out = {
        'nodegroup': (state['nodegroup'] or {}).get('nodegroupArn'),
        'launch_template': (state['launch_template'] or {}).get('id'),
        'autoscaling_groups': _tagged_groups(cluster, name),
        'scaling_policies': sorted(policies),
        'alarms': sorted(alarms),
        'role_policy': None,
    }
    if role and policy:
        out['role_policy'] = policy if role_policy(role, policy)['document'] is not None else None
    return out


def ssm_parameter(name):
    return {'name': name, 'value': boto3.client('ssm').get_parameter(Name=name)['Parameter']['Value']}


def role_policy(role, name):
    try:
        document = boto3.client('iam').get_role_policy(RoleName=role, PolicyName=name)['PolicyDocument']
    except botocore.exceptions.ClientError as exc:
        if exc.response['Error']['Code'] == 'NoSuchEntity':
            return {'document': None}
        raise
    return {'document': json.loads(urllib.parse.unquote(document)) if isinstance(document, str) else document}


def _sandbox(method, body=None):
    request = urllib.request.Request(os.environ['AWS_ENDPOINT_URL'].rstrip('/') + '/_sandbox/faults', method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b'{}')


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    command, args = argv[0], argv[1:]
    if command == 'nodegroup' and len(args) in (2, 3):
        result = nodegroup(*args)
    elif command == 'updates' and len(args) == 2:
        result = updates(*args)
    elif command == 'leftovers':
        parser = argparse.ArgumentParser(prog='aws_state.py leftovers')
        parser.add_argument('cluster')
        parser.add_argument('name')
        parser.add_argument('--template')
        parser.add_argument('--prefix')
        parser.add_argument('--role')
        parser.add_argument('--policy')
        opts = parser.parse_args(args)
        result = leftovers(opts.cluster, opts.name, opts.template, opts.prefix, opts.role, opts.policy)
    elif command == 'ssm-parameter' and len(args) == 1:
        result = ssm_parameter(args[0])
    elif command == 'faults' and len(args) == 1:
        result = [_sandbox('POST', fault) for fault in json.loads(args[0])]
    elif command == 'role-policy' and len(args) == 2:
        result = role_policy(*args)
    elif command == 'clear-faults' and not args:
        result = _sandbox('DELETE')
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
