# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

User data for GPU nodes of EKS managed node groups that use a launch template with an AMI id
(EKS then merges nothing: the user data must join the node to the cluster itself):

* AL2023 (`nodeadm`): a MIME multi-part document with a NodeConfig part and a shell part.
* AL2 (`bootstrap.sh`): a MIME multi-part document whose shell part calls /etc/eks/bootstrap.sh.
* Bottlerocket (`bottlerocket`): TOML settings (`[settings.kubernetes]`, its `node-labels` and
  `node-taints` tables), read by Bottlerocket's API at boot.

The two Amazon Linux documents install the CloudWatch agent with the `nvidia_gpu` measurements and
append the dimensions that the GPU scaling alarm's Metrics Insights query filters on (ClusterName,
NodegroupName, NodegroupType). Instance metadata is read with IMDSv2 session tokens only.
Bottlerocket has no shell and no package manager for user data to run, so its nodes get no agent
and publish none of these metrics.

The agent is never a condition of the node joining the cluster: a failed step of its set-up (the
package repository out of reach, IMDS not answering, the agent refusing its configuration) is
written to the console (cloud-init's output, also in /var/log/cloud-init-output.log) and to
AGENT_FAILED_MARKER, and the script goes on. On AL2 bootstrap.sh runs first, so the join does not
even wait for the package manager. On AL2023 nodeadm joins the node after cloud-init's scripts
(nodeadm-run.service is ordered after cloud-final.service, without requiring it to succeed); the
install is bounded by AGENT_INSTALL_TIMEOUT seconds so that an unreachable repository delays the
join by at most that long.

Rendering is deterministic (fixed MIME boundary, sorted keys) so an unchanged input renders the
same bytes and never causes a new launch template version.
"""

from __future__ import annotations

import json

from ansible_collections.genai.stack.plugins.module_utils._gpu import GPU_METRIC_DIMENSIONS, gpu_metric_dimensions

GPU_MEASUREMENTS = ('utilization_gpu', 'utilization_memory', 'memory_total', 'memory_used', 'memory_free', 'power_draw')
CWAGENT_NAMESPACE = 'CWAgent'
BOUNDARY = '==GENAISTACK-BOUNDARY=='
CWAGENT_CONFIG_PATH = '/opt/aws/amazon-cloudwatch-agent/etc/genai-stack-gpu.json'
CWAGENT_CTL = '/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl'
BOOTSTRAP_SH = '/etc/eks/bootstrap.sh'
STATE_DIR = '/var/lib/genai-stack'
AGENT_FAILED_MARKER = STATE_DIR + '/cloudwatch-agent.failed'
AGENT_INSTALL_TIMEOUT = 300

TAINT_EFFECT_TO_KUBELET = {'NO_SCHEDULE': 'NoSchedule', 'NO_EXECUTE': 'NoExecute', 'PREFER_NO_SCHEDULE': 'PreferNoSchedule'}
# TOML basic strings: the characters that must be escaped and their short escapes (other control
# characters take \uXXXX).
_TOML_ESCAPES = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r'}


def cloudwatch_agent_config(cluster_name, nodegroup_name, region, interval=60):
    """The CloudWatch agent configuration (a dict) for GPU metrics of one node group."""
    return {
        'agent': {'metrics_collection_interval': interval, 'region': region, 'run_as_user': 'root'},
        'metrics': {
            'namespace': CWAGENT_NAMESPACE,
            # Only these EC2 keys are allowed in the global append_dimensions.
            'append_dimensions': {
                'AutoScalingGroupName': '${aws:AutoScalingGroupName}',
                'InstanceId': '${aws:InstanceId}',
                'InstanceType': '${aws:InstanceType}',
            },
            'metrics_collected': {
                'nvidia_gpu': {
                    'measurement': list(GPU_MEASUREMENTS),
                    'metrics_collection_interval': interval,
                    'append_dimensions': gpu_metric_dimensions(cluster_name, nodegroup_name),
                },
            },
            # Also publish the per-node-group aggregate the alarm reads, without per-GPU series.
            'aggregation_dimensions': [list(GPU_METRIC_DIMENSIONS)],
        },
    }


def _kubelet_flags(labels, taints):
    flags = []
    if labels:
        flags.append('--node-labels=' + ','.join('%s=%s' % (k, labels[k]) for k in sorted(labels)))
    if taints:
        rendered = []
        for taint in taints:
            value = taint.get('value') or ''
            rendered.append('%s=%s:%s' % (taint['key'], value, TAINT_EFFECT_TO_KUBELET[taint['effect']]))
        flags.append('--register-with-taints=' + ','.join(rendered))
    return flags


def _agent_functions(agent_config, package_manager):
    """The shell functions that set the CloudWatch agent up with `agent_config`; each step that
    fails says so and returns 1, never stopping the script."""
    config = json.dumps(agent_config, indent=2, sort_keys=True)
    return [
        '# Instance metadata through IMDSv2 session tokens only (the launch template requires them).',
        'imds_token() {',
        '  curl -sf -X PUT "http://169.254.169.254/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300"',
        '}',
        'imds_get() {',
        '  local token',
        '  token="$(imds_token)" || return 1',
        '  curl -sf -H "X-aws-ec2-metadata-token: ${token}" "http://169.254.169.254/latest/meta-data/$1"',
        '}',
        '',
        '# Runs one step of the agent set-up; on failure says which and why, and returns 1.',
        'agent_step() {',
        '  "$@" && return 0',
        '  local rc=$?',
        '  echo "genai.stack: CloudWatch agent not set up, the node has no GPU metrics: \'$*\' exited ${rc}" >&2',
        '  { mkdir -p %s && echo "$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ) \'$*\' exited ${rc}" > %s; } || true' % (STATE_DIR, AGENT_FAILED_MARKER),
        '  return 1',
        '}',
        'write_agent_config() {',
        '  mkdir -p "$(dirname %s)" || return 1' % CWAGENT_CONFIG_PATH,
        "  cat > %s <<'CWAGENT'" % CWAGENT_CONFIG_PATH,
        config,
        'CWAGENT',
        '}',
        'setup_cloudwatch_agent() {',
        '  local instance_id',
        '  instance_id="$(imds_get instance-id)" || instance_id="(instance id unknown: IMDS did not answer)"',
        '  echo "genai.stack: configuring GPU metrics on ${instance_id}"',
        '  agent_step timeout %d %s install -y amazon-cloudwatch-agent || return 1' % (AGENT_INSTALL_TIMEOUT, package_manager),
        '  agent_step write_agent_config || return 1',
        '  agent_step %s -a fetch-config -m ec2 -s -c file:%s || return 1' % (CWAGENT_CTL, CWAGENT_CONFIG_PATH),
        '  echo "genai.stack: CloudWatch agent running with %s"' % CWAGENT_CONFIG_PATH,
        '}',
    ]


def _shell_part(cluster_name, nodegroup_name, region, interval, package_manager, bootstrap_lines):
    """The shell part: the CloudWatch agent's set-up, which may fail without stopping the script,
    and `bootstrap_lines` (AL2's bootstrap.sh call), which run first and must succeed."""
    lines = [
        '#!/bin/bash',
        '# Rendered by genai.stack.eks_gpu_nodegroup: CloudWatch agent with NVIDIA GPU metrics.',
        '# The node joins the cluster whether or not the agent can be set up: a failed step is',
        '# written to the console and to %s, and the script goes on.' % AGENT_FAILED_MARKER,
        'set -euo pipefail',
        '',
    ]
    lines.extend(_agent_functions(cloudwatch_agent_config(cluster_name, nodegroup_name, region, interval), package_manager))
    if bootstrap_lines:
        lines.append('')
        lines.append('# Join the cluster first: the node must not wait for, or depend on, the package repository.')
        lines.extend(line for line in bootstrap_lines if line)
    lines.extend([
        '',
        'setup_cloudwatch_agent || echo "genai.stack: continuing without the CloudWatch agent (see %s)" >&2' % AGENT_FAILED_MARKER,
    ])
    return '\n'.join(lines) + '\n'


def _mime(parts):
    out = ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="%s"' % BOUNDARY, '']
    for content_type, body in parts:
        out.extend(['--' + BOUNDARY, 'Content-Type: %s; charset="us-ascii"' % content_type, '', body.rstrip('\n'), ''])
    out.append('--%s--' % BOUNDARY)
    return '\n'.join(out) + '\n'


def render_nodeadm(cluster, nodegroup_name, region, labels, taints, interval=60):
    """AL2023 user data. `cluster` is describe_cluster()['cluster']."""
    flags = _kubelet_flags(labels, taints)
    node_config = [
        '---',
        'apiVersion: node.eks.aws/v1alpha1',
        'kind: NodeConfig',
        'spec:',
        '  cluster:',
        '    name: %s' % cluster['name'],
        '    apiServerEndpoint: %s' % cluster['endpoint'],
        '    certificateAuthority: %s' % cluster['certificateAuthority']['data'],
        '    cidr: %s' % cluster['serviceIpv4Cidr'],
    ]
    if flags:
        node_config.append('  kubelet:')
        node_config.append('    flags:')
        node_config.extend('      - "%s"' % flag for flag in flags)
    shell = _shell_part(cluster['name'], nodegroup_name, region, interval, 'dnf', [])
    return _mime([('application/node.eks.aws', '\n'.join(node_config) + '\n'), ('text/x-shellscript', shell)])


def render_bootstrap(cluster, nodegroup_name, region, labels, taints, interval=60):
    """AL2 user data calling /etc/eks/bootstrap.sh."""
    flags = _kubelet_flags(labels, taints)
    bootstrap = [
        '%s %s \\' % (BOOTSTRAP_SH, cluster['name']),
        '  --b64-cluster-ca %s \\' % cluster['certificateAuthority']['data'],
        '  --apiserver-endpoint %s \\' % cluster['endpoint'],
        '  --dns-cluster-ip %s%s' % (dns_cluster_ip(cluster['serviceIpv4Cidr']), ' \\' if flags else ''),
    ]
    if flags:
        bootstrap.append("  --kubelet-extra-args '%s'" % ' '.join(flags))
    shell = _shell_part(cluster['name'], nodegroup_name, region, interval, 'yum', bootstrap)
    return _mime([('text/x-shellscript', shell)])


def dns_cluster_ip(service_cidr):
    """EKS's cluster DNS address: the .10 of the service CIDR."""
    base = service_cidr.split('/', 1)[0].split('.')
    return '.'.join(base[:3] + ['10'])


def cluster_facts(described):
    """What user data needs of describe_cluster()['cluster'], in the shape the renderers take."""
    network = described.get('kubernetesNetworkConfig') or {}
    return {
        'name': described['name'],
        'endpoint': described.get('endpoint') or '',
        'certificateAuthority': {'data': (described.get('certificateAuthority') or {}).get('data') or ''},
        # EKS always reports it; the fallback is EKS's default for 10.x VPCs.
        'serviceIpv4Cidr': network.get('serviceIpv4Cidr') or described.get('serviceIpv4Cidr') or '172.20.0.0/16',
    }


def toml_string(text):
    """`text` as a TOML basic string: in double quotes, with the characters TOML does not allow
    there (the quote, the backslash, control characters) escaped."""
    out = []
    for char in str(text):
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7f:
            out.append('\\u%04X' % ord(char))
        else:
            out.append(char)
    return '"%s"' % ''.join(out)


def _bottlerocket_taints(taints):
    """Bottlerocket's node-taints: each key to its sorted list of "value:Effect" entries."""
    by_key = {}
    for taint in taints or []:
        by_key.setdefault(taint['key'], []).append('%s:%s' % (taint.get('value') or '', TAINT_EFFECT_TO_KUBELET[taint['effect']]))
    return {key: sorted(set(entries)) for key, entries in by_key.items()}


def render_bottlerocket(cluster, labels, taints):
    """Bottlerocket user data: the TOML settings that join the node to the cluster, with its labels
    and taints (registered by the kubelet, as --node-labels and --register-with-taints do)."""
    lines = [
        '# Rendered by genai.stack.eks_gpu_nodegroup: Bottlerocket settings.',
        '[settings.kubernetes]',
        'api-server = %s' % toml_string(cluster['endpoint']),
        'cluster-certificate = %s' % toml_string(cluster['certificateAuthority']['data']),
        'cluster-dns-ip = %s' % toml_string(dns_cluster_ip(cluster['serviceIpv4Cidr'])),
        'cluster-name = %s' % toml_string(cluster['name']),
    ]
    if labels:
        lines.extend(['', '[settings.kubernetes.node-labels]'])
        lines.extend('%s = %s' % (toml_string(key), toml_string(labels[key])) for key in sorted(labels))
    entries = _bottlerocket_taints(taints)
    if entries:
        lines.extend(['', '[settings.kubernetes.node-taints]'])
        lines.extend('%s = [%s]' % (toml_string(key), ', '.join(toml_string(e) for e in entries[key])) for key in sorted(entries))
    return '\n'.join(lines) + '\n'


def render(flavour, cluster, nodegroup_name, region, labels, taints, interval=60):
    """Render user data; `cluster` is describe_cluster()['cluster'] or cluster_facts() of it.
    `nodegroup_name`, `region` and `interval` configure the CloudWatch agent, which only the
    Amazon Linux flavours install."""
    facts = cluster_facts(cluster)
    if flavour == 'bottlerocket':
        return render_bottlerocket(facts, labels, taints)
    renderer = render_nodeadm if flavour == 'nodeadm' else render_bootstrap
    return renderer(facts, nodegroup_name, region, labels, taints, interval)
