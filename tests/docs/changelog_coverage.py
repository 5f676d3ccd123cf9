"""Every module, plugin and role of the collection must be named in the release notes.

    python tests/docs/changelog_coverage.py <collection copy after `antsibull-changelog release` or `generate`>

All releases of changelogs/changelog.yaml count (a plugin released in 0.1.0 stays covered later).

A name counts as covered when antsibull-changelog lists it as new (a plugin or module whose
DOCUMENTATION has ``version_added`` equal to the release; a role whose argument_specs entry point
has it) or when a fragment line starts with ``<name> - `` (the antsibull convention).
The names that must be covered come from antsibull-changelog's own plugin scan
(``changelogs/.plugin-cache.yaml``) plus every directory under ``roles/``.
"""
import os
import re
import sys

import yaml


def main(copy):
    with open(os.path.join(copy, 'changelogs', '.plugin-cache.yaml'), encoding='utf-8') as f:
        cache = yaml.safe_load(f)
    with open(os.path.join(copy, 'changelogs', 'changelog.yaml'), encoding='utf-8') as f:
        releases = yaml.safe_load(f)['releases']

    expected = {}
    for kind, plugins in (cache.get('plugins') or {}).items():
        for name in plugins or {}:
            expected[name] = kind
    for kind, objects in (cache.get('objects') or {}).items():
        for name in objects or {}:
            expected[name] = kind
    roles_dir = os.path.join(copy, 'roles')
    for name in sorted(os.listdir(roles_dir)) if os.path.isdir(roles_dir) else []:
        if os.path.isdir(os.path.join(roles_dir, name)):
            expected.setdefault(name, 'role')

    covered = set()
    for release in releases.values():
        covered.update(entry['name'] for entry in release.get('modules', []))
        for entries in (release.get('plugins') or {}).values():
            covered.update(entry['name'] for entry in entries)
        for entries in (release.get('objects') or {}).values():
            covered.update(entry['name'] for entry in entries)
        for lines in (release.get('changes') or {}).values():
            if isinstance(lines, list):
                for line in lines:
                    match = re.match(r'\s*([\w.]+) - ', line)
                    if match:
                        covered.add(match.group(1).split('.')[-1])

    missing = sorted(name for name in expected if name not in covered)
    for name in missing:
        print('check-changelog: %s %s is in no changelog fragment: add changelogs/fragments/%s.yml with e.g.\n'
              '    minor_changes:\n      - %s - new %s: <what it does>.' % (expected[name], name, name, name, expected[name]))
    if missing:
        print('check-changelog: FAILED: %d of %d modules, plugins and roles are missing from the release notes '
              '(a plugin or role can instead declare version_added: in its documentation / argument_specs entry point)'
              % (len(missing), len(expected)))
        return 1
    print('check-changelog: OK: all %d modules, plugins and roles are in the release notes' % len(expected))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
