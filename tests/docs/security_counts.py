"""The numbers of docs/security.md, rendered from one run of the reliability suite.

The reliability suite writes tests/output/reliability/counts.json afresh in every run (conftest.py,
_support.record*): the run's description, every test's outcome, and the counts its *passing*
tests recorded. The doc's numbers live in generated blocks:

    <!-- generated: NAME (tests/docs/security_counts.py) -->
    ...
    <!-- end generated: NAME -->

    security_counts.py --write COUNTS.json   copy a run's counts to the committed file
                                             (tests/reliability/last-run-counts.json) and rewrite the blocks
    security_counts.py --check               (docs-check) the blocks are what the committed file renders to
    security_counts.py --check --counts F --counts-only
                                             (the reliability suite's last test) the blocks that hold counts
                                             are what the live run's counts render to; the run block (dates,
                                             durations, load) describes the committed run and is not compared

A count whose test did not pass is absent from the file and rendered as "not recorded", never as
a number from another run.
"""
import argparse
import difflib
import json
import os
import re
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
DOC = os.path.join(ROOT, 'docs', 'security.md')
COMMITTED = os.path.join(ROOT, 'tests', 'reliability', 'last-run-counts.json')
LIVE = os.path.join(ROOT, 'tests', 'output', 'reliability', 'counts.json')
BLOCK = re.compile(r'(<!-- generated: (\S+) \(tests/docs/security_counts\.py\) -->\n)(.*?)(<!-- end generated: \2 -->)', re.S)
# The suite's last file compares the doc with the run; its own tests are not part of what it compares.
DRIFT_CHECK = 'test_zz_counts_in_docs.py'
# Blocks that describe the run rather than count what it did: compared by docs-check only.
RUN_BLOCKS = ('run',)
MISSING = 'not recorded (its test did not pass)'
MISSING_CELL = '–'   # in the table, explained under it


class Counts:
    def __init__(self, data):
        self.data = data
        self.tests = {k: v for k, v in (data.get('tests') or {}).items() if DRIFT_CHECK not in k}

    def get(self, section, key, default=None):
        return (self.data.get(section) or {}).get(key, default)

    def has(self, section, *keys):
        return all(key in (self.data.get(section) or {}) for key in keys)

    def outcomes(self, filename=None):
        found = {}
        for nodeid, outcome in self.tests.items():
            if filename is None or nodeid.split('::')[0].endswith('/' + filename) or nodeid.split('::')[0] == filename:
                found[outcome] = found.get(outcome, 0) + 1
        return found

    def tests_cell(self, filename):
        found = self.outcomes(filename)
        total = sum(found.values())
        if not total:
            return 'not run'
        others = ', '.join('%d %s' % (n, o) for o, n in sorted(found.items()) if o != 'passed')
        return '%d of %d passed%s' % (found.get('passed', 0), total, (' (%s)' % others) if others else '')


def _n(value):
    return MISSING_CELL if value is None else str(value)


def _groups(labels):
    """'cluster_gpu ×4, modules ×4, ...' in the order the suite ran them."""
    order, count = [], {}
    for label in labels:
        group = label.split(' ')[0]
        if group not in count:
            order.append(group)
        count[group] = count.get(group, 0) + 1
    return ', '.join('%s ×%d' % (g, count[g]) for g in order)


def _enforced(probes):
    return sorted(s for s, p in probes.items() if p.get('admin_allowed_call') == 'allowed' and p.get('limited_disallowed_call') != 'allowed')


def block_run(c):
    run = c.data.get('run') or {}
    duration = run.get('duration_s')
    took = '%d min %d s' % divmod(int(duration), 60) if duration is not None else 'an unknown time (the run did not finish)'
    text = ('Run: %s to %s (UTC), commit `%s`%s, ansible-core %s, moto %s, Kubernetes %s, Python %s, on %s CPUs; the 1-minute '
            'load average was %s at the start and %s at the end. The suite took %s' % (
                run.get('started'), run.get('finished'), (run.get('commit') or 'unknown')[:12],
                ' with uncommitted changes' if run.get('uncommitted_changes') else '', run.get('ansible_core'), run.get('moto'),
                run.get('kubernetes'), run.get('python'), run.get('cpus'), run.get('loadavg_1m_start'), run.get('loadavg_1m_end'), took))
    seconds = c.get('bad_inputs', 'seconds')
    if seconds is not None:
        text += '; the bad-input catalogue alone %d s' % seconds
    return text + '. Times depend on the machine and its load; they are the run\'s, not a promise.\n'


