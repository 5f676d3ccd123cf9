"""docs/benchmarks.md and docs/benchmarks.png from a results file of bench/run.py.

    python bench/report.py [RESULTS.json]     (default: the latest bench/results/*.json)
    python bench/report.py --check            (docs-check: the committed page is what the latest
                                               committed results render to with the current code)

The plot needs matplotlib (bench-only venv, see bench/requirements.txt); without it the
markdown is still written and says the plot was not regenerated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
DOCS = os.path.join(ROOT, 'docs')
STATE = {True: 'met', False: '**missed**', None: 'pending'}
# bench/run.py site_charts()'s labels, in a sentence.
CHART_LABELS = {'real charts': 'the vendors\' real charts', 'stand-in charts only': 'the project\'s stand-in charts only',
                'not recorded': 'charts it did not record'}


def _fmt(value, digits=2):
    if value is None:
        return '–'
    if isinstance(value, float):
        return ('%.' + str(digits) + 'f') % value
    return str(value)


def _sizes_text(sizes):
    sizes = [str(x) for x in sizes]
    return sizes[0] if len(sizes) == 1 else '%s and %s' % (', '.join(sizes[:-1]), sizes[-1])


def _per_cluster(wall, size):
    return wall / int(size) if wall else None


def _fleet_section(fleet, aws_only_1, comparison):
    """Section 4: the fleet, each size in its mode, with the memory columns."""
    sizes = sorted(fleet, key=int)
    kube_max = comparison.get('kube_fleet_max') or 4
    out = ['## 4. Fleet: cluster_gpu over %s clusters (forks = clusters)' % _sizes_text(sizes), '',
           'Inventories `bench/inventories/fleet-<clusters>.yml`, one host per EKS cluster of the sandbox. Two modes '
           '(the `mode` column):', '',
           '- **Kubernetes** (fleets of up to %d clusters): the role as `inventories/sandbox` runs it, its Kubernetes steps on '
           '(`cluster_gpu_kubernetes_enabled`, `cluster_gpu_device_plugin_enabled`): each host installs the NVIDIA device '
           'plugin release and waits for its GPU Nodes on its own cluster\'s API server, connected by '
           '`genai_stack_kube: "{{ lookup(\'genai.stack.eks_connection\', inventory_hostname) }}"` alone (KUBECONFIG names '
           'no reachable cluster; the tokens are presigned for the emulator\'s own STS endpoint, `AWS_ENDPOINT_URL_STS`, since the '
           'sandbox\'s token webhook takes no URL of the counting proxy). Kubernetes writes are counted in each cluster\'s own '
           'audit log.' % kube_max,
           '- **AWS only** (larger fleets, or a size with a cluster that has no control plane): the Kubernetes steps off. '
           'The bench asks the sandbox for control planes for the first %d clusters only (`SANDBOX_KUBE_CLUSTERS`): each '
           'kube-apiserver with its controllers takes about half a GB, and 16 of them more memory and CPU than the '
           'benchmark host has.' % kube_max, '',
           'Memory: **peak RSS** is the highest sum, over samples taken every 0.5 s while the run lasts, of the resident '
           'memory of `ansible-playbook` and all its descendants (forks, module processes, helm); a process that lives less '
           'than one interval can be missed. **Control planes** is the resident memory of the sandbox\'s Kubernetes '
           'processes (the shared etcd, and per cluster kube-apiserver, controller-manager, scheduler and kwok, from their '
           'pid files), read once after the first converge of a Kubernetes size: what such a fleet costs the sandbox, not '
           'the collection. Linear growth would multiply wall time by the number of clusters; growth is compared within a '
           'mode.', '']
    rows = [(size, fleet[size]) for size in sizes]
    if aws_only_1:
        rows.insert(0, ('1 (gpu comparison)' if aws_only_1.get('reused_from') else '1', aws_only_1))
    if any(row.get('first', {}).get('peak_tree_rss_mb') is None for _size, row in rows):
        out += ['Sizes with – in the memory columns come from a run made before the harness measured memory (and ran '
                'the Kubernetes mode); the next full run (`make bench`) fills them.', '']
    out += ['| clusters | mode | first converge (s) | s per cluster | AWS requests | Kubernetes writes | peak RSS (MB) '
            '| no-op (s) | s per cluster | AWS requests | Kubernetes writes | peak RSS (MB) | control planes RSS (MB) |',
            '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for size, row in rows:
        f, n = row['first'], row['noop']
        count = size.split()[0]
        planes = row.get('control_planes_rss_mb')
        out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            size, 'Kubernetes' if row.get('mode') == 'kubernetes' else 'AWS only',
            _fmt(f['wall_s']), _fmt(_per_cluster(f['wall_s'], count)), _fmt(f['aws_requests']), _fmt(f.get('kube_writes')),
            _fmt(f.get('peak_tree_rss_mb'), 0),
            _fmt(n['wall_s']), _fmt(_per_cluster(n['wall_s'], count)), _fmt(n['aws_requests']), _fmt(n.get('kube_writes')),
            _fmt(n.get('peak_tree_rss_mb'), 0),
            '%s (%s)' % (_fmt(planes, 0), row.get('control_planes')) if planes is not None else '–'))
    if any(row.get('control_planes_rss_mb') is not None for _size, row in rows):
        out += ['', 'Control planes: total MB (number of control planes running in the sandbox at that moment).']
    out.append('')
    return out


def _ratio_row(name, cell, unit=''):
    return '| %s | %s%s | %s%s | %s |' % (name, _fmt(cell.get('ours')), unit, _fmt(cell.get('upstream', cell.get('manual'))), unit,
                                         _fmt(cell.get('ratio')))


def markdown(results, results_path, plot_ok, candidate=None):
    v = results.get('versions') or {}
    s = results.get('summary') or {}
    t = results.get('targets') or {}
    out = ['# Benchmarks', '',
           '<!-- Generated by bench/report.py; do not edit by hand. -->', '',
           'Results: %s.' % ', '.join('%s from `%s`' % kv for kv in sorted((results.get('sources') or {}).items()))
           if results.get('sources') else 'Results: `%s`.' % os.path.relpath(results_path, ROOT), '',
           '`make bench` (`python bench/run.py`) measures genai.stack against what a user would otherwise use, on '
           'one sandbox in one run. Figures below: run of %s (%s mode, %s sandbox, %s no-op repetition(s), '
           'medians), ansible-core %s (ansible %s), Python %s, %s, %s; collections %s. Host: %s CPUs%s.' % (
               results.get('started'), results.get('mode'), results.get('sandbox'), results.get('repeat'),
               v.get('ansible_core'), v.get('ansible'), v.get('python'), v.get('helm'), v.get('aws_cli'),
               ', '.join('%s %s' % kv for kv in sorted((v.get('collections') or {}).items())), v.get('cpus'),
               ', working tree with uncommitted changes at %s' % v.get('git_commit') if v.get('git_dirty') else ' at %s' % v.get('git_commit')),
           '']
    loads = [r.get('loadavg_1m_before') for r in _walk(results.get('comparisons'))]
    loads = [x for x in loads if x is not None]
    if loads:
        out += ['**Caveat: load.** The 1-minute load average during the runs was %.1f–%.1f on %s CPUs (other sessions '
                'share the machine), so absolute times are inflated several-fold and noisy; ratios come from '
                'interleaved runs of both sides and are the figures to read.' % (min(loads), max(loads), v.get('cpus')), '']
    for note in results.get('notes') or []:
        out += ['**Note on this run.** ' + note, '']
    if plot_ok:
        out += ['![benchmarks](benchmarks.png)', '']
    out += ['## Targets (issue 5)', '', '| target | status | measured |', '|---|---|---|']
    for key, target in t.items():
        measured = target.get('pending') or target.get('invalid') or _measured_text(key, target)
        out.append('| %s | %s | %s |' % (target.get('target_text', key), STATE[target.get('met')], measured))
    out.append('')
    # A missed target is a finding of the run, not a failure of it; it is said in words here so
    # that no reader takes the table's silence for success.
    missed = [target.get('target_text', key) for key, target in t.items() if target.get('met') is False]
    unjudged = [target.get('target_text', key) for key, target in t.items() if target.get('met') is None]
    out += ['Met: %d of %d. Missed: %s. Not judged: %s.' % (
        sum(1 for target in t.values() if target.get('met') is True), len(t),
        '; '.join(missed) if missed else 'none', '; '.join(unjudged) if unjudged else 'none'), '']

    out += _baseline_section(s.get('baseline'))
    gpu = s.get('gpu')
    if gpu:
        out += ['## 1. GPU capacity: role cluster_gpu vs the upstream modules', '',
                '`playbooks/cluster_gpu.yml` against `bench/playbooks/upstream_cluster_gpu.yml` (amazon.aws.ec2_launch_template, '
                'community.aws.eks_nodegroup, community.aws.autoscaling_policy, amazon.aws.cloudwatch_metric_alarm, '
                'amazon.aws.iam_policy, the amazon.aws.ssm_parameter lookup), one cluster each. Both do the AWS work only: the '
                'role\'s Kubernetes steps (device plugin, GPU Node check) are off, as in the role\'s defaults, because the '
                'upstream playbook has no counterpart; section 5 runs the role with them.', '']
        for phase, title in (('first', 'First converge'), ('noop', 'No-op re-run')):
            row = gpu[phase]
            out += ['**%s**' % title, '', '| | ours | upstream | ours/upstream |', '|---|---|---|---|',
                    _ratio_row('wall time (s)', row['wall_s']), _ratio_row('AWS requests', row['aws_requests']),
                    _ratio_row('mutating AWS requests', row['aws_mutating']), _ratio_row('tasks reported changed', row['tasks_changed']),
                    _ratio_row('Kubernetes writes', row['kube_writes']), '']
            if row.get('upstream_changed_tasks') and phase == 'noop':
                out += ['Upstream is not idempotent: on the no-op re-run it reported changed: %s.' %
                        ', '.join('`%s`' % x for x in row['upstream_changed_tasks']), '']
        out += _upstream_notes(results)
    helm = s.get('helm')
    if helm:
        out += ['## 2. Helm: genai.stack.helm_release vs kubernetes.core.helm', '',
                'Fixture chart `gpu-echo` 0.1.0 from the sandbox OCI registry (with login): install, no-op re-run, values upgrade.', '',
                'Wall: the whole ansible-playbook run. Tasks: the time of the play\'s tasks (the modules\' own work: '
                'helm_release on our side, helm_registry_auth + helm upstream), without ansible-playbook\'s start-up, '
                'which is the same for both and for any playbook.', '',
                '| phase | wall ours (s) | wall upstream (s) | ratio | tasks ours (s) | tasks upstream (s) | ratio | writes ours | '
                'writes upstream | new revisions ours | new revisions upstream |',
                '|---|---|---|---|---|---|---|---|---|---|---|']
        for phase in ('install', 'noop', 'upgrade'):
            row = helm[phase]
            tasks = row.get('tasks_s') or {}
            out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                phase, _fmt(row['wall_s']['ours']), _fmt(row['wall_s']['upstream']), _fmt(row['wall_s']['ratio']),
                _fmt(tasks.get('ours')), _fmt(tasks.get('upstream')), _fmt(tasks.get('ratio')),
                _fmt(row['kube_writes']['ours']), _fmt(row['kube_writes']['upstream']),
                _fmt(row['new_revisions']['ours']), _fmt(row['new_revisions']['upstream'])))
        out.append('')
        out += _own_run_line('Helm', results, 'helm')
        out += _prefetch_decision()
    man = s.get('manual')
    if man:
        out += ['## 3. The manual procedure (AWS CLI)', '',
                '`bench/manual/gpu_guide.sh create` (the guide\'s commands, %s) vs cluster_gpu\'s first converge.' % v.get('aws_cli'), '',
                '| | cluster_gpu | AWS CLI script | ratio |', '|---|---|---|---|',
                _ratio_row('wall time (s)', man['wall_s']), _ratio_row('AWS requests', man['aws_requests']),
                _ratio_row('mutating AWS requests', man['aws_mutating']), '',
                'The script is not idempotent: its second run exits %s (create-launch-template refuses an existing name); '
                'a re-run of the procedure is not a thing it can do.' % _fmt(man.get('manual_second_run_rc')), '']
        out += _own_run_line('Manual procedure', results, 'manual')
    fleet = s.get('fleet')
    if fleet:
        out += _fleet_section(fleet, s.get('fleet_aws_only_1'), (results.get('comparisons') or {}).get('fleet') or {})
        out += _own_run_line('Fleet', results, 'fleet')
    site = s.get('site')
    if site:
        out += ['## 5. The whole site', '', 'site.yml imports today: %s.' % ', '.join(site.get('imports') or []), '']
        site_run = _site_run(results)
        if site_run is not results:
            v_site = site_run.get('versions') or {}
            loads = [r.get('loadavg_1m_before') for r in _walk(((site_run.get('comparisons') or {}).get('site')))]
            loads = [x for x in loads if x is not None]
            out += ['Site figures from a run of their own: %s at %s%s, genai.stack %s, 1-minute load %s on %s CPUs.' % (
                site_run.get('started'), v_site.get('git_commit'), ' (working tree with uncommitted changes)' if v_site.get('git_dirty') else '',
                (v_site.get('collections') or {}).get('genai.stack'),
                '%.1f–%.1f' % (min(loads), max(loads)) if loads else 'not recorded', v_site.get('cpus')), '']
        out += _site_charts(site.get('charts') or {}, (results.get('sources') or {}).get('site'))
        out += ['| | wall (s) | AWS requests | mutating | Kubernetes writes | tasks changed |', '|---|---|---|---|---|---|']
        for phase in ('first', 'noop'):
            row = site[phase]
            out.append('| %s | %s | %s | %s | %s | %s |' % ('first converge' if phase == 'first' else 'no-op re-run', _fmt(row['wall_s']),
                                                         _fmt(row['aws_requests']), _fmt(row['aws_mutating']), _fmt(row['kube_writes']),
                                                         _fmt(row['tasks_changed'])))
        out.append('')
        out += _site_other_charts(results, site)
    out += _method(results)
    out += _profile(results)
    out += _proposals(results, candidate)
    return '\n'.join(out) + '\n'


def _release_list(names):
    return ', '.join(names) if names else 'none'


def _site_charts(charts, source):
    """What the site's figures ran on: the vendors' real charts or the stand-ins, as bench/charts.py
    measured it (the mirror's digests, the releases' stored charts), never assumed."""
    if not charts.get('recorded'):
        return ['**Charts: not recorded.** The run these figures come from (%s) did not record which charts it installed%s, so '
                'they are not figures of the vendors\' real charts and are not to be compared with a real-chart run.' % (
                    '`%s`' % source if source else 'this run',
                    ' (%s)' % charts['error'] if charts.get('error') else ' (bench/run.py records them since 2026-12-05)'), '']
    by_source = charts.get('by_source') or {}
    if charts.get('real_charts'):
        head = ('**Charts: the vendors\' real charts**, from the sandbox\'s chart mirror filled from `%s` (%s). '
                'Measured after the first converge: each release\'s stored chart (its description and templates) compared '
                'with the vendor\'s package, the stand-in and the collection\'s own chart of the same name and version, and '
                'the mirror\'s chart digests with the packages\' sha256.' % (charts.get('chart_dir'), charts.get('chart_dir_source')))
    else:
        head = ('**Charts: the project\'s stand-ins only** (chart directory: %s). No release ran a vendor\'s chart, so '
                'these figures are not those of the real charts and are not to be compared with a real-chart run.' % (
                    '`%s`' % charts['chart_dir'] if charts.get('chart_dir') else 'none'))
    out = [head, '',
           '- the vendor\'s package: %s' % _release_list(by_source.get('vendor')),
           '- a stand-in: %s%s' % (_release_list(by_source.get('stand-in')),
                                   ' (charts without a vendor package in the chart directory: %s)' % ', '.join(charts['no_vendor_package'])
                                   if by_source.get('stand-in') and charts.get('no_vendor_package') else ''),
           '- the collection\'s own chart: %s' % _release_list(by_source.get('collection'))]
    if by_source.get('unknown'):
        out.append('- **matching no known chart**: %s' % _release_list(by_source.get('unknown')))
    said = charts.get('summary_standins')
    if said is None:
        out.append('- site.yml\'s stand-in summary did not run')
    else:
        out.append('- site.yml\'s stand-in summary named: %s; the mirror holds as stand-ins: %s (%s)' % (
            _release_list(said), _release_list(charts.get('mirror_standins')),
            'the same' if charts.get('summary_agrees') else '**they differ**'))
    return out + ['']


def _baseline_section(change):
    """The no-ops against an earlier revision's collection (bench/run.py --baseline REV)."""
    if not change:
        return []
    out = ['## No-op re-runs against `%s` (%s)' % (change['ref'], change['commit']), '']
    if change.get('subject'):
        out += ['That revision: "%s".' % change['subject'], '']
    out += [
           'The same no-op re-runs from the collection of that revision (a `git archive` of its plugins, roles and meta), '
           'interleaved with this checkout\'s on the same cluster and release. Tasks: the modules\' own time; slower means '
           'a tasks ratio above %s, or any change reported by the baseline\'s run.' % _fmt(change['slower_above']), '',
           '| no-op | runs (this, baseline) | tasks this (s) | tasks baseline (s) | ratio | wall ratio | AWS requests this / baseline '
           '| slower |', '|---|---|---|---|---|---|---|---|']
    for name, title in (('gpu', 'cluster_gpu (AWS steps)'), ('helm', 'helm_release')):
        row = change.get(name)
        if row:
            out.append('| %s | %d, %d | %s | %s | %s | %s | %s / %s | %s |' % (
                title, row['runs'][0], row['runs'][1], _fmt(row['tasks_s']['ours']), _fmt(row['tasks_s']['baseline']),
                _fmt(row['tasks_s']['ratio']), _fmt(row['wall_s']['ratio']), _fmt(row['aws_requests']['ours']),
                _fmt(row['aws_requests']['baseline']), 'no' if row['not_slower'] else '**yes**'))
    return out + [''] + _other_baselines()


