"""The node user data's shell part, executed: the node joins whatever happens to the CloudWatch agent.

The shell part of each AMI family is run with bash in a temporary root: the paths it writes or calls
(/etc/eks, /opt/aws, /var/lib/genai-stack) are moved under that root, and stub commands on PATH
stand in for curl (IMDS), yum/dnf, timeout, bootstrap.sh and amazon-cloudwatch-agent-ctl. Each stub
appends what it was called with to one log, so the tests see what ran and in which order.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from _rendered_userdata import FLAVOURS, demo_cluster, shell_part
from ansible_collections.genai.stack.plugins.module_utils import _gpu, _userdata

BASH = shutil.which('bash')
pytestmark = pytest.mark.skipif(BASH is None, reason='bash is not installed')

# Absolute paths the script may use, moved under the temporary root.
MOVED_PREFIXES = ('/etc/eks/', '/opt/aws/', '/var/lib/genai-stack')
PACKAGE_MANAGER = {'bootstrap': 'yum', 'nodeadm': 'dnf'}

STUB = '''#!/bin/bash
echo "%(name)s $*" >> "$STUB_LOG"
%(body)s
'''
STUBS = {
    # IMDSv2: a token for the PUT, an instance id for the read; CURL_MODE=fail makes both fail.
    'curl': '[ "${CURL_MODE:-ok}" = fail ] && exit 7\n'
            'case "$*" in *-X\\ PUT*) echo token ;; *meta-data/instance-id*) echo i-0123456789abcdef0 ;; *) exit 22 ;; esac',
    # Package managers: INSTALL_MODE=fail is a repository out of reach (yum exits 1, dnf exits 1).
    'yum': '[ "${INSTALL_MODE:-ok}" = fail ] && { echo "Cannot find a valid baseurl for repo: amzn2-core" >&2; exit 1; }\n'
           'mkdir -p "$ROOT/opt/aws/amazon-cloudwatch-agent/bin"\n'
           'cp "$STUB_DIR/ctl" "$ROOT/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"',
    # timeout: records its limit, then runs the command (the limit itself is checked by the test).
    'timeout': 'shift\nexec "$@"',
}
STUBS['dnf'] = STUBS['yum'].replace('amzn2-core', 'amazonlinux')
CTL = '[ "${CTL_MODE:-ok}" = fail ] && { echo "configuration validation failed" >&2; exit 1; }\nexit 0'
BOOTSTRAP = 'exit "${BOOTSTRAP_RC:-0}"'


def _write_executable(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        handle.write(text)
    os.chmod(path, 0o755)


def run_user_data(tmp_path, flavour, **modes):
    """Run the flavour's shell part in a temporary root; returns (exit code, stderr, calls, root)."""
    root = str(tmp_path / 'root')
    stub_dir = str(tmp_path / 'bin')
    log = str(tmp_path / 'calls.log')
    open(log, 'w').close()
    for name, body in STUBS.items():
        _write_executable(os.path.join(stub_dir, name), STUB % {'name': name, 'body': body})
    _write_executable(os.path.join(stub_dir, 'ctl'), STUB % {'name': 'amazon-cloudwatch-agent-ctl', 'body': CTL})
    _write_executable(os.path.join(root, 'etc', 'eks', 'bootstrap.sh'), STUB % {'name': 'bootstrap.sh', 'body': BOOTSTRAP})
    script = shell_part(flavour)
    for prefix in MOVED_PREFIXES:
        script = script.replace(prefix, root + prefix)
    leftover = [p for p in re.findall(r'(?<![\w.$/-])/(?:etc|opt|var|usr)/[\w./-]*', script) if not p.startswith(root)]
    assert leftover == [], 'the harness would touch the real system at %s' % leftover
    script_path = str(tmp_path / 'user-data.sh')
    with open(script_path, 'w') as handle:
        handle.write(script)
    env = {'PATH': stub_dir + os.pathsep + '/usr/bin:/bin', 'STUB_LOG': log, 'STUB_DIR': stub_dir, 'ROOT': root, 'HOME': str(tmp_path)}
    env.update(modes)
    done = subprocess.run([BASH, script_path], env=env, capture_output=True, text=True, timeout=60, check=False)
    with open(log) as handle:
        calls = [line.split(' ', 1) for line in handle.read().splitlines()]
    return done.returncode, done.stderr, calls, root


def _names(calls):
    return [call[0] for call in calls]


def _marker(root):
    path = root + _userdata.AGENT_FAILED_MARKER
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


# ---------------------------------------------------------------------------------------------
# AL2 (bootstrap.sh)


