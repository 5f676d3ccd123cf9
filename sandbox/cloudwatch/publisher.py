"""The sandbox's node agents (component 45-alarms): what reaches CloudWatch from the instances
behind the EKS Nodes the node mirror runs, so that the alarms the collection writes get data only
when a real account's would.

For every Node the node mirror made for an EKS node group (its annotation
``sandbox.genai.stack/instance`` says which instance it is, as instance metadata would), at each
collection time of the sandbox CloudWatch clock (sandbox/cloudwatch/clock.py):

- **the CloudWatch agent** its user data starts: the configuration is read from the launch
  template version the node group runs (sandbox/kube/nodeboot.py: agent_config); no agent, no
  GPU metrics. The series, dimensions and aggregations are what that configuration makes the
  agent publish (sandbox/cloudwatch/agent.py), every ``metrics_collection_interval`` seconds.
  The agent signs as the node role: when the role's policies (inline and attached, evaluated by
  sandbox/aws/iam_policy_eval.py) do not allow what the configuration needs
  (cloudwatch:PutMetricData in its namespace, ec2:DescribeTags for AutoScalingGroupName), the
  node publishes nothing, and the log says why once;
- **EC2's own CPUUtilization** (namespace AWS/EC2, per InstanceId and aggregated per
  AutoScalingGroupName), every minute with detailed monitoring on in the launch template, every
  five minutes without, as EC2 publishes it. No permission is involved.

What the GPUs and CPUs do:
- each GPU a running Pod on the Node requests (``nvidia.com/gpu``) is busy at the Pod's annotation
  ``sandbox.genai.stack/gpu-load`` (percent, default 90); the others are idle (0);
- CPU is 2 % on an idle node, plus 15 % per running Pod that holds a GPU (at most 100);
- the load file (``$SANDBOX_DIR/cloudwatch/load.json``, the test hook) overrides both:
  ``{"*" or "<cluster>/<nodegroup>" or "<node name>": {"gpu": percent, "cpu": percent}}``; a
  node's own entry wins over its node group's, which wins over ``*`` (every node); a key an entry
  leaves out keeps the value above.

Datapoints carry the sandbox clock's time, so a test running the clock faster gets minutes of
metrics in seconds. Requests to the emulator are marked internal (not journaled), signed as
``sandbox-agents``; the apiserver is read as the user ``sandbox-agents`` (Nodes and Pods only).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'sandbox', 'kube'))

from sandbox.aws import iam_policy_eval  # noqa: E402
from sandbox.cloudwatch import agent, clock  # noqa: E402
import nodeboot  # noqa: E402  pylint: disable=wrong-import-order
import nodemirror  # noqa: E402  pylint: disable=wrong-import-order

CLIENT_ID = 'sandbox-agents'
INTERNAL_HEADER = 'x-sandbox-internal'
LOAD_ANNOTATION = 'sandbox.genai.stack/gpu-load'
DEFAULT_POD_GPU_LOAD = 90.0
IDLE_CPU, CPU_PER_GPU_POD = 2.0, 15.0
DETAILED, BASIC = 60, 300
# At most this many missed collection times are made up after a pause (a stopped process).
MAX_CATCH_UP = 5
LOG = logging.getLogger('sandbox-agents')


@dataclass
class NodeLoad:
    gpus: list[float]
    cpu: float


def read_load_file(path: str | None) -> dict:
    if not path:
        return {}
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        LOG.error('load file %s is not JSON (%s); ignored', path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def write_load_file(path: str, load: dict) -> None:
    """Replace the load file atomically (tests)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(load, handle)
    os.replace(tmp, path)


def _gpu_request(pod: dict) -> int:
    total = 0
    for container in (pod.get('spec') or {}).get('containers') or []:
        resources = container.get('resources') or {}
        value = (resources.get('limits') or {}).get('nvidia.com/gpu') or (resources.get('requests') or {}).get('nvidia.com/gpu')
        total += int(value or 0)
    return total