def _other_baselines():
    """Runs of their own against other revisions, kept in bench/results/baseline/ (bench/run.py
    --baseline REV --results-dir bench/results/baseline --no-docs): to tell which change a difference
    above comes from, each compared with the revision just before or after it."""
    import run  # bench/run.py: baseline_change()
    folder = os.path.join(BENCH, 'results', 'baseline')
    names = sorted(f for f in os.listdir(folder) if f.endswith('.json')) if os.path.isdir(folder) else []
    rows = []
    for name in names:
        with open(os.path.join(folder, name), encoding='utf-8') as handle:
            data = json.load(handle)
        if not data.get('baseline'):
            continue
        change = run.baseline_change(data)
        for key, title in (('gpu', 'cluster_gpu (AWS steps)'), ('helm', 'helm_release')):
            row = change.get(key)
            if row:
                rows.append('| %s | `%s`%s | %d, %d | %s | %s | %s | %s | `%s` |' % (
                    title, change['ref'], (' "%s"' % change['subject']) if change.get('subject') else '', row['runs'][0], row['runs'][1],
                    _fmt(row['tasks_s']['ours']), _fmt(row['tasks_s']['baseline']), _fmt(row['tasks_s']['ratio']),
                    'no' if row['not_slower'] else '**yes**', os.path.relpath(os.path.join(folder, name), ROOT)))
    if not rows:
        return []
    return ['Against other revisions, in runs of their own (which change a difference comes from):', '',
            '| no-op | against | runs (this, baseline) | tasks this (s) | tasks baseline (s) | ratio | slower | results |',
            '|---|---|---|---|---|---|---|---|'] + rows + ['']


