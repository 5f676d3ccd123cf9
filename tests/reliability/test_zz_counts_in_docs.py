"""docs/security.md quotes the counts of the suite: they must be those of counts.json.

Named to run last (pytest collects the files of a directory in alphabetical order), after the
other files have written tests/output/reliability/counts.json. counts.json is merged section by
section, so after a partial run a section may come from an earlier one: run the whole suite
before trusting a failure here. A section missing from counts.json fails (never a silent pass).
"""
import json
import os
import re

import pytest

import _support

DOC = os.path.join(_support.ROOT, 'docs', 'security.md')

# (label, regex over the doc's counts table, the groups' values from counts.json)
ROWS = [
    ('AWS faults retried',
     r'\| AWS faults retried \| (\d+) mutating operations .*?= (\d+) \| (\d+) \|',
     lambda c: [c['faults']['operations_count'], c['faults']['faults_injected_and_survived'],
                c['faults']['faults_injected_and_survived']]),
    ('SIGKILL, then re-run',
     r'\| SIGKILL, then re-run \| (\d+) kills \((\d+) points .*?, (\d+) in a roll, (\d+) tasks of genai_engine.*?\| (\d+) re-runs converged',
     lambda c: [c['sigkill']['cluster_gpu_kills'] + c['sigkill']['roll_kills'] + c['sigkill']['engine_kills'],
                c['sigkill']['cluster_gpu_kills'], c['sigkill']['roll_kills'], c['sigkill']['engine_kills'],
                c['sigkill']['cluster_gpu_kills'] + c['sigkill']['roll_kills'] + c['sigkill']['engine_kills']]),
    ('bad inputs',
     r'\| bad inputs \| (\d+) cases \((\d+) module, (\d+) lookup, (\d+) role\) \| (\d+) \|',
     lambda c: [c['bad_inputs']['cases'], c['bad_inputs']['module_cases'], c['bad_inputs']['lookup_cases'],
                c['bad_inputs']['role_cases'], c['bad_inputs']['passed']]),
    ('secret leaks',
     r'\| secret leaks \| (\d+) runs checked .*?\| [^|]*? \| (\d+) ',
     lambda c: [c['secrets']['runs'], c['secrets']['leaks_found']]),
    ('least privilege',
     r'\| least privilege \| (\d+) policy actions \((\d+) called in the cluster_gpu lifecycle, (\d+) never',
     lambda c: [c['least_privilege']['policy_actions'], c['least_privilege']['called_count'],
                len(c['least_privilege']['exempt'])]),
    ('safe defaults',
     r'\| safe defaults \| \d+ checks; (\d+) secret-like role defaults, (\d+) module argspecs',
     lambda c: [c['safe_defaults']['secret_like_defaults_checked'], len(c['safe_defaults']['validate_certs_modules'])]),
]


def _counts():
    path = os.path.join(_support.OUTPUT_DIR, 'counts.json')
    assert os.path.exists(path), 'no %s: run the suite first' % path
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


@pytest.mark.parametrize('label,pattern,expected', ROWS, ids=[r[0] for r in ROWS])
def test_doc_counts_are_those_of_counts_json(label, pattern, expected):
    with open(DOC, encoding='utf-8') as handle:
        doc = handle.read()
    match = re.search(pattern, doc)
    assert match, 'docs/security.md: the counts row %r is not in the expected form %s' % (label, pattern)
    counts = _counts()
    try:
        wanted = expected(counts)
    except KeyError as exc:
        pytest.fail('counts.json has no %s for %r (its test did not run or did not get that far)' % (exc, label))
    quoted = [int(g) for g in match.groups()]
    assert quoted == wanted, 'docs/security.md row %r quotes %s, counts.json says %s' % (label, quoted, wanted)