def _pod_load(pod: dict) -> float:
    raw = ((pod.get('metadata') or {}).get('annotations') or {}).get(LOAD_ANNOTATION)
    try:
        return float(raw) if raw is not None else DEFAULT_POD_GPU_LOAD
    except ValueError:
        return DEFAULT_POD_GPU_LOAD


def node_load(node_name: str, identity: dict, gpus: int, pods: list[dict], load_file: dict) -> NodeLoad:
    """The GPUs' and the CPU's utilisation of one node from its running Pods and the load file."""
    busy, gpu_pods = [], 0
    for pod in pods:
        if (pod.get('spec') or {}).get('nodeName') != node_name or (pod.get('status') or {}).get('phase') != 'Running':
            continue
        held = _gpu_request(pod)
        if held:
            gpu_pods += 1
            busy += [_pod_load(pod)] * held
    result = NodeLoad(agent.gpu_utilisation(gpus, busy), min(100.0, IDLE_CPU + CPU_PER_GPU_POD * gpu_pods))
    group = '%s/%s' % (identity.get('cluster'), identity.get('nodegroup'))
    for key in ('*', group, node_name):
        entry = load_file.get(key) or {}
        if entry.get('gpu') is not None:
            result.gpus = [max(0.0, min(100.0, float(entry['gpu'])))] * gpus
        if entry.get('cpu') is not None:
            result.cpu = max(0.0, min(100.0, float(entry['cpu'])))
    return result


def due_times(last: float | None, now: float, every: int) -> list[float]:
    """Collection times (multiples of `every`) after `last` up to `now`, at most MAX_CATCH_UP."""
    latest = math.floor(now / every) * every
    if last is None:
        return [float(latest)]
    # The next multiple after `last` (also when the interval changed since, e.g. detailed
    # monitoring switched off: `last` need not be a multiple of the new one).
    first = max((math.floor(last / every) + 1) * every, latest - (MAX_CATCH_UP - 1) * every)
    return [float(t) for t in range(int(first), int(latest) + 1, every)]


def cpu_data(identity: dict, cpu: float) -> list[dict]:
    """EC2's CPUUtilization of one instance (its own series)."""
    return [{'MetricName': 'CPUUtilization', 'Dimensions': [{'Name': 'InstanceId', 'Value': identity['instanceId']}],
             'Value': float(cpu), 'Unit': 'Percent'}]


def group_cpu_data(group: str, values: list[float]) -> list[dict]:
    """EC2's CPUUtilization aggregated over an Auto Scaling group's instances."""
    if not group or not values:
        return []
    return [{'MetricName': 'CPUUtilization', 'Dimensions': [{'Name': 'AutoScalingGroupName', 'Value': group}],
             'StatisticValues': {'SampleCount': float(len(values)), 'Sum': float(sum(values)),
                                 'Minimum': float(min(values)), 'Maximum': float(max(values))},
             'Unit': 'Percent'}]


def missing_permissions(config: dict, documents: list) -> list[str]:
    """The agent's needs (agent.permissions_needed) the node role's policy documents do not allow."""
    context = {'cloudwatch:namespace': agent.namespace(config)}
    return ['%s (%s)' % (action, why) for action, why in agent.permissions_needed(config)
            if iam_policy_eval.evaluate(documents, action, '*', context) != 'Allow']