def _prefetch_decision():
    """helm_release's reads started ahead were weighed by a run before they were removed: that run's
    figures and the decision taken on them."""
    path, data = latest(lambda d: ((d.get('comparisons') or {}).get('helm') or {}).get('ours_no_prefetch'))
    if data is None:
        return []
    import run  # bench/run.py: prefetch_gain()
    gain = run.prefetch_gain(data['comparisons']['helm'])
    if not gain:
        return []
    return ['**Reads started ahead, removed.** helm_release used to start its reads (`helm version`, `helm list`, '
            '`helm status`) side by side before it needed them. `%s` (%s) ran the same no-op task with and without that, '
            'interleaved, %d times each: task median %s s with, %s s without, %.0f%% saved, under the %.0f%% a prefetch '
            'had to save to be kept; it was removed, and each read now runs when it is needed.' % (
                os.path.relpath(path, ROOT), data.get('started'), min(gain['runs']),
                _fmt(gain['with_s']), _fmt(gain['without_s']), 100 * gain['saved_share'], 100 * gain['keep_share']), '']


def _own_run_line(title, results, name):
    """When a comparison's figures come from a run of their own (merged), that run's date, commit and load."""
    run_data = _section_run(results, name)
    if run_data is results:
        return []
    v_run = run_data.get('versions') or {}
    loads = [r.get('loadavg_1m_before') for r in _walk((run_data.get('comparisons') or {}).get(name))]
    loads = [x for x in loads if x is not None]
    return ['%s figures from a run of their own: %s at %s%s, 1-minute load %s on %s CPUs.' % (
        title, run_data.get('started'), v_run.get('git_commit'),
        ' (working tree with uncommitted changes)' if v_run.get('git_dirty') else '',
        '%.1f–%.1f' % (min(loads), max(loads)) if loads else 'not recorded', v_run.get('cpus')), '']