def block_table(c):
    outcomes = c.outcomes()
    total = sum(outcomes.values())
    rows = ['Tests: %d run (the drift check at the end not counted): %s.' % (
        total, ', '.join('%d %s' % (n, o) for o, n in sorted(outcomes.items())) or 'none'), '',
        '| promise | tried | held (from passed tests only) | tests |', '|---|---|---|---|']
    survived = c.get('faults', 'survived') or []
    rows.append('| AWS faults retried | %s mutating operations (every one the modules send), each answered with throttling, 500 and 503 '
                'in every run of the lifecycle that sends it: %s faults | %s faults retried through, in %d operations | %s |' % (
                    _n(c.get('faults', 'operations_count')), _n(c.get('faults', 'faults_injected')),
                    sum(len(s['faults']) for s in survived), len(survived), c.tests_cell('test_faults.py')))
    kills = [c.get('sigkill', k) for k in ('cluster_gpu_kills', 'roll_kills', 'engine_kills')]
    reruns = [c.get('sigkill', k) for k in ('cluster_gpu_reruns_past_kill', 'roll_reruns_past_kill', 'engine_reruns_past_kill')]
    rows.append('| SIGKILL, then re-run | %s kills (%s in the tasks of cluster_gpu, %s in a roll, %s in the tasks of genai_engine) | '
                '%s re-runs got past the killed point; %d chains ended in a converged run with one of each resource | %s |' % (
                    sum(k for k in kills if k is not None) if None not in kills else MISSING_CELL, _n(kills[0]), _n(kills[1]), _n(kills[2]),
                    sum(r for r in reruns if r is not None) if None not in reruns else MISSING_CELL,
                    sum(1 for r in reruns if r is not None), c.tests_cell('test_sigkill.py')))
    outages = c.outcomes('test_outages.py')
    rows.append('| control plane / registry outages | %d scenarios | %d recovered | %s |' % (
        sum(outages.values()), outages.get('passed', 0), c.tests_cell('test_outages.py')))
    rows.append('| bad inputs | %s cases (%s module, %s lookup, %s role) | %s failed early, named the option and changed nothing | %s |' % (
        _n(c.get('bad_inputs', 'cases')), _n(c.get('bad_inputs', 'module_cases')), _n(c.get('bad_inputs', 'lookup_cases')),
        _n(c.get('bad_inputs', 'role_cases')), _n(c.get('bad_inputs', 'passed')), c.tests_cell('test_bad_inputs.py')))
    runs = c.get('secrets', 'runs') or []
    leaks = c.get('secrets', 'leaks') or []
    rows.append('| secret leaks | %d runs whose expected outcome happened (%s), searched in output, journal and audit log, each also for '
                'the sandbox\'s registry password and `PGPASSWORD` | %d clean, %d leaks found | %s |' % (
                    len(runs), _groups(runs) or 'none', len(runs), len(leaks), c.tests_cell('test_secrets.py')))
    probes = c.get('least_privilege', 'enforcement_probes')
    accounts = sum(1 for k in ('service_account', 'genai_engine_service_account') if c.has('least_privilege', k))
    exempt = c.get('least_privilege', 'exempt')
    rows.append('| least privilege | %s policy actions (%s called in the cluster_gpu lifecycle, %s never a request of it: §6); IAM '
                'enforced for %s; %d ServiceAccounts confined to their namespace | see §6 | %s |' % (
                    _n(c.get('least_privilege', 'policy_actions')), _n(c.get('least_privilege', 'called_count')),
                    _n(len(exempt) if exempt is not None else None),
                    '%d of %d services probed' % (len(_enforced(probes)), len(probes)) if probes else MISSING_CELL, accounts,
                    c.tests_cell('test_least_privilege.py')))
    modules = c.get('safe_defaults', 'validate_certs_modules')
    rows.append('| safe defaults | %s secret-like role defaults, %s module argspecs | %s secret-like defaults with a value | %s |' % (
        _n(c.get('safe_defaults', 'secret_like_defaults_checked')), _n(len(modules) if modules is not None else None),
        _n(c.get('safe_defaults', 'default_passwords_found')), c.tests_cell('test_safe_defaults.py')))
    if MISSING_CELL in '\n'.join(rows[4:]):
        rows += ['', '%s: %s.' % (MISSING_CELL, MISSING)]
    return '\n'.join(rows) + '\n'