class Aws:
    """The emulator, as the node agents and EC2 reach it (internal requests, never journaled)."""

    def __init__(self, region: str):
        import boto3.session

        session = boto3.session.Session(aws_access_key_id=CLIENT_ID, aws_secret_access_key=CLIENT_ID, region_name=region)
        self.cloudwatch = session.client('cloudwatch')
        self.ec2 = session.client('ec2')
        self.iam = session.client('iam')
        for client in (self.cloudwatch, self.ec2, self.iam):
            client.meta.events.register('before-sign.*.*', self._mark_internal)
        self._templates: dict[tuple, dict | None] = {}

    @staticmethod
    def _mark_internal(request, **_):
        request.headers[INTERNAL_HEADER] = CLIENT_ID

    def user_data(self, template: dict) -> str | None:
        """The user data of a launch template version; numbered versions never change, so they
        are remembered."""
        key = (template.get('id') or template.get('name'), template.get('version') or '$Default')
        if key in self._templates:
            return self._templates[key]
        args = {'Versions': [key[1]]}
        args.update({'LaunchTemplateId': template['id']} if template.get('id') else {'LaunchTemplateName': template.get('name')})
        try:
            versions = self.ec2.describe_launch_template_versions(**args)['LaunchTemplateVersions']
            data = versions[0]['LaunchTemplateData'].get('UserData') if versions else None
        except Exception:  # noqa: BLE001 - a template the emulator no longer has: no agent
            data = None
        if str(key[1]).isdigit():
            self._templates[key] = data
        return data

    def role_documents(self, role_arn: str) -> list:
        """The identity-based policy documents of a role (inline and attached)."""
        name = role_arn.rsplit('/', 1)[-1]
        documents = []
        for policy in self.iam.list_role_policies(RoleName=name).get('PolicyNames', []):
            documents.append(self.iam.get_role_policy(RoleName=name, PolicyName=policy)['PolicyDocument'])
        for attached in self.iam.list_attached_role_policies(RoleName=name).get('AttachedPolicies', []):
            version = self.iam.get_policy(PolicyArn=attached['PolicyArn'])['Policy']['DefaultVersionId']
            documents.append(self.iam.get_policy_version(PolicyArn=attached['PolicyArn'], VersionId=version)['PolicyVersion']['Document'])
        return [json.loads(d) if isinstance(d, str) else d for d in documents]

    def put(self, namespace: str, data: list[dict], when: float) -> None:
        stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc)
        for start in range(0, len(data), 500):
            chunk = [dict(d, Timestamp=stamp) for d in data[start:start + 500]]
            self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=chunk)


class Kube(nodemirror.Kube):
    def eks_nodes(self) -> list[dict]:
        selector = '%s=eks' % nodemirror.SOURCE_LABEL
        return self._req('GET', '/api/v1/nodes', params={'labelSelector': selector})['items']

    def running_pods(self) -> list[dict]:
        return self._req('GET', '/api/v1/pods', params={'fieldSelector': 'status.phase=Running'})['items']


class Fleet:
    """Several clusters' API servers read as one (a sandbox fleet: one API server per EKS cluster).
    Node names are unique across the fleet (nodemirror derives them from cluster and node group), and
    a pod counts only on its own cluster's Node."""

    def __init__(self, kubes: list):
        self.kubes = kubes

    def eks_nodes(self) -> list[dict]:
        return [node for kube in self.kubes for node in kube.eks_nodes()]

    def running_pods(self) -> list[dict]:
        return [pod for kube in self.kubes for pod in kube.running_pods()]


