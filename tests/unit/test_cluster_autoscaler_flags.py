"""The cluster autoscaler's command line, as the role renders it through the real chart, against the autoscaler's own flags.

The sandbox cannot build cluster-autoscaler (the Go module proxy refuses k8s.io/autoscaler/cluster-autoscaler: 403,
docs/stacks/cluster_addons.md "On the sandbox"), so nothing runs it. Instead every `--flag` of the rendered container
command is checked against the flags cluster-autoscaler 1.35.0 (the chart's appVersion) defines, each value against
the kind of value that flag parses (Go durations need a unit, Go booleans are a fixed set, expanders and cloud
providers are lists), and the AWS auto-discovery spec is parsed by the rules of the autoscaler's AWS provider and
matched against the tags EKS (and the sandbox's emulator, which copies it) puts on a managed node group's Auto
Scaling group: the GPU node group's group is found, the CPU node group's and another cluster's are not.

The flags are facts stored in tests/fixtures/cluster_autoscaler/flags-1.35.0.json with their provenance.
"""
import json
import os
import re

import pytest

from sandbox.aws.patches import ASG_TAGS
from test_real_charts_cluster_addons import rendered

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS_FILE = os.path.join(HERE, '..', 'fixtures', 'cluster_autoscaler', 'flags-1.35.0.json')

with open(FLAGS_FILE, encoding='utf-8') as handle:
    CA = json.load(handle)

GO_BOOLS = {'1', 't', 'T', 'TRUE', 'true', 'True', '0', 'f', 'F', 'FALSE', 'false', 'False'}
GO_DURATION = re.compile(r'^[-+]?(0|(([0-9]*\.)?[0-9]+(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$')
DURATION_UNITS = {'ns': 1e-9, 'us': 1e-6, '\u00b5s': 1e-6, '\u03bcs': 1e-6, 'ms': 1e-3, 's': 1, 'm': 60, 'h': 3600}


def all_flags():
    """name -> kind; klog's Go flags are also reachable with - for _ (component-base normalises the names)."""
    flags = dict(CA['flags'])
    flags.update(CA['component_base_flags'])
    for name, kind in CA['klog_flags'].items():
        flags[name] = kind
        flags[name.replace('_', '-')] = kind
    return flags


def seconds(duration):
    """A Go duration string in seconds (only after GO_DURATION accepted it)."""
    total = 0.0
    for number, unit in re.findall(r'([0-9]*\.?[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)', duration):
        total += float(number) * DURATION_UNITS[unit]
    return total


def value_problem(name, kind, value):
    """Why cluster-autoscaler would refuse `value` for flag `name` of kind `kind`, or None."""
    if value is None:
        return None if kind == 'bool' else 'needs a value'
    checks = {
        'bool': lambda v: v in GO_BOOLS,
        'int': lambda v: re.fullmatch(r'[-+]?[0-9]+', v),
        'uint': lambda v: re.fullmatch(r'[0-9]+', v),
        'level': lambda v: re.fullmatch(r'[0-9]+', v),
        'float': lambda v: re.fullmatch(r'[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?', v),
        'duration': GO_DURATION.match,
        'severity': lambda v: v.upper() in CA['values']['stderrthreshold'],
    }
    if kind in checks and not checks[kind](value):
        return 'is not a %s (%s)' % (kind, CA['kinds'][kind])
    if name == 'expander':
        unknown = [e for e in value.split(',') if e not in CA['values']['expander']]
        if unknown:
            return 'names expanders it does not have: %s' % unknown
    if name in ('cloud-provider', 'estimator') and value not in CA['values'][name]:
        return 'is none of %s' % CA['values'][name]
    if name == 'node-group-auto-discovery':
        try:
            asg_discovery_tags(value)
        except ValueError as exc:
            return str(exc)
    return None


def parse_command(command):
    """[(name, value or None)] of a container command (the binary first), as Go's flag parsing reads them."""
    out, args, i = [], command[1:], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith('-'):
            raise ValueError('positional argument %r: cluster-autoscaler takes none' % arg)
        name, eq, value = arg.lstrip('-').partition('=')
        if not eq:
            # `--flag value` for a non-boolean flag; a boolean takes no separate value.
            if all_flags().get(name, 'bool') != 'bool' and i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                value = None
        out.append((name, value))
        i += 1
    return out


def problems(command):
    flags = all_flags()
    found = []
    for name, value in parse_command(command):
        if name not in flags:
            found.append('--%s: cluster-autoscaler %s defines no such flag' % (name, CA['version']))
            continue
        why = value_problem(name, flags[name], value)
        if why:
            found.append('--%s=%s: %s' % (name, value, why))
    return found


def asg_discovery_tags(spec):
    """The tag filter of an AWS auto-discovery spec, by the rules the data file states (aws_auto_discovery)."""
    discoverer, colon, param = spec.partition(':')
    if not colon:
        raise ValueError('not <discoverer>:<key>=<value>')
    if discoverer != 'asg':
        raise ValueError('discoverer %r: the AWS provider knows only asg' % discoverer)
    key, eq, value = param.partition('=')
    if not eq:
        raise ValueError('invalid key=value pair')
    if key != 'tag':
        raise ValueError('parameter %r: the only key is tag' % key)
    if not value:
        raise ValueError('tag value not supplied')
    tags = {}
    for item in value.split(','):
        tag_key, _eq, tag_value = item.partition('=')
        tags[tag_key] = tag_value
    return tags


def discovers(tags, asg_tags):
    """An Auto Scaling group carrying asg_tags is discovered: every key present, every given value equal."""
    return all(k in asg_tags and (v == '' or asg_tags[k] == v) for k, v in tags.items())