def block_faults(c):
    survived = c.get('faults', 'survived') or []
    ops = c.get('faults', 'operations')
    return ('Last run: %s: %s operations, %s faults injected, %d retried through (%d operations\' tests passed).\n' % (
        ', '.join(ops) if ops else MISSING, _n(c.get('faults', 'operations_count')), _n(c.get('faults', 'faults_injected')),
        sum(len(s['faults']) for s in survived), len(survived)))


def block_sigkill(c):
    parts = []
    for name, kills, reruns, points in (('cluster_gpu', 'cluster_gpu_kills', 'cluster_gpu_reruns_past_kill', 'cluster_gpu_kill_points'),
                                        ('the roll', 'roll_kills', 'roll_reruns_past_kill', 'roll_kill_points'),
                                        ('genai_engine', 'engine_kills', 'engine_reruns_past_kill', 'engine_tasks')):
        if c.has('sigkill', kills):
            parts.append('%s: %s kills (%s), %s re-runs past the killed point' % (
                name, c.get('sigkill', kills), '; '.join(c.get('sigkill', points) or []), _n(c.get('sigkill', reruns))))
        else:
            parts.append('%s: %s' % (name, MISSING))
    extra = []
    if c.has('sigkill', 'roll_template_versions'):
        extra.append('template versions after the roll: %s' % c.get('sigkill', 'roll_template_versions'))
    if c.has('sigkill', 'engine_release_revisions'):
        extra.append('engine release revisions: %s' % c.get('sigkill', 'engine_release_revisions'))
    return 'Last run: %s%s.\n' % ('. '.join(parts), ('. ' + ', '.join(extra)) if extra else '')


def _numbers(value, prefix=''):
    """The numbers and booleans of a recorded value, flattened: text (error excerpts, addresses
    with the sandbox's ports) differs from run to run and is not a count."""
    if isinstance(value, dict):
        return [x for k, v in sorted(value.items()) for x in _numbers(v, (prefix + ' ' + k.replace('_', ' ')).strip())]
    if isinstance(value, (bool, int, float)):
        return ['%s %s' % (prefix, str(value).lower() if isinstance(value, bool) else value)]
    return []


def block_outages(c):
    recorded = c.data.get('outages') or {}
    passed = [nodeid.split('::')[-1] for nodeid, outcome in sorted(c.tests.items())
              if outcome == 'passed' and nodeid.split('::')[0].endswith('test_outages.py')]
    text = 'Last run: passed: %s.' % (', '.join('`%s`' % name for name in passed) or 'none')
    numbers = ['%s: %s' % (k.replace('_', ' '), ', '.join(_numbers(v))) for k, v in sorted(recorded.items()) if _numbers(v)]
    if numbers:
        text += ' Recorded by them: %s.' % '; '.join(numbers)
    return text + '\n'


def block_bad_inputs(c):
    if not c.has('bad_inputs', 'cases'):
        return 'Last run: %s.\n' % MISSING
    values = (c.get('bad_inputs', 'cases'), c.get('bad_inputs', 'module_cases'), c.get('bad_inputs', 'lookup_cases'),
              c.get('bad_inputs', 'role_cases'), c.get('bad_inputs', 'passed'), len(c.get('bad_inputs', 'known_bugs') or []),
              c.get('bad_inputs', 'kube_writes'), c.get('bad_inputs', 'unattributed_mutating_aws'))
    return ('Last run: %s cases (%s module, %s lookup, %s role cases), %s pass, %d known bugs, %s Kubernetes writes, %s unattributed '
            'mutating AWS requests.\n' % values)


def block_secrets(c):
    runs = c.get('secrets', 'runs') or []
    leaks = c.get('secrets', 'leaks') or []
    return 'Last run: %d runs checked (%s), %d leaks%s.\n' % (
        len(runs), _groups(runs) or 'none', len(leaks), (': ' + '; '.join(leaks)) if leaks else '')


def block_policy(c):
    if not c.has('least_privilege', 'policy_actions'):
        return 'Last run: %s.\n' % MISSING
    return 'Last run: %s policy actions, %s called, %d exempt (%s).\n' % (
        c.get('least_privilege', 'policy_actions'), c.get('least_privilege', 'called_count'),
        len(c.get('least_privilege', 'exempt')), ', '.join(c.get('least_privilege', 'exempt')))