def _site_run(results):
    """The results file the site figures come from (the merged results themselves when they are its own)."""
    return _section_run(results, 'site')


def _section_run(results, name):
    """The results file a comparison's figures come from (the merged results themselves when they are its own)."""
    source = (results.get('sources') or {}).get(name)
    if not source or not os.path.exists(os.path.join(ROOT, source)):
        return results
    with open(os.path.join(ROOT, source), encoding='utf-8') as handle:
        data = json.load(handle)
    return results if data.get('started') == results.get('started') else data


def _site_other_charts(results, site):
    """The previous full site run on other charts, labelled as such: shown for what the charts
    change, never as a like-for-like comparison."""
    label = (site.get('charts') or {}).get('label')

    def other(data):
        import run  # bench/run.py: site_charts()
        comp = (data.get('comparisons') or {}).get('site') or {}
        return comp.get('first') and comp.get('noop') and run.site_charts(comp.get('charts')).get('label') != label
    path, data = _earlier_run(_site_run(results), other)
    if data is None:
        return []
    import run  # bench/run.py: site_charts()
    comp = data['comparisons']['site']
    return ['Not like for like, for what the charts change: the previous full run with site figures (`%s`, %s) ran on %s: '
            'first converge %s s, %s Kubernetes writes, %s tasks changed; no-op re-run %s s, %s writes. Its site.yml imported %s.' % (
                path, data.get('started'), CHART_LABELS.get(run.site_charts(comp.get('charts'))['label'], 'charts of unknown kind'),
                _fmt(comp['first'].get('wall_s')), _fmt(comp['first'].get('kube_writes')), _fmt(comp['first'].get('tasks_changed')),
                _fmt(comp['noop'].get('wall_s')), _fmt(comp['noop'].get('kube_writes')), ', '.join(comp.get('imports') or [])), '']


def _measured_text(key, target):
    if key == 'noop_zero_mutations':
        text = 'cluster_gpu no-op: %s mutating, %s writes' % (target['measured']['aws_mutating'], target['measured']['kube_writes'])
        if target.get('site'):
            text += '; site.yml no-op: %s mutating, %s writes' % (target['site']['aws_mutating'], target['site']['kube_writes'])
        return text
    if key == 'helm_noop_time_half_upstream' and target.get('measured_tasks') is not None:
        text = 'tasks: %s (%s s vs %s s); whole playbook: %s (%s s vs %s s)' % (
            _fmt(target.get('measured_tasks')), _fmt(target.get('ours_tasks_s')), _fmt(target.get('upstream_tasks_s')),
            _fmt(target.get('measured')), _fmt(target.get('ours_s')), _fmt(target.get('upstream_s')))
        if target.get('floor_s') is not None:
            text += '; a one-task ping playbook: %s s' % _fmt(target['floor_s'])
        return text
    if key in ('noop_time_half_upstream', 'helm_noop_time_half_upstream'):
        return '%s (%s s vs %s s)' % (_fmt(target.get('measured')), _fmt(target.get('ours_s')), _fmt(target.get('upstream_s')))
    if key == 'noop_reads_near_minimum':
        return '%s requests vs minimum %s (limit %s; %sx)' % (target.get('measured'), target.get('minimum_managed'),
                                                           _fmt(target.get('limit'), 1), _fmt(target.get('ratio')))
    if key == 'helm_noop_no_revision':
        return 'new revisions per no-op: %s' % target.get('measured')
    if key == 'fleet_sublinear':
        parts = []
        for mode, phases in sorted((target.get('measured') or {}).items()):
            for phase, g in phases.items():
                parts.append('%s %s: %sx clusters -> %sx wall' % ('Kubernetes' if mode == 'kubernetes' else 'AWS only', phase,
                                                                  _fmt(g['clusters_ratio'], 0), _fmt(g['wall_ratio'])))
        return '; '.join(parts)
    return json.dumps(target.get('measured'))


