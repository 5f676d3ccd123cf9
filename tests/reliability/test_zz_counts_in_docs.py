"""docs/security.md quotes this run's counts: the drift check of the reliability suite.

Named to run last (pytest collects the files of a directory in alphabetical order). The counts
are this session's only (conftest.py starts them afresh; _support.record keeps a test's values
only if the test passed), and tests/docs/security_counts.py renders the doc's generated blocks
from them; this test fails when the doc's blocks that hold counts differ. The block describing
the run (dates, durations, load) is the committed run's and is checked by docs-check against
tests/reliability/last-run-counts.json. After a full run that changed a count, review it and run
`python tests/docs/security_counts.py --write tests/output/reliability/counts.json`.
"""
import glob
import importlib.util
import os

import _support

_spec = importlib.util.spec_from_file_location('security_counts', os.path.join(_support.ROOT, 'tests', 'docs', 'security_counts.py'))
security_counts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(security_counts)


def test_the_run_covered_every_file_of_the_suite():
    # The doc quotes a whole run; a partial one cannot vouch for it (and would show as drift below).
    files = {os.path.basename(p) for p in glob.glob(os.path.join(os.path.dirname(__file__), 'test_*.py'))}
    files.discard(os.path.basename(__file__))
    ran = {nodeid.split('::')[0].rsplit('/', 1)[-1] for nodeid in _support.counts().get('tests', {})}
    assert files <= ran, 'a partial run (not run: %s): docs/security.md quotes the whole suite; run all of tests/reliability' % sorted(files - ran)


def test_doc_counts_are_those_of_this_run():
    with open(security_counts.DOC, encoding='utf-8') as handle:
        doc = handle.read()
    diff = security_counts.drift(doc, _support.counts(), counts_only=True)
    assert not diff, ('docs/security.md differs from this run\'s counts (%s); after reviewing them: python '
                      'tests/docs/security_counts.py --write tests/output/reliability/counts.json\n%s'
                      % (os.path.relpath(_support.COUNTS_PATH, _support.ROOT), '\n'.join(diff[:60])))