def block_enforcement(c):
    probes = c.get('least_privilege', 'enforcement_probes')
    if not probes:
        return 'Last run: %s.\n' % MISSING
    rows = ['| service | an allow-all user\'s call | a call the limited user lacks | enforced |', '|---|---|---|---|']
    enforced = _enforced(probes)
    for service, probe in sorted(probes.items()):
        cells = (service, probe.get('admin_allowed_call'), probe.get('limited_disallowed_call'), 'yes' if service in enforced else '**no**')
        rows.append('| %s | %s | %s | %s |' % cells)
    return '\n'.join(rows) + '\n'


def block_safe_defaults(c):
    outcomes = c.outcomes('test_safe_defaults.py')
    modules = c.get('safe_defaults', 'validate_certs_modules')
    unset = c.get('safe_defaults', 'validate_certs_unset_verifies') or []
    defaulted = [m for m in modules or [] if m not in unset]
    return ('Last run: %d of %d pass; %s password/secret/token-like variables across the roles\' defaults, %s with a value; '
            '`validate_certs` is a `bool` in %s modules\' argument specs: defaulting to `true` in %d (%s), with no default '
            'in %d (%s), where unset verifies and only an explicit false relaxes it.\n' % (
                outcomes.get('passed', 0), sum(outcomes.values()), _n(c.get('safe_defaults', 'secret_like_defaults_checked')),
                _n(c.get('safe_defaults', 'default_passwords_found')), _n(len(modules) if modules is not None else None),
                len(defaulted), ', '.join(defaulted) or 'none', len(unset), ', '.join(unset) or 'none'))


BLOCKS = {'run': block_run, 'table': block_table, 'faults': block_faults, 'sigkill': block_sigkill, 'outages': block_outages,
          'bad_inputs': block_bad_inputs, 'secrets': block_secrets, 'policy': block_policy, 'enforcement': block_enforcement,
          'safe_defaults': block_safe_defaults}


def render(doc_text, data, names=None):
    """doc_text with every generated block (or those in names) rendered from data."""
    counts = Counts(data)
    seen = []

    def replace(match):
        name = match.group(2)
        if name not in BLOCKS:
            raise ValueError('docs/security.md has a generated block %r that %s does not know' % (name, __file__))
        seen.append(name)
        if names is not None and name not in names:
            return match.group(0)
        return match.group(1) + BLOCKS[name](counts) + match.group(4)

    text = BLOCK.sub(replace, doc_text)
    missing = set(BLOCKS) - set(seen)
    if missing:
        raise ValueError('docs/security.md lacks the generated blocks %s' % sorted(missing))
    return text


def drift(doc_text, data, counts_only=False):
    """The unified diff between the doc and its rendering from data ([] when they agree)."""
    names = [n for n in BLOCKS if n not in RUN_BLOCKS] if counts_only else None
    rendered = render(doc_text, data, names)
    return list(difflib.unified_diff(doc_text.splitlines(), rendered.splitlines(), 'docs/security.md', '<rendered>', lineterm='', n=0))


def _load(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--write', metavar='COUNTS', help='copy COUNTS to %s and rewrite the doc from it' % os.path.relpath(COMMITTED, ROOT))
    parser.add_argument('--check', action='store_true')
    parser.add_argument('--counts', default=COMMITTED)
    parser.add_argument('--counts-only', action='store_true')
    parser.add_argument('--doc', default=DOC)
    args = parser.parse_args(argv)
    with open(args.doc, encoding='utf-8') as handle:
        doc = handle.read()
    if args.write:
        data = _load(args.write)
        if os.path.abspath(args.write) != COMMITTED:
            shutil.copyfile(args.write, COMMITTED)
        with open(args.doc, 'w', encoding='utf-8') as handle:
            handle.write(render(doc, data))
        print('security_counts: wrote %s and %s' % (os.path.relpath(args.doc, ROOT), os.path.relpath(COMMITTED, ROOT)))
        return 0
    diff = drift(doc, _load(args.counts), args.counts_only)
    if diff:
        print('security_counts: FAILED: %s differs from what %s renders to:' % (os.path.relpath(args.doc, ROOT), os.path.relpath(args.counts, ROOT)))
        print('\n'.join(diff[:60]))
        print('security_counts: after a full reliability run: python tests/docs/security_counts.py --write %s' % os.path.relpath(LIVE, ROOT))
        return 1
    print('security_counts: OK: %s matches %s' % (os.path.relpath(args.doc, ROOT), os.path.relpath(args.counts, ROOT)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