def _upstream_notes(results):
    gpu = (results.get('comparisons') or {}).get('gpu') or {}
    notes = []
    first = (gpu.get('upstream') or {}).get('first') or {}
    for task in first.get('task_profile') or []:
        if 'emulator gap' in (task.get('name') or ''):
            notes.append('- `community.aws.eks_cluster` (the only upstream way to read a cluster) fails against the sandbox with '
                         'KeyError `securityGroupIds`: moto omits `resourcesVpcConfig.securityGroupIds` of a cluster without '
                         'security groups (AWS returns `[]`). The playbook rescues with one boto3 DescribeCluster; upstream\'s '
                         'time includes that failed task and the stand-in (about one task more than on AWS).')
            break
    notes.append('- `amazon.aws.cloudwatch_metric_alarm` with `metrics` reports changed (and calls PutMetricAlarm) on every run.')
    notes.append('- `community.aws.eks_nodegroup` on the existing CPU node group must restate its whole configuration '
                 '(its defaults would resize it) and purges labels not listed.')
    notes.append('- `amazon.aws.iam_policy` lists every inline policy of the role and gets each one: its reads grow with the '
                 'number of inline policies on the node role.')
    return ['Where upstream fails or is not idempotent:', ''] + notes + ['']


def _method(results):
    mins = results.get('minimum_reads') or {}
    out = ['## How it is measured', '',
           '- Wall time: the measured command (ansible-playbook or the script), end to end, from bench/run.py.',
           '- AWS requests: counted per command by a pass-through proxy (bench/awsproxy.py) that only the measured process '
           'talks to (`AWS_ENDPOINT_URL`), classified by the sandbox journal\'s own code (sandbox.aws.protocol); mutating = '
           'not Describe*/List*/Get*. The sandbox journal cannot be used alone: it does not record the client, and the '
           'node mirror polls EKS ListClusters/ListNodegroups/DescribeNodegroup and Auto Scaling DescribeAutoScalingGroups '
           'every ~2 s for every cluster, the same read operations the measured tools use. The journal '
           'window is still read and the difference is stored per run as `aws_requests_other`.',
           '- Kubernetes writes: audit-log events with a write verb by the admin user, by certificate or by the EKS token of '
           'the admin\'s IAM identity (excludes the node mirror and the control plane\'s controllers); in the fleet\'s '
           'Kubernetes mode, from the audit log of each cluster of the fleet. Helm revisions: `helm history` before and after.',
           '- Memory: the peak RSS of each measured command\'s process tree, sampled from /proc every 0.5 s (section 4).',
           '- Tasks changed: the `changed` count of the play recap (json callback), summed over hosts.',
           '- Each comparison uses names of its own (node groups `bench-gpu`, `bench-upstream`, `bench-manual`) and its own '
           'cluster in the private sandbox, and is torn down after (teardown not timed).', '',
           '**Minimum AWS reads for a no-op of cluster_gpu, per cluster: %d** — one read per managed resource, counted from the '
           'resources the role manages and the cheapest API call that returns each one whole:' % len(mins.get('managed') or {}), '']
    out += ['- `%s`: %s' % kv for kv in (mins.get('managed') or {}).items()]
    out += ['', 'Inputs that a converge must also read to know the desired state (not managed resources, so not in the '
            'minimum the target uses; %d with them): ' % (len(mins.get('managed') or {}) + len(mins.get('inputs') or {}))
            + '; '.join('`%s` (%s)' % kv for kv in (mins.get('inputs') or {}).items()) + '.', '']
    return out


def _profile(results):
    gpu = (results.get('comparisons') or {}).get('gpu') or {}
    noop = ((gpu.get('ours') or {}).get('noop') or [None])[0]
    if not noop:
        return []
    out = ['## Where the no-op time goes (cluster_gpu, first repetition)', '',
           '| task | wall (s) | AWS requests | time in AWS calls (ms) |', '|---|---|---|---|']
    for task in noop.get('task_profile') or []:
        out.append('| %s | %s | %s | %s |' % (task['name'], _fmt(task['wall_s']), task['aws_requests'], _fmt(task['aws_api_ms'], 0)))
    total_api = sum(t['aws_api_ms'] for t in noop.get('task_profile') or []) / 1000.0
    out += ['', 'AWS calls account for %.1f s of %.1f s; the rest is Ansible: process start, templating, module '
            'packaging and transfer (AnsiballZ), one Python interpreter per module task.' % (total_api, noop['wall_s']), '',
            'Requests by operation: ' + ', '.join('%s %d' % kv for kv in (noop.get('aws_requests_by_operation') or {}).items()), '']
    return out


