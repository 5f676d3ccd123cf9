"""Read AWS state straight from the API (boto3), as a second route for integration tests.

  aws_state.py nodegroup CLUSTER NAME      node group, its launch template versions and its ASG
  aws_state.py faults JSON                 queue sandbox faults (POST /_sandbox/faults), JSON list
  aws_state.py clear-faults                clear queued faults
  aws_state.py role-policy ROLE NAME       an inline policy of an IAM role ({"document": null} when absent)
Prints JSON; a missing node group prints {"nodegroup": null}.
"""
import json
import os
import sys
import urllib.parse
import urllib.request

import boto3
import botocore


def nodegroup(cluster, name):
    eks = boto3.client('eks')
    try:
        group = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)['nodegroup']
    except botocore.exceptions.ClientError as exc:
        if exc.response['Error']['Code'] == 'ResourceNotFoundException':
            return {'nodegroup': None}
        raise
    out = {'nodegroup': group, 'launch_template': None, 'autoscaling_group': None}
    template = group.get('launchTemplate') or {}
    if template.get('id'):
        ec2 = boto3.client('ec2')
        versions = ec2.describe_launch_template_versions(LaunchTemplateId=template['id'])['LaunchTemplateVersions']
        out['launch_template'] = {
            'id': template['id'],
            'versions': sorted(v['VersionNumber'] for v in versions),
            'in_use': next((v['LaunchTemplateData'] for v in versions if str(v['VersionNumber']) == str(template.get('version'))), None),
        }
    asgs = (group.get('resources') or {}).get('autoScalingGroups') or []
    if asgs:
        found = boto3.client('autoscaling').describe_auto_scaling_groups(AutoScalingGroupNames=[asgs[0]['name']])['AutoScalingGroups']
        out['autoscaling_group'] = found[0] if found else None
    return out


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
    if argv[0] == 'nodegroup':
        result = nodegroup(argv[1], argv[2])
    elif argv[0] == 'faults':
        result = [_sandbox('POST', fault) for fault in json.loads(argv[1])]
    elif argv[0] == 'role-policy':
        result = role_policy(argv[1], argv[2])
    elif argv[0] == 'clear-faults':
        result = _sandbox('DELETE')
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
