"""The collection tarball is what users install: it carries the licence galaxy.yml names, and
nothing in it refers to a file it does not ship (development tooling, the sandbox, the Makefile).

Built the way tests/docs/check-install.sh builds it: from the files git knows (tracked and new,
not ignored), so that local runtime state never reaches it.
"""
import os
import re
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GALAXY = os.path.join(os.path.dirname(sys.executable), 'ansible-galaxy')
# Development-only parts of the repository: each refers to the sandbox, the Makefile or the
# stand-in charts, none of which the tarball ships.
DEVELOPMENT_ONLY = ('tests/', 'molecule/', 'sandbox/', 'bench/', 'inventories/sandbox/', 'docs/notes/',
                    'ansible.cfg', 'Makefile', '.ci/', 'requirements-dev.txt', '.ansible-lint')
# Markdown [text](target) and reStructuredText `text <target>`_ links.
MD_LINK = re.compile(r'\]\(([^)\s]+)\)')
RST_LINK = re.compile(r'`[^`<]*<([^>`]+)>`_')


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    if not os.path.exists(GALAXY):
        pytest.skip('ansible-galaxy is not installed beside this Python (make venv)')
    work = tmp_path_factory.mktemp('tarball')
    src = work / 'src'
    src.mkdir()
    files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b'\0')
    present = [f for f in files if f and os.path.isfile(os.path.join(ROOT.encode(), f))]
    packed = subprocess.run(['tar', '--null', '-T', '-', '-cf', '-'], cwd=ROOT, input=b'\0'.join(present),
                            check=True, capture_output=True).stdout
    subprocess.run(['tar', '-xf', '-', '-C', str(src)], input=packed, check=True)
    subprocess.run([GALAXY, 'collection', 'build', '--output-path', str(work / 'dist'), str(src)],
                   check=True, capture_output=True)
    [built] = list((work / 'dist').iterdir())
    with tarfile.open(built) as tar:
        members = {m.name: m for m in tar.getmembers()}
        texts = {name: tar.extractfile(m).read().decode('utf-8', 'replace')
                 for name, m in members.items() if m.isfile() and name.endswith(('.md', '.rst'))}
    return set(members), texts


def test_licence_is_the_one_galaxy_names(tarball):
    names, _texts = tarball
    with open(os.path.join(ROOT, 'galaxy.yml'), encoding='utf-8') as handle:
        galaxy = yaml.safe_load(handle)
    assert galaxy['license'] == ['GPL-3.0-or-later']
    assert 'LICENSE' in names
    with open(os.path.join(ROOT, 'LICENSE'), encoding='utf-8') as handle:
        head = handle.read(200)
    assert 'GNU GENERAL PUBLIC LICENSE' in head and 'Version 3' in head


def test_no_development_only_files(tarball):
    names, _texts = tarball
    shipped = sorted(n for n in names if n.startswith(DEVELOPMENT_ONLY) or n.rstrip('/') in {d.rstrip('/') for d in DEVELOPMENT_ONLY})
    assert not shipped, 'development-only files in the tarball (galaxy.yml build_ignore): %s' % shipped[:20]
    for needed in ('MANIFEST.json', 'README.md', 'playbooks/site.yml', 'meta/runtime.yml', 'requirements.txt', 'bindep.txt'):
        assert needed in names, needed


def test_every_relative_link_resolves_inside_the_tarball(tarball):
    names, texts = tarball
    directories = {os.path.dirname(n) for n in names} | {n.rstrip('/') for n in names}
    broken = []
    for name, text in sorted(texts.items()):
        for target in MD_LINK.findall(text) + RST_LINK.findall(text):
            # URLs, anchors, and RST named references (`text <name_>`_) are not files.
            if re.match(r'^[a-z][a-z0-9+.-]*:', target) or target.startswith('#') or target.endswith('_'):
                continue
            path = os.path.normpath(os.path.join(os.path.dirname(name), target.split('#')[0]))
            if path not in names and path not in directories:
                broken.append('%s -> %s' % (name, target))
    assert not broken, 'links to files the tarball does not ship: %s' % broken
