"""bench/run.py's comparisons of one no-op with another (a revision's collection with --baseline;
helm_release with and without reads started ahead, in results recorded before their removal): the
copies hold what a run needs, and the figures and verdicts follow from the runs."""
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import report  # noqa: E402  pylint: disable=wrong-import-position,import-error
import run  # noqa: E402  pylint: disable=wrong-import-position,import-error


def _runs(tasks, rc=0, changed=0, aws=8):
    return [{'tasks_s': t, 'wall_s': t + 1, 'aws_requests': aws, 'rc': rc, 'tasks_changed': changed} for t in tasks]


def _results(ours, baseline, base_changed=0):
    return {'baseline': {'ref': 'v0', 'commit': 'abc1234'},
            'comparisons': {'gpu': {'ours': {'noop': _runs(ours)}, 'baseline': {'noop': _runs(baseline, changed=base_changed)}}}}


def test_a_copy_of_a_revision_holds_its_plugins_and_roles(tmp_path):
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    base = run.collection_copy(str(tmp_path), 'baseline', head)
    target = os.path.join(base, 'ansible_collections', 'genai', 'stack')
    for part in ('plugins/modules/helm_release.py', 'roles/cluster_gpu/tasks/main.yml', 'meta/runtime.yml', 'galaxy.yml'):
        assert os.path.isfile(os.path.join(target, part)), part
    assert run.collections_path(base).split(os.pathsep)[0] == base


def test_not_slower_within_a_tenth(monkeypatch, tmp_path):
    monkeypatch.setattr(report, 'BENCH', str(tmp_path))  # no runs against other revisions after the table
    change = run.baseline_change(_results([1.0, 1.05, 1.2], [1.0, 1.0, 1.1]))
    row = change['gpu']
    assert row['tasks_s'] == {'ours': 1.05, 'baseline': 1.0, 'ratio': 1.05}
    assert row['runs'] == [3, 3] and row['not_slower'] is True
    assert 'helm' not in change
    text = '\n'.join(report._baseline_section(change))  # pylint: disable=protected-access
    assert '| cluster_gpu (AWS steps) | 3, 3 | 1.05 | 1.00 | 1.05 |' in text and text.rstrip().endswith('| no |')


def test_slower_above_a_tenth_or_when_the_baseline_changed_something():
    assert run.baseline_change(_results([1.2], [1.0]))['gpu']['not_slower'] is False
    assert run.baseline_change(_results([1.0], [1.0], base_changed=1))['gpu']['not_slower'] is False
    text = '\n'.join(report._baseline_section(run.baseline_change(_results([1.2], [1.0]))))  # pylint: disable=protected-access
    assert '| **yes** |' in text


def test_runs_against_other_revisions_follow_with_what_each_revision_is(monkeypatch, tmp_path):
    folder = tmp_path / 'results' / 'baseline'
    folder.mkdir(parents=True)
    other = _results([1.2, 1.2], [1.0, 1.0])
    other['baseline'].update(ref='9abbc3b', commit='9abbc3b', subject='Merge the prefetch removal')
    (folder / '20261206T144006Z.json').write_text(json.dumps(other))
    (folder / 'not-a-baseline-run.json').write_text(json.dumps({'comparisons': {}}))
    monkeypatch.setattr(report, 'BENCH', str(tmp_path))
    change = run.baseline_change(_results([1.0], [1.0]))
    assert change['subject'] is None
    text = '\n'.join(report._baseline_section(change))  # pylint: disable=protected-access
    assert 'Against other revisions' in text
    rows = [line for line in text.splitlines() if line.startswith('| cluster_gpu') and '9abbc3b' in line]
    assert rows == ['| cluster_gpu (AWS steps) | `9abbc3b` "Merge the prefetch removal" | 2, 2 | 1.20 | 1.00 | 1.20 | **yes** | `%s` |'
                    % os.path.relpath(str(folder / '20261206T144006Z.json'), report.ROOT)]


def test_failed_runs_are_left_out():
    results = _results([1.0], [1.0])
    results['comparisons']['gpu']['ours']['noop'] += [dict(_runs([9.0])[0], rc=2)]
    assert run.baseline_change(results)['gpu']['runs'] == [1, 1]


def test_prefetch_kept_only_when_it_saves_a_fifth():
    helm = {'ours': {'noop': _runs([0.8, 0.8])}, 'ours_no_prefetch': {'noop': _runs([1.0, 1.0])}}
    gain = run.prefetch_gain(helm)
    assert gain['saved_share'] == 0.2 and gain['keep'] is True and gain['pair_savings_s'] == [0.2, 0.2]
    helm['ours_no_prefetch']['noop'] = _runs([0.9, 0.9])
    assert run.prefetch_gain(helm)['keep'] is False
    assert run.prefetch_gain({'ours': {'noop': _runs([1.0])}}) is None


def test_the_page_keeps_the_recorded_prefetch_decision():
    text = '\n'.join(report._prefetch_decision())  # pylint: disable=protected-access
    assert text.startswith('**Reads started ahead, removed.**') and '11% saved, under the 20%' in text
