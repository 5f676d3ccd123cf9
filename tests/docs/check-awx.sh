#!/usr/bin/env bash
# playbooks/awx/configure.yml (AWX / Automation Platform configuration as code) is checked
# without a controller, which this network does not have:
#  - ansible-playbook --syntax-check (awx.awx resolves from the `ansible` package);
#  - ansible-lint with the production profile;
#  - every stack playbook under playbooks/ has a job template, and every job template's
#    playbook exists (a stack still being written is reported, not failed).
# What it cannot check: that the AWX API accepts the objects; docs/awx.md says how to run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_BIN="$ROOT/.venv/bin"
PLAYBOOK=playbooks/awx/configure.yml
export PATH="$VENV_BIN:$PATH" ANSIBLE_NOCOLOR=1
cd "$ROOT"

echo "check-awx: ansible-playbook --syntax-check $PLAYBOOK"
ansible-playbook --syntax-check -i localhost, "$PLAYBOOK" >/dev/null

echo "check-awx: ansible-lint --profile production $PLAYBOOK"
ansible-lint --profile production --nocolor -q "$PLAYBOOK"

echo "check-awx: job templates against playbooks/"
python - "$PLAYBOOK" <<'PY'
import glob, os, sys
import yaml

play = yaml.load(open(sys.argv[1]), Loader=yaml.BaseLoader)[0]
stacks = play['vars']['genai_awx_stacks']
fixed = {'site', 'teardown'}
# Run where the policy is reviewed and handed to an AWS administrator, not as a job against clusters:
# it only writes a file (the generated IAM policy) on the machine it runs on.
workstation_tools = {'iam_policy'}
fixed |= workstation_tools
present = {os.path.basename(p)[:-4] for p in glob.glob('playbooks/*.yml')}
untemplated = sorted(present - fixed - set(stacks))
if untemplated:
    print('check-awx: FAILED: playbooks without a job template (add them to genai_awx_stacks): '
          + ', '.join('playbooks/%s.yml' % name for name in untemplated))
    sys.exit(1)
for name in sorted(set(stacks) - present):
    print('check-awx: note: genai_awx_stacks names playbooks/%s.yml, which does not exist yet; '
          'AWX refuses a job template whose playbook is not in the project' % name)
print('check-awx: %d stack job templates + site, site (check), teardown; not job templates (workstation tools): %s'
      % (len(stacks), ', '.join('playbooks/%s.yml' % n for n in sorted(workstation_tools))))
PY
echo "check-awx: OK (not run against a live AWX: none is reachable here)"