def _proposals(results, candidate):
    """Findings from the profile and what would move the missed targets; the candidate run (a
    scratch copy of the role, bench/run.py --candidate-role) measures the role-level part."""
    out = ['## Findings and proposals', '']
    comp = results.get('comparisons') or {}
    noop = (((comp.get('gpu') or {}).get('ours') or {}).get('noop') or [None])[0]
    if noop:
        tasks = [t for t in noop.get('task_profile') or [] if t.get('aws_requests')]
        if tasks:
            per_task = sum(t['wall_s'] - t['aws_api_ms'] / 1000.0 for t in tasks) / len(tasks)
            out += ['- **Time is per module task, not per API call.** In the cluster_gpu no-op, the %d tasks that call AWS '
                    'spend on average %.2f s each outside AWS calls (Python start, AnsiballZ packaging and transfer, '
                    'importing boto3) against %.2f s in AWS calls in all. Fewer module tasks is the lever that matters; fewer '
                    'requests follows from it.' % (len(tasks), per_task, sum(t['aws_api_ms'] for t in tasks) / 1000.0), '']
    helm = (results.get('targets') or {}).get('helm_noop_time_half_upstream') or {}
    if helm.get('measured_tasks') is not None:
        text = ('- **helm_release no-op.** Its task takes %s s against %s s for kubernetes.core.helm\'s two tasks (%sx); the '
                'whole playbook %s s against %s s (%sx). The module makes three reads (`helm version`, `helm list`, '
                '`helm status --show-resources`) and parses the stored manifest with libyaml.' % (
                    _fmt(helm.get('ours_tasks_s')), _fmt(helm.get('upstream_tasks_s')), _fmt(helm.get('measured_tasks')),
                    _fmt(helm.get('ours_s')), _fmt(helm.get('upstream_s')), _fmt(helm.get('measured'))))
        floor, floor_task, upstream = helm.get('floor_s'), helm.get('floor_tasks_s'), helm.get('upstream_s')
        if floor is not None and upstream:
            text += (' The floor, measured in the same loop: a playbook with one `ansible.builtin.ping` task takes %s s '
                     '(the task %s s); half of upstream\'s wall is %s s.' % (_fmt(floor), _fmt(floor_task), _fmt(upstream / 2)))
            if floor > upstream / 2:
                text += (' No one-task playbook meets the wall-time half on this machine, whatever its module does: '
                         'ansible-playbook\'s start-up and one module start already exceed it. The target is kept and '
                         'reported as measured.')
            if floor_task is not None and helm.get('ours_tasks_s') is not None:
                text += (' Above ping\'s task, ours spends %s s: the helm reads and importing the module\'s code '
                         '(PyYAML, the manifest helpers).' % _fmt(helm['ours_tasks_s'] - floor_task))
        out += [text, '']
    first = _earlier_run(results, lambda d: 'gpu' in (d.get('comparisons') or {}), first=True)
    out += ['What the first run of this suite found, and what was changed after it (each change is in the tree '
            'measured above%s):' % _first_run_figures(first), '',
            '1. **The preflight dry run of eks_gpu_nodegroup is gone.** It repeated the six reads of the real task in a '
            'task of its own; the module validates its whole input before its first write anyway.',
            '2. **The node role\'s inline policy is kept by eks_gpu_nodegroup** (`node_role_policy`: one GetRolePolicy, a '
            'PutRolePolicy only when the document differs, written after the module\'s checks) instead of '
            'amazon.aws.iam_policy, which lists the role\'s inline policies and gets every one of them (reads that '
            'grow with the role).',
            '3. **One scaling_alarm task for both pairs** (`alarms`), on the Auto Scaling group the node group task '
            'reported (`autoscaling_group_name`, no DescribeNodegroup): one DescribePolicies and one DescribeAlarms for '
            'all four, and the DescribeAutoScalingGroups existence check only when a policy is missing.',
            '4. **eks_gpu_nodegroup on a no-op** reads the template version the node group runs, by the id and number '
            'DescribeNodegroup gave, first; when it is what is asked, DescribeLaunchTemplates and DescribeImages are '
            'skipped (the AMI is in use and the version names its root device).',
            '5. **helm_release no-op** is decided from the stored release (chart name and exact version from `helm list`; '
            'user values, manifest and the live objects as helm reads them from one `helm status --show-resources`, helm '
            '3.10+; helm 4: `get values`, `get manifest` and API reads) without a registry login, a chart pull or a render, '
            'when the chart is remote, the version exact and there are no `set_values`; the kubernetes client is imported '
            'only when needed. Anything else takes the full path (render, compare).',
            '6. **helm_release started its reads together** (`helm version`, `helm list` and, when the stored-release '
            'decision might use it, `helm status`). Weighed later in interleaved runs against running them one by one, '
            'it saved too little to keep its machinery (section 2), and was removed.%s' % _helm_task_change(results), '']
    if noop:
        ops = noop.get('aws_requests_by_operation') or {}
        out += ['Result: the no-op above is %d module tasks and %s AWS requests (%s).' % (
            len([t for t in noop.get('task_profile') or [] if t.get('aws_requests')]), noop.get('aws_requests'),
            ', '.join('%s %d' % kv for kv in ops.items())), '']
    if candidate:
        c = (candidate.get('summary') or {}).get('candidate') or {}
        out += ['**Measured prototype** (proposals 1 and 2 only, role-level, in a scratch copy of the role outside the '
                'repo: %s; run %s, interleaved no-op re-runs, medians):' % (c.get('role'), candidate.get('started')), '',
                '| | current role | prototype | prototype/current |', '|---|---|---|---|']
        for key, label in (('wall_s', 'no-op wall time (s)'), ('aws_requests', 'no-op AWS requests'),
                           ('aws_mutating', 'no-op mutating requests'), ('tasks_changed', 'tasks changed')):
            row = c.get(key) or {}
            out.append('| %s | %s | %s | %s |' % (label, _fmt(row.get('current')), _fmt(row.get('candidate')), _fmt(row.get('ratio'))))
        out.append('')
        runs = (candidate.get('comparisons') or {}).get('candidate') or {}
        pairs = zip(runs.get('candidate', {}).get('noop') or [], runs.get('current', {}).get('noop') or [])
        out += ['Pairs (prototype s / current s, load): ' + '; '.join(
            '%.1f / %.1f (%.0f)' % (a['wall_s'], b['wall_s'], a.get('loadavg_1m_before') or 0) for a, b in pairs) +
            '. The request saving is exact (the six reads of the dry run, one DescribeNodegroup per alarm task); the '
            'time saving of one module task in six is within this host\'s load noise and is not shown by these '
            'figures: measure again on a quiet machine.', '']
    return out


def _earlier_run(results, predicate, first=False):
    """The first (or the latest) full run in bench/results started before `results` for which
    predicate holds: (path relative to the checkout, its data), or (None, None)."""
    folder = os.path.join(BENCH, 'results')
    runs = []
    for name in sorted(f for f in os.listdir(folder) if f.endswith('.json')) if os.path.isdir(folder) else []:
        try:
            with open(os.path.join(folder, name), encoding='utf-8') as handle:
                data = json.load(handle)
        except ValueError:
            continue
        if data.get('mode') == 'full' and str(data.get('started') or '') < str(results.get('started') or '') and predicate(data):
            runs.append((str(data.get('started')), os.path.relpath(os.path.join(folder, name), ROOT), data))
    if not runs:
        return None, None
    runs.sort(key=lambda run: run[0])
    return runs[0][1:] if first else runs[-1][1:]


