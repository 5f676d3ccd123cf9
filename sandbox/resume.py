#!/usr/bin/env python3
"""Resume the stopped processes of one sandbox (`sandboxctl up`, `down` and `reset` call it first).

Tests suspend sandbox parts with SIGSTOP (the node mirror, to hold a Node in a state; an
outage). A test that dies before its cleanup runs, killed by a timeout or by the user's Ctrl-C
during `make test`, leaves that process stopped: `up` would then find it alive and leave it
alone, and the next suite would wait on a sandbox that never answers. So every `up`, `down`
and `reset` first sends SIGCONT to each process of this sandbox that is in the stopped state,
and says which. A process belongs to the sandbox when its command line names a path inside the
sandbox directory (the same rule `sandboxctl orphans` uses).

Standard library only, like orphans.py.
"""

from __future__ import annotations

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from orphans import _component, processes, sandbox_dir  # noqa: E402  pylint: disable=wrong-import-position


def _state(pid, proc='/proc'):
    """The one-letter state of /proc/<pid>/stat ('T' stopped, 't' traced), or None when gone."""
    try:
        with open(os.path.join(proc, str(pid), 'stat'), encoding='utf-8') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def stopped(directory, proc='/proc'):
    """[(pid, component)] of this sandbox's processes that are stopped."""
    directory = os.path.realpath(directory)
    found = []
    for pid, argv in processes(proc):
        owner = sandbox_dir(argv)
        if owner and os.path.realpath(owner) == directory and _state(pid, proc) == 'T':
            found.append((pid, _component(argv)[0]))
    return sorted(found)


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print('usage: resume.py SANDBOX_DIR', file=sys.stderr)
        return 2
    for pid, component in stopped(args[0]):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            continue
        print('sandbox: resumed %s (pid %d), which was left stopped (SIGSTOP), e.g. by an interrupted test' % (component, pid))
    return 0


if __name__ == '__main__':
    sys.exit(main())