def eks_asg_tags(cluster, nodegroup):
    """The tags of a managed node group's Auto Scaling group (EKS's, as the sandbox's emulator copies them)."""
    return {k.format(cluster=cluster, nodegroup=nodegroup): v.format(cluster=cluster, nodegroup=nodegroup) for k, v in ASG_TAGS}


def command(**extra):
    _entry, objects = rendered('cluster_autoscaler', **extra)
    (deployment,) = [o for o in objects if o['kind'] == 'Deployment']
    container = deployment['spec']['template']['spec']['containers'][0]
    return (container.get('command') or []) + (container.get('args') or [])


def flag_values(cmd):
    values = {}
    for name, value in parse_command(cmd):
        values.setdefault(name, []).append(value)
    return values


VARIANTS = [
    {},
    {'cluster_addons_cluster_name': 'arthur', 'cluster_gpu_nodegroup_name': 'gpu-pool'},
    {'cluster_addons_cluster_autoscaler_scale_down_unneeded_time': 1800},
]


@pytest.mark.parametrize('extra', VARIANTS, ids=['defaults', 'named', 'unneeded-1800'])
def test_every_flag_of_the_rendered_command_is_one_cluster_autoscaler_defines_with_a_value_it_accepts(extra):
    cmd = command(**extra)
    assert cmd[0].endswith('cluster-autoscaler')
    assert problems(cmd) == []


def test_the_chart_runs_the_aws_provider_in_the_role_s_namespace():
    values = flag_values(command())
    assert values['cloud-provider'] == ['aws']
    assert values['namespace'] == ['kube-system']


def test_auto_discovery_finds_the_gpu_node_group_s_auto_scaling_group_and_no_other():
    values = flag_values(command(cluster_addons_cluster_name='arthur', cluster_gpu_nodegroup_name='gpu-pool'))
    (spec,) = values['node-group-auto-discovery']
    tags = asg_discovery_tags(spec)
    assert discovers(tags, eks_asg_tags('arthur', 'gpu-pool'))
    assert not discovers(tags, eks_asg_tags('arthur', 'arthur-cpu'))
    assert not discovers(tags, eks_asg_tags('other', 'gpu-pool'))


def test_auto_discovery_on_the_sandbox_inventory_names_finds_the_seeded_cluster_s_gpu_group():
    # The sandbox seeds cluster `sandbox` with CPU node group `sandbox-cpu`; cluster_gpu adds the GPU group.
    values = flag_values(command(cluster_addons_cluster_name='sandbox', cluster_gpu_nodegroup_name='gpu-nodes'))
    tags = asg_discovery_tags(values['node-group-auto-discovery'][0])
    assert discovers(tags, eks_asg_tags('sandbox', 'gpu-nodes'))
    assert not discovers(tags, eks_asg_tags('sandbox', 'sandbox-cpu'))


def test_expander_left_to_its_default_and_balancing_on():
    values = flag_values(command())
    assert 'expander' not in values
    assert CA['defaults']['expander'] in CA['values']['expander']
    assert values['balance-similar-node-groups'] == ['true']


@pytest.mark.parametrize('unneeded', [600, 1800])
def test_scale_down_unneeded_time_is_the_role_s_seconds_as_a_go_duration(unneeded):
    values = flag_values(command(cluster_addons_cluster_autoscaler_scale_down_unneeded_time=unneeded))
    (duration,) = values['scale-down-unneeded-time']
    assert GO_DURATION.match(duration)
    assert seconds(duration) == unneeded


@pytest.mark.parametrize('cmd, expected', [
    (['./cluster-autoscaler', '--scale-down-unneded-time=600s'], 'defines no such flag'),
    (['./cluster-autoscaler', '--scale-down-unneeded-time=600'], 'is not a duration'),
    (['./cluster-autoscaler', '--balance-similar-node-groups=yes'], 'is not a bool'),
    (['./cluster-autoscaler', '--expander=least-waste,cheapest'], "does not have: ['cheapest']"),
    (['./cluster-autoscaler', '--cloud-provider=eks'], 'is none of'),
    (['./cluster-autoscaler', '--node-group-auto-discovery=asg:name=gpu'], 'the only key is tag'),
    (['./cluster-autoscaler', '--node-group-auto-discovery=mig:namePrefix=gpu'], 'knows only asg'),
    (['./cluster-autoscaler', '--node-group-auto-discovery=asg:tag='], 'tag value not supplied'),
    (['./cluster-autoscaler', '--stderrthreshold=debug'], 'is not a severity'),
    (['./cluster-autoscaler', '--v=high'], 'is not a level'),
])
def test_the_check_refuses_what_cluster_autoscaler_would(cmd, expected):
    found = problems(cmd)
    assert len(found) == 1 and expected in found[0], found


def test_the_check_accepts_klog_names_either_way_and_separate_values():
    assert problems(['./ca', '--log_file_max_size=10', '--log-file-max-size', '10', '--logtostderr',
                     '--expander', 'priority,least-waste', '--scale-down-delay-after-add=1h2m0.5s']) == []


def test_the_flag_list_is_the_1_35_list():
    # A few landmarks of 1.35.0 (and none of the flags removed before it), so a truncated or wrong file fails.
    assert CA['version'] == '1.35.0'
    assert len(CA['flags']) == 125
    for name in ('node-group-auto-discovery', 'balance-similar-node-groups', 'scale-down-unneeded-time',
                 'capacity-buffer-controller-enabled', 'enable-dynamic-resource-allocation'):
        assert name in CA['flags']
    assert 'least-nodes' not in CA['values']['expander']
