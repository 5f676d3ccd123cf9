"""Every task of every role carries the tag of its phase, so that `--tags verify`, `--skip-tags verify`,
`--tags preflight` and the like select whole phases (docs/roles.md, "Tags").

Read from the roles' task files, with Ansible's rules of inheritance: a block's and an
import_tasks' tags reach every task below them, and so do an import_role's (the stacks import the steps
of genai.stack.common this way, whose tasks carry no tags of their own: they take the phase of where
they are imported); an include_tasks' own tags select the include only, and its `apply` tags reach
the included tasks. For each task the test checks that
- it carries a phase tag, and the right one for where it stands (preflight.yml: preflight,
  verify*.yml: verify, absent.yml: teardown, a Summary task: summary), or `always` for a step
  that only reads what both the converge and verify use; never both converge and verify;
- every include on its way is entered whenever the task is selected by one of its tags
  (the include has that tag, or `always`);
- no include on its way carries a tag the task lacks (skipping that tag would skip the task).
"""
import os

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLES_DIR = os.path.join(ROOT, 'roles')
ROLES = sorted(r for r in os.listdir(ROLES_DIR) if os.path.isfile(os.path.join(ROLES_DIR, r, 'tasks', 'main.yml')))
PHASES = {'preflight', 'converge', 'verify', 'summary', 'teardown'}
INCLUDE = ('include_tasks', 'ansible.builtin.include_tasks')
IMPORT = ('import_tasks', 'ansible.builtin.import_tasks')
IMPORT_ROLE = ('import_role', 'ansible.builtin.import_role')
COMMON = 'genai.stack.common'


def _tags(value):
    if not value:
        return set()
    return {value} if isinstance(value, str) else set(value)


def _target(args):
    return args if isinstance(args, str) else args.get('file')


def _load(tasks_dir, name):
    with open(os.path.join(tasks_dir, name), encoding='utf-8') as stream:
        return yaml.safe_load(stream) or []


def _walk(tasks_dir, name, tasks, inherited, includes):
    """(file, task name, its tags, [(include name, include tags)] on its way) for every task that runs a module."""
    for task in tasks or []:
        own = inherited | _tags(task.get('tags'))
        if any(key in task for key in ('block', 'rescue', 'always')):
            for key in ('block', 'rescue', 'always'):
                yield from _walk(tasks_dir, name, task.get(key), own, includes)
            continue
        module = next((key for key in task if key in INCLUDE + IMPORT + IMPORT_ROLE), None)
        if module in IMPORT_ROLE:
            args = task[module]
            assert args.get('name') == COMMON, '%s: %r imports role %s; only %s is imported' % (name, task.get('name'), args.get('name'), COMMON)
            common_tasks = os.path.join(ROLES_DIR, COMMON.rsplit('.', 1)[1], 'tasks')
            target = '%s.yml' % args['tasks_from']
            # Its tasks stand where they are imported: the importing file says their phase.
            for found in _walk(common_tasks, target, _load(common_tasks, target), own, includes):
                yield (name,) + found[1:]
        elif module in IMPORT:
            target = _target(task[module])
            yield from _walk(tasks_dir, target, _load(tasks_dir, target), own, includes)
        elif module in INCLUDE:
            args = task[module]
            target = _target(args)
            applied = _tags(((args.get('apply') or {}) if isinstance(args, dict) else {}).get('tags'))
            yield from _walk(tasks_dir, target, _load(tasks_dir, target), inherited | applied,
                             includes + [(task.get('name'), own)])
        else:
            yield name, task.get('name'), own, includes


def _expected_phase(filename, task_name):
    if str(task_name).startswith('Summary'):
        return 'summary'
    if filename == 'preflight.yml':
        return 'preflight'
    if filename.startswith('verify'):
        return 'verify'
    if filename == 'absent.yml':
        return 'teardown'
    return None


def tag_problems(role_dir):
    tasks_dir = os.path.join(role_dir, 'tasks')
    problems = []
    for filename, name, tags, includes in _walk(tasks_dir, 'main.yml', _load(tasks_dir, 'main.yml'), set(), []):
        where = '%s: %r' % (filename, name)
        phase = _expected_phase(filename, name)
        if tags >= {'converge', 'verify'} and 'summary' not in tags:
            problems.append('%s is skipped with --skip-tags verify and with --skip-tags converge: tag a step both need always' % where)
        if not tags & (PHASES | {'always'}):
            problems.append('%s carries no phase tag (%s)' % (where, ', '.join(sorted(PHASES))))
        elif phase and phase not in tags:
            problems.append('%s lacks the tag %s' % (where, phase))
        for include, include_tags in includes:
            if not include_tags & (tags | {'always'}):
                problems.append('%s is not reached under --tags %s: include %r is tagged %s'
                                % (where, ','.join(sorted(tags & PHASES)), include, sorted(include_tags)))
            extra = include_tags - tags - {'always'}
            if extra:
                problems.append('%s is skipped with --skip-tags %s: include %r carries it' % (where, ','.join(sorted(extra)), include))
    return problems