def test_al2_joins_when_the_agent_package_cannot_be_installed(tmp_path):
    rc, stderr, calls, root = run_user_data(tmp_path, 'bootstrap', INSTALL_MODE='fail')
    assert 'bootstrap.sh' in _names(calls), 'bootstrap.sh never ran: %s' % calls
    assert rc == 0, stderr
    assert 'amazon-cloudwatch-agent-ctl' not in _names(calls)
    assert "yum install -y amazon-cloudwatch-agent' exited 1" in stderr
    marker = _marker(root)
    assert marker is not None and 'yum install -y amazon-cloudwatch-agent' in marker


def test_al2_joins_before_the_package_manager_runs(tmp_path):
    rc, stderr, calls, root = run_user_data(tmp_path, 'bootstrap')
    assert rc == 0, stderr
    names = _names(calls)
    assert names.index('bootstrap.sh') < names.index('yum')
    bootstrap_args = dict(calls)['bootstrap.sh']
    assert bootstrap_args.startswith('demo --b64-cluster-ca Q0FEQVRB --apiserver-endpoint https://ABC.gr7.us-east-2.eks.amazonaws.com')
    assert "--kubelet-extra-args --node-labels=capability=gpu" in bootstrap_args
    # The agent is set up after the join, with the configuration written by the script.
    ctl_args = dict(calls)['amazon-cloudwatch-agent-ctl']
    assert '-a fetch-config -m ec2 -s -c file:%s' % (root + _userdata.CWAGENT_CONFIG_PATH) == ctl_args
    with open(root + _userdata.CWAGENT_CONFIG_PATH) as handle:
        assert json.load(handle)['metrics']['namespace'] == 'CWAgent'
    assert _marker(root) is None


@pytest.mark.parametrize('mode, expected', [
    ({'CTL_MODE': 'fail'}, "amazon-cloudwatch-agent-ctl -a fetch-config"),
    ({'CURL_MODE': 'fail', 'INSTALL_MODE': 'fail'}, 'yum install -y amazon-cloudwatch-agent'),
])
def test_al2_joins_whichever_agent_step_fails(tmp_path, mode, expected):
    rc, stderr, calls, root = run_user_data(tmp_path, 'bootstrap', **mode)
    assert 'bootstrap.sh' in _names(calls) and rc == 0, (calls, stderr)
    assert expected in _marker(root)


def test_al2_a_failed_bootstrap_still_fails_the_script(tmp_path):
    rc, calls = [run_user_data(tmp_path, 'bootstrap', BOOTSTRAP_RC='3')[i] for i in (0, 2)]
    assert rc == 3
    assert 'yum' not in _names(calls), 'no agent set-up on a node that did not join'


# ---------------------------------------------------------------------------------------------
# AL2023 (nodeadm): the join runs after this script, whatever it returns (nodeadm-run.service is
# ordered after cloud-final.service without requiring it); the script must end, and end soon.


def test_al2023_script_ends_cleanly_when_the_agent_package_cannot_be_installed(tmp_path):
    rc, stderr, calls, root = run_user_data(tmp_path, 'nodeadm', INSTALL_MODE='fail')
    assert rc == 0, stderr
    assert 'amazon-cloudwatch-agent-ctl' not in _names(calls)
    assert "dnf install -y amazon-cloudwatch-agent' exited 1" in stderr
    assert 'dnf install -y amazon-cloudwatch-agent' in _marker(root)


@pytest.mark.parametrize('flavour', sorted(PACKAGE_MANAGER))
def test_the_package_install_is_time_bounded(tmp_path, flavour):
    rc, stderr, calls = run_user_data(tmp_path, flavour)[:3]
    assert rc == 0, stderr
    limits = [args for name, args in calls if name == 'timeout']
    assert len(limits) == 1 and limits[0].endswith(' %s install -y amazon-cloudwatch-agent' % PACKAGE_MANAGER[flavour]), calls
    seconds = int(limits[0].split()[0])
    assert 0 < seconds <= 600, 'an unreachable repository would delay the AL2023 join by %d s' % seconds
    assert _names(calls).index('timeout') == _names(calls).index(PACKAGE_MANAGER[flavour]) - 1


# ---------------------------------------------------------------------------------------------
# Bottlerocket: settings, not a script; nothing to run here.


def test_every_ami_family_with_a_script_is_run_here():
    """A new AMI family either has its shell part run by these tests (FLAVOURS) or renders no
    script at all, as Bottlerocket's TOML settings."""
    flavours = {family.user_data for family in _gpu.AMI_TYPES.values()}
    assert set(FLAVOURS) <= flavours
    for flavour in flavours - set(FLAVOURS):
        text = _userdata.render(flavour, demo_cluster(), 'gpu-nodes', 'us-east-2', {'capability': 'gpu'}, [])
        assert '#!/' not in text and 'text/x-shellscript' not in text, flavour