def _first_run_figures(first):
    """'; the figures of that first run (<file>): ...' from its results JSON; '' when there is none."""
    path, data = first
    if data is None:
        return ''
    targets, figures = data.get('targets') or {}, []
    noop = ((((data.get('comparisons') or {}).get('gpu') or {}).get('ours') or {}).get('noop') or [None])[0]
    if noop:
        tasks = [t for t in noop.get('task_profile') or [] if t.get('aws_requests')]
        figures.append('cluster_gpu no-op %s AWS requests in %d module tasks' % (_fmt(noop.get('aws_requests')), len(tasks)))
    wall = (targets.get('noop_time_half_upstream') or {}).get('measured')
    if wall is not None:
        figures.append('wall %sx upstream' % _fmt(wall))
    helm = (targets.get('helm_noop_time_half_upstream') or {}).get('measured')
    if helm is not None:
        figures.append('helm_release no-op %sx kubernetes.core.helm' % _fmt(helm))
    if not figures:
        return ''
    return '; the figures of that first run, `%s` of %s: %s' % (path, data.get('started'), ', '.join(figures))


def _helm_task_change(results):
    """The helm_release no-op task's median in the previous full run that measured it and in this one."""
    key = 'helm_noop_time_half_upstream'
    now = ((results.get('targets') or {}).get(key) or {}).get('ours_tasks_s')
    path, data = _earlier_run(results, lambda d: ((d.get('targets') or {}).get(key) or {}).get('ours_tasks_s') is not None)
    if now is None or data is None:
        return ''
    return (' The helm_release no-op task took %s s in the previous full run (`%s`, median) and %s s in the run '
            'measured above; other changes between the two runs and the host\'s load count in that difference too.' % (
                _fmt(data['targets'][key]['ours_tasks_s']), path, _fmt(now)))


def _walk(node):
    if isinstance(node, dict):
        if 'wall_s' in node and 'rc' in node:
            yield node
        else:
            for value in node.values():
                yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def plot(results, path, log):
    """A PNG with wall-time panels; drawn by the bench venv's python (matplotlib)."""
    s = results.get('summary') or {}
    data = {'gpu': s.get('gpu'), 'helm': s.get('helm'), 'fleet': s.get('fleet'), 'fleet_aws_only_1': s.get('fleet_aws_only_1'), 'manual': s.get('manual'), 'site': s.get('site')}
    script = r'''
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.load(open(sys.argv[1]))
panels = [k for k in ("gpu", "helm", "fleet", "site") if d.get(k)]
fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.5 * max(len(panels), 1), 4))
if len(panels) <= 1:
    axes = [axes]
for ax, key in zip(axes, panels):
    if key == "gpu":
        labels, ours, theirs = ["first converge", "no-op re-run"], [], []
        for ph in ("first", "noop"):
            ours.append(d["gpu"][ph]["wall_s"]["ours"] or 0); theirs.append(d["gpu"][ph]["wall_s"]["upstream"] or 0)
        x = range(len(labels))
        ax.bar([i - 0.27 for i in x], ours, 0.27, label="genai.stack cluster_gpu")
        ax.bar(list(x), theirs, 0.27, label="upstream modules")
        if d.get("manual"):
            ax.bar([0.27], [d["manual"]["wall_s"]["manual"] or 0], 0.27, label="AWS CLI script (not re-runnable)")
        ax.set_xticks(list(x)); ax.set_xticklabels(labels); ax.set_title("GPU capacity, 1 cluster"); ax.set_ylabel("wall time (s)")
        ax.legend(fontsize=8)
    elif key == "helm":
        labels = ["install", "no-op", "upgrade"]
        ours = [d["helm"][p]["wall_s"]["ours"] or 0 for p in ("install", "noop", "upgrade")]
        theirs = [d["helm"][p]["wall_s"]["upstream"] or 0 for p in ("install", "noop", "upgrade")]
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], ours, 0.4, label="genai.stack.helm_release")
        ax.bar([i + 0.2 for i in x], theirs, 0.4, label="kubernetes.core.helm")
        ax.set_xticks(list(x)); ax.set_xticklabels(labels); ax.set_title("Helm, gpu-echo chart"); ax.set_ylabel("wall time (s)")
        ax.legend(fontsize=8)
    elif key == "site":
        labels = ["first converge", "no-op re-run"]
        walls = [d["site"][p]["wall_s"] or 0 for p in ("first", "noop")]
        ax.bar(labels, walls, 0.5, color="tab:green")
        for i, p in enumerate(("first", "noop")):
            ax.annotate("%s writes" % d["site"][p]["kube_writes"], (i, walls[i]), ha="center", va="bottom", fontsize=8)
        label = (d["site"].get("charts") or {}).get("label") or "not recorded"
        ax.set_title("site.yml (%s)" % ("charts not recorded" if label == "not recorded" else label))
        ax.set_ylabel("wall time (s)")
    else:
        modes = {}
        for s, row in d["fleet"].items():
            modes.setdefault(row.get("mode") or "aws-only", {})[int(s)] = row
        if d.get("fleet_aws_only_1"):
            modes.setdefault("aws-only", {}).setdefault(1, d["fleet_aws_only_1"])
        for mode, rows in sorted(modes.items()):
            xs = sorted(rows)
            for ph, lab in (("first", "first converge"), ("noop", "no-op re-run")):
                ys = [rows[x][ph]["wall_s"] for x in xs]
                ax.plot(xs, ys, marker="o" if mode == "kubernetes" else "s",
                        label="%s, %s" % ("Kubernetes" if mode == "kubernetes" else "AWS only", lab))
                if len(xs) > 1 and ys[0]:
                    ax.plot(xs, [ys[0] * x / xs[0] for x in xs], linestyle=":", color="grey")
        ax.set_xlabel("clusters (forks = clusters)"); ax.set_ylabel("wall time (s)"); ax.set_title("Fleet (dotted: linear)")
        ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
'''
    import tempfile
    fd, tmp = tempfile.mkstemp(suffix='.json', prefix='genai-bench-plot-')
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(data, handle)
    python = os.path.join(os.environ.get('GENAI_BENCH_VENV') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'genai-stack', 'bench-venv'), 'bin', 'python')
    try:
        proc = subprocess.run([python, '-c', script, tmp, path], capture_output=True, text=True)
        ok = proc.returncode == 0
        if not ok:
            log('plot failed: %s' % proc.stderr[-800:])
    except OSError as exc:
        log('plot skipped: %s' % exc)
        ok = False
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ok