@pytest.mark.parametrize('role', ROLES)
def test_every_task_carries_the_tag_of_its_phase(role):
    problems = tag_problems(os.path.join(ROLES_DIR, role))
    assert not problems, '\n'.join(problems)


def _role(tmp_path, files):
    tasks = tmp_path / 'tasks'
    tasks.mkdir()
    for name, content in files.items():
        (tasks / name).write_text(yaml.safe_dump(content))
    return str(tmp_path)


PREFLIGHT = {'name': 'Preflight', 'ansible.builtin.import_tasks': 'preflight.yml', 'tags': ['preflight', 'always']}
CHECK = [{'name': 'Check', 'ansible.builtin.assert': {'that': True}}]
VERIFY = {'name': 'Verify', 'ansible.builtin.include_tasks': {'file': 'verify.yml', 'apply': {'tags': ['verify']}}, 'tags': ['verify']}


def test_a_well_tagged_role_passes(tmp_path):
    role = _role(tmp_path, {
        'main.yml': [PREFLIGHT, {'name': 'Deploy', 'ansible.builtin.include_tasks': 'present.yml', 'tags': ['always']}],
        'preflight.yml': CHECK,
        'present.yml': [{'name': 'Converge', 'tags': ['converge'], 'block': [{'name': 'Install', 'ansible.builtin.debug': {}}]},
                        VERIFY, {'name': 'Summary', 'ansible.builtin.debug': {}, 'tags': ['summary', 'converge']}],
        'verify.yml': CHECK,
    })
    assert tag_problems(role) == []


@pytest.mark.parametrize('main,present,problem', [
    # The preflight imported without its tag.
    ([dict(PREFLIGHT, tags=['always', 'converge'])], None, "preflight.yml: 'Check' lacks the tag preflight"),
    # A converge task without any tag.
    ([PREFLIGHT, {'name': 'Deploy', 'ansible.builtin.include_tasks': 'present.yml', 'tags': ['always']}],
     [{'name': 'Install', 'ansible.builtin.debug': {}}], "present.yml: 'Install' carries no phase tag"),
    # verify.yml's tasks tagged on the include only: they do not inherit it.
    ([PREFLIGHT, {'name': 'Deploy', 'ansible.builtin.include_tasks': 'present.yml', 'tags': ['always']}],
     [dict(VERIFY, **{'ansible.builtin.include_tasks': 'verify.yml'})], "verify.yml: 'Check' carries no phase tag"),
    # genai.stack.common's namespace step imported without a tag: its tasks have none of their own.
    ([PREFLIGHT, {'name': 'Deploy', 'ansible.builtin.include_tasks': 'present.yml', 'tags': ['always']}],
     [{'name': 'Namespace', 'ansible.builtin.import_role': {'name': 'genai.stack.common', 'tasks_from': 'namespace'}}],
     "present.yml: 'Create the namespaces that do not exist yet' carries no phase tag"),
    # A step both phases need, tagged with both: skipping either would skip it.
    ([PREFLIGHT, {'name': 'Deploy', 'ansible.builtin.include_tasks': 'present.yml', 'tags': ['always']}],
     [{'name': 'Read', 'ansible.builtin.debug': {}, 'tags': ['converge', 'verify']}], 'tag a step both need always'),
    # The present path's include not entered under --tags verify.
    ([PREFLIGHT, {'name': 'Deploy', 'ansible.builtin.include_tasks': 'present.yml', 'tags': ['converge']}],
     [VERIFY], 'is not reached under --tags verify'),
    # The present path's include tagged with every phase: --skip-tags verify would skip the converge too.
    ([PREFLIGHT, {'name': 'Deploy', 'ansible.builtin.include_tasks': 'present.yml', 'tags': ['converge', 'verify']}],
     [{'name': 'Install', 'ansible.builtin.debug': {}, 'tags': ['converge']}], 'is skipped with --skip-tags verify'),
])
def test_the_check_catches_a_missing_or_misplaced_tag(tmp_path, main, present, problem):
    files = {'main.yml': main, 'preflight.yml': CHECK, 'verify.yml': CHECK}
    if present is not None:
        files['present.yml'] = present
    problems = tag_problems(_role(tmp_path, files))
    assert any(problem in p for p in problems), problems
