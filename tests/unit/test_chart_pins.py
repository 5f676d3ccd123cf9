"""playbooks/vars/chart_pins.yml (what playbooks/chart_mirror.yml copies into a chart mirror) against the roles'
own pins: every chart version a role defaults to is listed at that version, and nothing else is, so the mirror
never lacks a chart the roles install nor holds a version they no longer ask for."""
import glob
import os

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


PINS = load(os.path.join(ROOT, 'playbooks', 'vars', 'chart_pins.yml'))['genai_stack_chart_pins']


def role_pins():
    """{variable: (role, version)} of every `*_chart_version` default in roles/*/defaults/main.yml."""
    found = {}
    for path in sorted(glob.glob(os.path.join(ROOT, 'roles', '*', 'defaults', 'main.yml'))):
        role = path.split(os.sep)[-3]
        for key, value in load(path).items():
            if key.endswith('_chart_version'):
                found[key] = (role, str(value))
    return found


def role_text(role):
    text = ''
    for part in ('defaults', 'vars'):
        path = os.path.join(ROOT, 'roles', role, part, 'main.yml')
        if os.path.exists(path):
            with open(path) as handle:
                text += handle.read()
    return text


def test_every_role_pin_is_listed():
    listed = set(pin['pin'] for pin in PINS)
    missing = sorted(var for var in role_pins() if var not in listed)
    assert not missing, 'role chart pins not in playbooks/vars/chart_pins.yml: %s' % missing


@pytest.mark.parametrize('pin', PINS, ids=[p['name'] for p in PINS])
def test_listed_version_is_the_role_default(pin):
    roles = role_pins()
    assert pin['pin'] in roles, '%s: no role defaults %s' % (pin['name'], pin['pin'])
    role, version = roles[pin['pin']]
    assert str(pin['version']) == version, '%s: listed %s, roles/%s pins %s' % (pin['name'], pin['version'], role, version)
    # The chart name is the one the role puts after the mirror (or in its vendor reference).
    assert pin['name'] in role_text(role), '%s: roles/%s never names this chart' % (pin['name'], role)


# Charts whose vendor publishes no chart repository: the mirror takes them from a chart directory only, and the
# role that installs them has no vendor reference to fall back on without a mirror.
SOURCELESS = {'ai-ml-observability': 'observability_reference_chart_ref'}


def test_each_chart_once_with_a_source():
    names = [pin['name'] for pin in PINS]
    assert len(names) == len(set(names))
    for pin in PINS:
        assert isinstance(pin['version'], str), '%s: quote the version (YAML may read it as a number)' % pin['name']
        if 'source' not in pin:
            assert pin['name'] in SOURCELESS and 'repo_url' not in pin, '%s: no source (a chart only a chart directory can give)' % pin['name']
            continue
        if pin['source'].startswith('oci://'):
            assert pin['source'].rsplit('/', 1)[1] == pin['name'] and 'repo_url' not in pin
        else:
            assert pin['source'] == pin['name'] and pin['repo_url'].startswith('https://')


@pytest.mark.parametrize('name', sorted(SOURCELESS))
def test_sourceless_chart_has_no_vendor_default(name):
    """Without a mirror, the role's reference for a chart with no published repository is empty (its preflight asks for
    a path), never a made-up repository."""
    (pin,) = [p for p in PINS if p['name'] == name]
    assert 'source' not in pin
    role = pin['pin'].split('_')[0]
    defaults = load(os.path.join(ROOT, 'roles', role, 'defaults', 'main.yml'))
    ref = defaults[SOURCELESS[name]]
    assert "else ''" in ref and 'http' not in ref and '/' + name in ref, ref