class Publisher:
    def __init__(self, aws, kube, clock_path: str, load_path: str | None):
        self.aws = aws
        self.kube = kube
        self.clock_path = clock_path
        self.load_path = load_path
        self.last: dict[tuple, float] = {}
        self.said: dict[str, str] = {}

    def say_once(self, node: str, message: str, level=logging.INFO) -> None:
        if self.said.get(node) != message:
            self.said[node] = message
            LOG.log(level, 'node %s: %s', node, message)

    def agent_config(self, node: str, identity: dict, role_documents) -> dict | None:
        """The node's agent configuration when its agent can publish, else None (logged)."""
        template = identity.get('launchTemplate') or {}
        config = nodeboot.agent_config(self.aws.user_data(template)) if template else None
        if not config or not agent.gpu_plugin(config):
            self.say_once(node, 'no CloudWatch agent with GPU metrics in its user data: no GPU metrics')
            return None
        missing = missing_permissions(config, role_documents(identity.get('nodeRole') or ''))
        if missing:
            self.say_once(node, 'the node role %s does not allow %s: its agent publishes nothing'
                          % (identity.get('nodeRole'), '; '.join(missing)), logging.WARNING)
            return None
        self.say_once(node, 'CloudWatch agent publishing to %s every %d s' % (agent.namespace(config), agent.interval(config)))
        return config

    def tick(self) -> int:
        """Publish what is due; returns the number of datapoints written."""
        now = clock.now(self.clock_path)
        load_file = read_load_file(self.load_path)
        pods = self.kube.running_pods()
        roles: dict[str, list] = {}

        def role_documents(arn):
            if arn not in roles:
                try:
                    roles[arn] = self.aws.role_documents(arn) if arn else []
                except Exception:  # noqa: BLE001 - a role that is gone allows nothing
                    roles[arn] = []
            return roles[arn]

        written = 0
        groups: dict[tuple, list[float]] = {}
        for node in self.kube.eks_nodes():
            name = node['metadata']['name']
            identity = json.loads(((node['metadata'].get('annotations') or {}).get(nodemirror.INSTANCE_ANNOTATION)) or '{}')
            if not identity.get('instanceId'):
                continue
            gpus = nodemirror.instance_resources(identity['instanceType'])[2]
            load = node_load(name, identity, gpus, pods, load_file)
            written += self.publish_gpu(name, identity, gpus, load, role_documents, now)
            every = DETAILED if identity.get('detailedMonitoring') else BASIC
            for when in due_times(self.last.get((name, 'cpu')), now, every):
                self.aws.put('AWS/EC2', cpu_data(identity, load.cpu), when)
                groups.setdefault((identity.get('autoScalingGroup'), when), []).append(load.cpu)
                written += 1
                self.last[(name, 'cpu')] = when
        for (group, when), values in sorted(groups.items(), key=lambda item: (str(item[0][0]), item[0][1])):
            data = group_cpu_data(group, values)
            if data:
                self.aws.put('AWS/EC2', data, when)
                written += len(data)
        return written

    def publish_gpu(self, name, identity, gpus, load, role_documents, now) -> int:
        config = self.agent_config(name, identity, role_documents)
        if config is None:
            return 0
        instance = agent.Instance(identity['instanceId'], identity['instanceType'], identity.get('imageId') or '',
                                  name, identity.get('autoScalingGroup') or '', gpus)
        written = 0
        for when in due_times(self.last.get((name, 'gpu')), now, agent.interval(config)):
            data = agent.gpu_series(config, instance, load.gpus)
            if data:
                self.aws.put(agent.namespace(config), data, when)
                written += len(data)
            self.last[(name, 'gpu')] = when
        return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--clock', required=True, help='the clock file (sandbox/cloudwatch/clock.py)')
    parser.add_argument('--kubeconfig', required=True, action='append',
                        help="the sandbox-agents user's kubeconfig; once per cluster of a fleet")
    parser.add_argument('--load', help='the load file (the test hook)')
    parser.add_argument('--interval', type=float, default=10.0,
                        help='wall seconds between two looks at the normal clock speed; a faster clock shortens it '
                             '(twice per 60 s of sandbox time, at least every 0.5 s)')
    parser.add_argument('--once', action='store_true', help='publish what is due once and exit')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    logging.getLogger('botocore').setLevel(logging.WARNING)
    region = os.environ.get('AWS_REGION') or os.environ.get('AWS_DEFAULT_REGION') or 'us-east-2'
    kube = Kube(args.kubeconfig[0]) if len(args.kubeconfig) == 1 else Fleet([Kube(k) for k in args.kubeconfig])
    publisher = Publisher(Aws(region), kube, args.clock, args.load)
    speed = None
    while True:
        started = time.time()
        current = clock.read(args.clock)[2]
        if current != speed:
            LOG.info('clock: publishing on sandbox CloudWatch time, %gx the wall clock', current)
            speed = current
        try:
            publisher.tick()
        except Exception as exc:  # noqa: BLE001 - the emulator or apiserver restarting must not end it
            LOG.warning('publishing failed (%s: %s); trying again', type(exc).__name__, exc)
        if args.once:
            return 0
        interval = max(0.5, min(args.interval, 30.0 / speed))
        while time.time() - started < interval and clock.read(args.clock)[2] == speed:
            time.sleep(0.25)


if __name__ == '__main__':
    sys.exit(main())
