"""The Grafana dashboards shipped with roles/observability: valid JSON, datasources the role
provisions, and only DCGM exporter or other known metric names in the Prometheus queries."""
import glob
import json
import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLE = os.path.join(ROOT, 'roles', 'observability')
DASHBOARDS = sorted(glob.glob(os.path.join(ROLE, 'files', 'dashboards', '*.json')))

# DCGM fields the NVIDIA dcgm-exporter publishes (default and profiling counter sets).
DCGM_METRICS = {
    'DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_MEM_COPY_UTIL', 'DCGM_FI_DEV_ENC_UTIL', 'DCGM_FI_DEV_DEC_UTIL',
    'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_FB_FREE', 'DCGM_FI_DEV_FB_RESERVED', 'DCGM_FI_DEV_POWER_USAGE',
    'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION', 'DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_MEMORY_TEMP', 'DCGM_FI_DEV_SM_CLOCK',
    'DCGM_FI_DEV_MEM_CLOCK', 'DCGM_FI_DEV_XID_ERRORS', 'DCGM_FI_DEV_PCIE_REPLAY_COUNTER',
    'DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL', 'DCGM_FI_DEV_VGPU_LICENSE_STATUS', 'DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS',
    'DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS', 'DCGM_FI_DEV_ROW_REMAP_FAILURE',
    'DCGM_FI_PROF_GR_ENGINE_ACTIVE', 'DCGM_FI_PROF_SM_ACTIVE', 'DCGM_FI_PROF_SM_OCCUPANCY',
    'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE', 'DCGM_FI_PROF_PIPE_FP64_ACTIVE', 'DCGM_FI_PROF_PIPE_FP32_ACTIVE',
    'DCGM_FI_PROF_PIPE_FP16_ACTIVE', 'DCGM_FI_PROF_DRAM_ACTIVE', 'DCGM_FI_PROF_PCIE_TX_BYTES',
    'DCGM_FI_PROF_PCIE_RX_BYTES', 'DCGM_FI_PROF_NVLINK_TX_BYTES', 'DCGM_FI_PROF_NVLINK_RX_BYTES',
}
# Other series the stack scrapes (kube-state-metrics of kube-prometheus-stack).
OTHER_METRICS = {
    'up', 'kube_pod_container_resource_requests', 'kube_node_status_allocatable',
    'kube_pod_container_status_restarts_total',
}
PROMQL_WORDS = {
    'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset',
    'sum', 'avg', 'min', 'max', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
}


def _role_datasources():
    with open(os.path.join(ROLE, 'vars', 'main.yml'), encoding='utf-8') as handle:
        role_vars = yaml.safe_load(handle)
    return {d['uid']: d['type'] for d in role_vars['_observability_datasources']}


def _metric_names(expr):
    """Series names in a PromQL expression (or a Grafana label_values() query)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # string literals
    expr = re.sub(r'\{[^}]*\}', '', expr)                       # label matchers
    expr = re.sub(r'\[[^\]]*\]', '', expr)                      # range selectors
    expr = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', '', expr)
    expr = re.sub(r'\blabel_values\(\s*([A-Za-z_:][\w:]*)\s*,[^)]*\)', r'\1', expr)
    names = set()
    for match in re.finditer(r'[A-Za-z_:][\w:]*', expr):
        word = match.group(0)
        following = expr[match.end():].lstrip()[:1]
        if following == '(' or word in PROMQL_WORDS or word.startswith('$'):
            continue
        if expr[:match.start()].endswith('$'):
            continue
        names.add(word)
    return names


def _panels(dashboard):
    for panel in dashboard['panels']:
        yield panel
        yield from panel.get('panels', [])


def test_there_are_training_and_inference_dashboards():
    names = [os.path.basename(p) for p in DASHBOARDS]
    assert any('training' in n for n in names) and any('inference' in n for n in names), names


def test_metric_name_extraction():
    assert _metric_names('sum by (pod) (rate(DCGM_FI_PROF_NVLINK_TX_BYTES{Hostname=~"$node"}[5m]))') == {'DCGM_FI_PROF_NVLINK_TX_BYTES'}
    assert _metric_names('label_values(DCGM_FI_DEV_GPU_UTIL, Hostname)') == {'DCGM_FI_DEV_GPU_UTIL'}
    assert _metric_names('a / (b + c)') == {'a', 'b', 'c'}


@pytest.mark.parametrize('path', DASHBOARDS, ids=os.path.basename)
def test_dashboard(path):
    with open(path, encoding='utf-8') as handle:
        dashboard = json.load(handle)
    assert dashboard.get('uid') and dashboard.get('title')
    datasources = _role_datasources()
    panels = list(_panels(dashboard))
    assert panels, 'no panels'
    assert len({p['id'] for p in panels}) == len(panels), 'panel ids repeat'
    metrics = set()
    for panel in panels:
        if panel.get('type') == 'row':
            continue
        refs = [panel.get('datasource')] + [t.get('datasource') for t in panel.get('targets', [])]
        assert panel.get('targets'), '%s: no queries' % panel['title']
        for ref in refs:
            assert isinstance(ref, dict), '%s: datasource must be given by uid, got %r' % (panel['title'], ref)
            assert ref.get('uid') in datasources, '%s: datasource %r is not provisioned by the role' % (panel['title'], ref)
            assert ref.get('type') == datasources[ref['uid']], '%s: datasource %r has the wrong type' % (panel['title'], ref)
        for target in panel['targets']:
            if datasources[target['datasource']['uid']] == 'prometheus':
                assert target.get('expr'), '%s: Prometheus query without expr' % panel['title']
                metrics |= _metric_names(target['expr'])
    for variable in dashboard.get('templating', {}).get('list', []):
        if variable.get('type') == 'query':
            assert variable['datasource'].get('uid') in datasources, variable['name']
            query = variable['query']['query'] if isinstance(variable['query'], dict) else variable['query']
            metrics |= _metric_names(query)
    unknown = metrics - DCGM_METRICS - OTHER_METRICS
    assert not unknown, 'unknown metric names: %s' % sorted(unknown)
    assert any(m.startswith('DCGM_FI_') for m in metrics)