def latest(predicate):
    folder = os.path.join(BENCH, 'results')
    files = sorted((f for f in os.listdir(folder) if f.endswith('.json')), reverse=True) if os.path.isdir(folder) else []
    for name in files:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding='utf-8') as handle:
                data = json.load(handle)
        except ValueError:
            continue
        if predicate(data):
            return path, data
    return None, None


def merge_latest(results, results_path, log):
    """Each comparison from the newest full run that has it (a run of `--only fleet` after a
    complete run replaces the fleet figures only; a run of `--only gpu,helm` keeps the older
    runs' manual, fleet and site figures, each labelled with its own run); summary and targets
    recomputed. A comparison the base run has is never taken from an older run."""
    import run  # bench/run.py: summarise()
    merged = json.loads(json.dumps(results))
    sources = {}
    for key in run.COMPARISONS:
        path, data = latest(lambda d, k=key: d.get('mode') == 'full' and k in (d.get('comparisons') or {}))
        if data is None:
            continue
        if path != results_path:
            if key in (results.get('comparisons') or {}) and data.get('started', '') < results.get('started', ''):
                continue
            merged['comparisons'][key] = data['comparisons'][key]
            log('docs: %s from %s' % (key, os.path.basename(path)))
        sources[key] = os.path.relpath(path, ROOT)
    merged['sources'] = sources
    merged['summary'], merged['targets'] = run.summarise(merged)
    return merged


def render(results_path, log=print, plot_png=None):
    """(markdown, results) for docs/benchmarks.md from a results file, with the summary and the
    targets recomputed by the current bench/run.py. plot_png: draw the plot there; None: link the
    committed docs/benchmarks.png when it exists (the check does not redraw it)."""
    with open(results_path, encoding='utf-8') as handle:
        results = json.load(handle)
    if 'candidate' in (results.get('comparisons') or {}) and 'gpu' not in results['comparisons']:
        candidate = results
        results_path, results = latest(lambda d: 'gpu' in (d.get('comparisons') or {}) and d.get('mode') == 'full')
        if results is None:
            log('no full results to document')
            return None, None
    else:
        candidate = latest(lambda d: 'candidate' in (d.get('comparisons') or {}))[1]
        # A prototype measured against an older role says nothing about the role measured here.
        if candidate and str(candidate.get('started') or '') < str(results.get('started') or ''):
            candidate = None
    results = merge_latest(results, results_path, log)
    png = os.path.join(DOCS, 'benchmarks.png')
    plot_ok = (plot(results, plot_png, log) if plot_png else False) or os.path.exists(png)
    return markdown(results, results_path, plot_ok, candidate), results


def write_docs(results_path, log=print):
    os.makedirs(DOCS, exist_ok=True)
    text, results = render(results_path, log, plot_png=os.path.join(DOCS, 'benchmarks.png'))
    if text is None:
        return
    with open(os.path.join(DOCS, 'benchmarks.md'), 'w', encoding='utf-8') as handle:
        handle.write(text)
    log('wrote docs/benchmarks.md%s' % (' and docs/benchmarks.png' if '![benchmarks]' in text else ''))


def code_drift(results):
    """What the results (and so the page) say about the code that the code no longer says: the
    targets and their wording, the comparisons, the minimum reads, the playbooks site.yml imports.
    A list of differences; empty when the page still describes the code."""
    import run  # bench/run.py
    found = []
    # The targets' wording comes from bench/run.py (summarise() sets it); a target the results
    # cannot judge any more (added since) shows as pending rather than disappearing.
    if {k: t.get('target_text') for k, t in (results.get('targets') or {}).items()} != dict(run.TARGETS):
        found.append('targets: the page lists %s, bench/run.py TARGETS is %s' % (
            sorted((results.get('targets') or {})), sorted(dict(run.TARGETS))))
    measured = set((results.get('sources') or {}))
    if not measured <= set(run.COMPARISONS):
        found.append('comparisons %s are no longer in bench/run.py COMPARISONS' % sorted(measured - set(run.COMPARISONS)))
    mins = results.get('minimum_reads') or {}
    if mins.get('managed') != run.MIN_READS_MANAGED or mins.get('inputs') != run.MIN_READS_INPUTS:
        found.append('minimum reads: the results say %s, bench/run.py says managed %s, inputs %s' % (
            mins, run.MIN_READS_MANAGED, run.MIN_READS_INPUTS))
    site = ((results.get('comparisons') or {}).get('site') or {}).get('imports')
    if site is not None:
        with open(os.path.join(ROOT, 'playbooks', 'site.yml'), encoding='utf-8') as handle:
            now = re.findall(r'import_playbook:\s*(\S+)', handle.read())
        if site != now:
            found.append('site.yml imports %s today; the measured run imported %s (measure the site again)' % (now, site))
    return found


def check(log=print, doc=None):
    """docs-check: docs/benchmarks.md is what the committed results render to with the current
    code, and what it says about the code is still true. Returns the number of problems."""
    path = latest(lambda d: 'gpu' in (d.get('comparisons') or {}) and d.get('mode') == 'full')[0]
    if not path:
        log('check-benchmarks: FAILED: no full results in bench/results')
        return 1
    text, results = render(path, log=lambda _msg: None)
    problems = code_drift(results)
    doc = doc or os.path.join(DOCS, 'benchmarks.md')
    with open(doc, encoding='utf-8') as handle:
        committed = handle.read()
    if committed != text:
        import difflib
        diff = list(difflib.unified_diff(committed.splitlines(), text.splitlines(), 'docs/benchmarks.md', '<rendered>', lineterm='', n=0))
        problems.append('docs/benchmarks.md differs from what bench/report.py renders from %s:\n%s' % (
            os.path.relpath(path, ROOT), '\n'.join(diff[:40])))
    for problem in problems:
        log('check-benchmarks: ' + problem)
    missed = [t['target_text'] for t in results['targets'].values() if t.get('met') is False]
    log('check-benchmarks: %s: %s; targets missed in that run (shown as missed, not a failure): %s' % (
        'FAILED' if problems else 'OK', os.path.relpath(path, ROOT), '; '.join(missed) or 'none'))
    return len(problems)


if __name__ == '__main__':
    if sys.argv[1:] == ['--check']:
        sys.exit(1 if check() else 0)
    if len(sys.argv) > 1:
        target = sys.argv[1]
    else:
        target = latest(lambda d: 'gpu' in (d.get('comparisons') or {}) and d.get('mode') == 'full')[0]
    if not target:
        sys.exit('no full results in bench/results')
    write_docs(target)
