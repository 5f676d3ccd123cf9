"""What genai.stack's code needs from the execution environment (meta/execution-environment.yml), read from
the code itself, and what the EE provides, read from its definition.

Needs:
  - Python distributions: the top-level names every Python file under plugins/ imports (try/except ImportError
    blocks and importlib.import_module('...') included), and the Python the roles run on the controller
    (roles/*/files/**/*.py, and `python -c` code in command tasks), less the standard library, ansible,
    ansible_collections and relative imports; each mapped to its pip distribution.
  - Programs: what plugins run (get_bin_path/shutil.which with a literal name, run_command/subprocess/os
    with a literal argv[0]) and what the command/shell/raw tasks of roles/ and playbooks/ run (argv[0] or
    the first word of cmd; `{{ var }}` resolved through the role's defaults/vars when those give a plain name).
  - Collections: those plugins import from and whose modules tasks call.
Provided:
  - Python: the EE's dependencies.python file (requirements.txt), the Python requirements each collection of
    its dependencies.galaxy file (requirements.yml) declares (read from the installed collection the way
    ansible-builder's introspection reads it), and the direct requirements of ansible-core/ansible-runner
    (dependencies.ansible_core/ansible_runner).
  - Programs: the base image's (BASE_IMAGE_PROGRAMS), ansible-core's console scripts, packages of the EE's
    dependencies.system file (bindep.txt), and what additional_build_steps writes to /usr/(local/)bin.

`python tests/unit/_ee_contents.py introspected` prints the Python distributions ansible-builder's
introspection must resolve (tests/docs/check-ee.sh checks its output for each); `report` prints every need and where
the EE gets it; `check` prints what it lacks.
tests/unit/test_ee_contents.py asserts nothing needed is missing.
"""
import ast
import functools
import glob
import importlib.metadata
import os
import re
import shlex
import sys

import yaml
from packaging.requirements import InvalidRequirement, Requirement

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
EE_FILE = os.path.join('meta', 'execution-environment.yml')

# Programs assumed in the base image (quay.io/ansible/awx-ee, CentOS Stream 9): its shells and the Python
# that runs ansible (a task's `{{ ansible_playbook_python }}` counts as python3).
BASE_IMAGE_PROGRAMS = frozenset(('sh', 'bash', 'python3', 'python'))
PYTHON_VARIABLES = frozenset(('ansible_playbook_python', 'ansible_python_interpreter'))
# Import names whose pip distribution packages_distributions() cannot tell alone: any of these provides it.
DISTRIBUTIONS = {
    'psycopg2': ('psycopg2', 'psycopg2-binary'),
}
# Programs whose bindep.txt package has another name (none yet: e.g. 'ssh': 'openssh-clients').
PROGRAM_PACKAGES = {}
# Test tools in collections' requirements files: not runtime requirements of the EE.
TEST_ONLY = frozenset(('pytest', 'pytest-mock', 'pytest-xdist', 'mock', 'coverage', 'tox'))
IGNORED_IMPORTS = frozenset(('__future__', 'ansible', 'ansible_collections'))
COLLECTIONS_ALWAYS_THERE = frozenset(('ansible.builtin', 'ansible.legacy', 'genai.stack'))
COMMAND_MODULES = frozenset(p + m for p in ('', 'ansible.builtin.', 'ansible.legacy.') for m in ('command', 'shell', 'raw'))
TASK_LISTS = ('block', 'rescue', 'always')
PLAY_TASK_LISTS = ('pre_tasks', 'tasks', 'post_tasks', 'handlers')
FQCN = re.compile(r'^([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+$')
SIMPLE_VARIABLE = re.compile(r'^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$')
INSTALLED_BINARY = re.compile(r'/usr/(?:local/)?bin/([A-Za-z0-9._+-]+)')


def normalize(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def relative(root, path):
    return os.path.relpath(path, root)


# -- needs: Python ------------------------------------------------------------------------------------


def _literal_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_name(node):
    """('subprocess', 'Popen') for subprocess.Popen(...), (None, 'run_command') for x.y.run_command(...)."""
    func = node.func
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute):
        return (func.value.id if isinstance(func.value, ast.Name) else None), func.attr
    return None, None


def imported_names(tree):
    """[(top-level module name, line)] of every absolute import and importlib.import_module('literal')."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name.split('.')[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split('.')[0], node.lineno))
        elif isinstance(node, ast.Call) and _call_name(node)[1] in ('import_module', '__import__') and node.args:
            name = _literal_str(node.args[0])
            if name and not name.startswith('.'):
                found.append((name.split('.')[0], node.lineno))
    return found


def imported_collections(tree):
    """[('amazon.aws', line)] for every import from ansible_collections.<namespace>.<name>."""
    found = []
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        for name in names:
            parts = name.split('.')
            if parts[0] == 'ansible_collections' and len(parts) >= 3:
                found.append(('%s.%s' % (parts[1], parts[2]), node.lineno))
    return found


def third_party(name):
    return name not in sys.stdlib_module_names and name not in IGNORED_IMPORTS


def _parse(path, source=None):
    if source is None:
        with open(path, encoding='utf-8') as handle:
            source = handle.read()
    return ast.parse(source, filename=path)


def controller_python_files(root):
    """Python that runs in the EE: the plugins, and the scripts roles run on the controller."""
    files = sorted(glob.glob(os.path.join(root, 'plugins', '**', '*.py'), recursive=True))
    return files + sorted(glob.glob(os.path.join(root, 'roles', '*', 'files', '**', '*.py'), recursive=True))


# -- needs: programs ----------------------------------------------------------------------------------

# playbooks/awx/configure.yml configures AWX from a workstation (docs/awx.md section 2); it does not run in the EE.
NOT_IN_THE_EE = (os.path.join('playbooks', 'awx') + os.sep,)
RUNNERS = {
    None: ('run_command',),
    'subprocess': ('Popen', 'run', 'call', 'check_call', 'check_output', 'getoutput', 'getstatusoutput'),
    'os': ('system', 'popen', 'execv', 'execve', 'execvp', 'execvpe', 'execl', 'execlp', 'spawnv', 'spawnvp'),
}


def _program_of_argument(node):
    """The program a run call's first argument names, '' when it is not a literal."""
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        first = _literal_str(node.elts[0])
        return os.path.basename(first) if first else ''
    text = _literal_str(node)
    if text:
        words = shlex.split(text)
        return os.path.basename(words[0]) if words else ''
    return ''


def python_programs(tree):
    """([(program, line)], [lines of run calls whose program is not a literal]) of a Python file."""
    programs, dynamic = [], []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        receiver, name = _call_name(node)
        if name == 'get_bin_path' or (receiver == 'shutil' and name == 'which'):
            program = _literal_str(node.args[0])
        elif name in RUNNERS[None] or (receiver in RUNNERS and name in RUNNERS[receiver]):
            program = _program_of_argument(node.args[0])
        else:
            continue
        if program:
            programs.append((program, node.lineno))
        else:
            dynamic.append(node.lineno)
    return programs, dynamic


_SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


class _LineLoader(_SAFE_LOADER):  # pylint: disable=too-many-ancestors
    """Keeps each mapping's line (1-based) under the key '__line__'."""


def _construct_mapping(loader, node, deep=False):
    mapping = yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)
    mapping['__line__'] = node.start_mark.line + 1
    return mapping


def _construct_tagged(loader, _suffix, node):
    """Ansible's tags (!unsafe, !vault): their plain value."""
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    return loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else _construct_mapping(loader, node)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_multi_constructor('!', _construct_tagged)


def _load_lines(path):
    with open(path, encoding='utf-8') as handle:
        return yaml.load(handle, Loader=_LineLoader)  # nosec B506 - a SafeLoader that adds line numbers


def _tasks(items):
    for task in items or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in TASK_LISTS:
            if isinstance(task.get(key), list):
                yield from _tasks(task[key])


def task_files(root):
    """[(path, [task])] of the roles' tasks/handlers files and the playbooks' plays."""
    found = []
    for path in sorted(glob.glob(os.path.join(root, 'roles', '*', 'tasks', '*.yml'))
                       + glob.glob(os.path.join(root, 'roles', '*', 'handlers', '*.yml'))):
        found.append((path, list(_tasks(_load_lines(path)))))
    for path in sorted(glob.glob(os.path.join(root, 'playbooks', '**', '*.yml'), recursive=True)
                       + glob.glob(os.path.join(root, 'site.yml'))):
        if relative(root, path).startswith(NOT_IN_THE_EE):
            continue
        content = _load_lines(path)
        plays = [p for p in content if isinstance(p, dict) and 'hosts' in p] if isinstance(content, list) else []
        found.append((path, [t for play in plays for key in PLAY_TASK_LISTS for t in _tasks(play.get(key))]))
    return found


def _role_variables(root, path):
    """The plain-string variables of the role a tasks file belongs to (defaults, then vars)."""
    parts = relative(root, path).split(os.sep)
    return _variables_of_role(root, parts[1]) if parts[0] == 'roles' else {}


@functools.lru_cache(maxsize=None)
def _variables_of_role(root, role):
    variables = {}
    for kind in ('defaults', 'vars'):
        main = os.path.join(root, 'roles', role, kind, 'main.yml')
        if os.path.exists(main):
            with open(main, encoding='utf-8') as handle:
                content = yaml.load(handle, Loader=_SAFE_LOADER) or {}  # nosec B506 - a safe loader
            variables.update((k, v) for k, v in content.items() if isinstance(v, str))
    return variables


def _command_argv(task, module):
    """The task's argv as a list of strings, from argv, cmd or the free form (first word on)."""
    value = task[module]
    args = task.get('args') if isinstance(task.get('args'), dict) else {}
    if isinstance(value, dict):
        args = dict(args, **value)
    elif isinstance(value, str):
        args = dict(args, cmd=value)
    if isinstance(args.get('argv'), list):
        return [str(a) for a in args['argv']]
    cmd = (args.get('cmd') or args.get('_raw_params') or '').strip()
    if cmd.startswith(('{{', '"{{', "'{{")) and '}}' in cmd:  # a templated program: keep the template whole
        return [cmd[:cmd.index('}}') + 2].strip('\'"')] + cmd[cmd.index('}}') + 2:].split()
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = cmd.split()
    while words and re.match(r'^[A-Za-z_][A-Za-z0-9_]*=', words[0]):
        words.pop(0)  # VAR=value before the program in a shell command
    return words


def _resolve_program(word, variables):
    """The program a task's first word names, or None when a template hides it."""
    match = SIMPLE_VARIABLE.match(word.strip())
    if match and match.group(1) in PYTHON_VARIABLES:
        return 'python3'
    if match and '{{' not in variables.get(match.group(1), '{{'):
        word = variables[match.group(1)].strip()
    if '{{' in word or '{%' in word:
        return None
    return os.path.basename(word)


def task_needs(root):
    """{'programs': [(program, where)], 'templated': [(argv0, where)], 'python': [(import, where)],
    'collections': [(namespace.name, where)]} of the command tasks and module calls of roles and playbooks."""
    needs = {'programs': [], 'templated': [], 'python': [], 'collections': []}
    for path, tasks in task_files(root):
        variables = _role_variables(root, path)
        for task in tasks:
            where = '%s:%s' % (relative(root, path), task.get('__line__', '?'))
            for key in task:
                match = FQCN.match(str(key))
                if match and '%s.%s' % match.groups() not in COLLECTIONS_ALWAYS_THERE:
                    needs['collections'].append(('%s.%s' % match.groups(), where))
            module = next((m for m in COMMAND_MODULES if m in task), None)
            argv = _command_argv(task, module) if module else []
            if not argv:
                continue
            program = _resolve_program(argv[0], variables)
            if program is None:
                needs['templated'].append((argv[0], where))
                continue
            needs['programs'].append((program, where))
            if program.startswith('python') and argv[1:2] == ['-c'] and len(argv) > 2 and '{{' not in argv[2]:
                needs['python'].extend((name, where) for name, _line in imported_names(ast.parse(argv[2])))
    return needs


def code_needs(root):
    """The same keys as task_needs (plus 'dynamic': run calls with no literal program) for the Python files."""
    needs = {'programs': [], 'templated': [], 'python': [], 'collections': [], 'dynamic': []}
    for path in controller_python_files(root):
        tree = _parse(path)
        rel = relative(root, path)
        needs['python'].extend((name, '%s:%d' % (rel, line)) for name, line in imported_names(tree))
        needs['collections'].extend((name, '%s:%d' % (rel, line)) for name, line in imported_collections(tree)
                                    if name not in COLLECTIONS_ALWAYS_THERE)
        programs, dynamic = python_programs(tree)
        needs['programs'].extend((name, '%s:%d' % (rel, line)) for name, line in programs)
        needs['dynamic'].extend('%s:%d' % (rel, line) for line in dynamic)
    return needs


def all_needs(root):
    needs = code_needs(root)
    for key, values in task_needs(root).items():
        needs[key].extend(values)
    needs['python'] = [(name, where) for name, where in needs['python'] if third_party(name)]
    return needs


# -- what the EE provides -----------------------------------------------------------------------------


def ee_definition(root):
    with open(os.path.join(root, EE_FILE), encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def ee_path(root, entry):
    """The file a dependencies entry (python, system, galaxy) names, relative to the EE file's directory."""
    name = ee_definition(root)['dependencies'][entry]
    return os.path.normpath(os.path.join(root, os.path.dirname(EE_FILE), name))


def requirement_names(path):
    """{normalized distribution: line} of a pip requirements file (-r followed), as introspection reads it."""
    names = {}
    with open(path, encoding='utf-8') as handle:
        lines = [re.sub(r'(?:^|\s+)#.*$', '', line).strip() for line in handle]
    for line in filter(None, lines):
        if line.startswith(('-r', '--requirement')):
            names.update(requirement_names(os.path.join(os.path.dirname(path), line.split(None, 1)[1])))
            continue
        try:
            names[normalize(Requirement(line).name)] = line
        except InvalidRequirement:
            continue
    return names


def installed_collection(name):
    """The directory of an installed collection (the ansible package's copies in this venv), or None."""
    import ansible_collections  # pylint: disable=import-outside-toplevel
    for base in list(ansible_collections.__path__):
        candidate = os.path.join(base, *name.split('.'))
        if os.path.exists(os.path.join(candidate, 'MANIFEST.json')):
            return candidate
    return None


def collection_python_requirements(path):
    """(file, {distribution: line}) a collection declares, read as ansible-builder's introspection does:
    meta/execution-environment.yml's dependencies.python, else requirements.txt at its root."""
    for ext in ('yml', 'yaml'):
        meta = os.path.join(path, 'meta', 'execution-environment.' + ext)
        if os.path.exists(meta):
            with open(meta, encoding='utf-8') as handle:
                python = ((yaml.safe_load(handle) or {}).get('dependencies') or {}).get('python')
            return (os.path.join(path, python), requirement_names(os.path.join(path, python))) if python else (meta, {})
    requirements = os.path.join(path, 'requirements.txt')
    return requirements, (requirement_names(requirements) if os.path.exists(requirements) else {})


def ee_collections(root):
    with open(ee_path(root, 'galaxy'), encoding='utf-8') as handle:
        return [c['name'] if isinstance(c, dict) else c for c in yaml.safe_load(handle)['collections']]


def _core_packages(root):
    dependencies = ee_definition(root)['dependencies']
    return [Requirement(dependencies[key]['package_pip']).name
            for key in ('ansible_core', 'ansible_runner') if (dependencies.get(key) or {}).get('package_pip')]


def provided_distributions(root):
    """{normalized distribution: where the EE gets it}."""
    provided = {}
    for package in _core_packages(root):
        try:
            requires = importlib.metadata.requires(package) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if not requirement.marker or 'extra' not in str(requirement.marker):
                provided[normalize(requirement.name)] = '%s (a requirement of dependencies: %s)' % (requirement.name, package)
    for name in ee_collections(root):
        path = installed_collection(name)
        if path:
            source, names = collection_python_requirements(path)
            for dist, line in names.items():
                provided[dist] = '%s (collection %s: %s)' % (line, name, os.path.relpath(source, os.path.dirname(path)))
    python = ee_path(root, 'python')
    for dist, line in requirement_names(python).items():
        provided[dist] = '%s (%s)' % (line, relative(root, python))
    return provided


def provided_programs(root):
    """{program: where the EE gets it}."""
    provided = {p: 'the base image (assumed)' for p in BASE_IMAGE_PROGRAMS}
    for package in _core_packages(root):
        try:
            points = importlib.metadata.distribution(package).entry_points
        except importlib.metadata.PackageNotFoundError:
            continue
        provided.update((e.name, 'dependencies: %s' % package) for e in points if e.group == 'console_scripts')
    system = ee_path(root, 'system')
    with open(system, encoding='utf-8') as handle:
        packages = {line.split()[0] for line in handle if line.strip() and not line.startswith('#')}
    for package in packages:
        provided[package] = relative(root, system)
    for program, package in PROGRAM_PACKAGES.items():
        if package in packages:
            provided[program] = '%s (package %s)' % (relative(root, system), package)
    steps = ee_definition(root).get('additional_build_steps') or {}
    for stage, lines in steps.items():
        for line in lines if isinstance(lines, list) else [lines]:
            for program in INSTALLED_BINARY.findall(str(line)):
                provided.setdefault(program, '%s additional_build_steps.%s' % (EE_FILE, stage))
    return provided


# -- the check ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _packages_distributions():
    return importlib.metadata.packages_distributions()


def distribution_of(name):
    """(accepted distributions, problem or None) of an import name."""
    if name in DISTRIBUTIONS:
        return DISTRIBUTIONS[name], None
    found = sorted(set(_packages_distributions().get(name, ())))
    if len(found) == 1:
        return tuple(found), None
    if found:
        return tuple(found), 'is provided by several distributions here (%s): say which in DISTRIBUTIONS' % ', '.join(found)
    return (), 'is not installed here, so its distribution is unknown: install it in the venv or add it to DISTRIBUTIONS'


def _grouped(pairs):
    """[(name, 'file:line, file:line')] in the order the names first appear."""
    places = {}
    for name, where in pairs:
        places.setdefault(name, [])
        if where not in places[name]:
            places[name].append(where)
    return [(name, ', '.join(wheres)) for name, wheres in places.items()]


def problems(root):
    """The EE's shortfalls against the code under root, each naming where the need is and where to add it."""
    needs = all_needs(root)
    found = []
    dists = provided_distributions(root)
    python_file = relative(root, ee_path(root, 'python'))
    for name, where in _grouped(needs['python']):
        accepted, problem = distribution_of(name)
        if problem:
            found.append('%s imports %s, which %s (in tests/unit/_ee_contents.py)' % (where, name, problem))
        elif not any(normalize(d) in dists for d in accepted):
            found.append('%s imports %s (pip: %s), which the EE does not install: add it to %s (the EE\'s dependencies.python)'
                         % (where, name, ' or '.join(accepted), python_file))
    programs = provided_programs(root)
    for program, where in _grouped(needs['programs']):
        if program not in programs:
            found.append('%s runs %s, which the EE does not install: add its package to %s (dependencies.system; a differently '
                         'named package also in PROGRAM_PACKAGES) or an install step to additional_build_steps in %s, as helm and '
                         'kubectl' % (where, program, relative(root, ee_path(root, 'system')), EE_FILE))
    collections = ee_collections(root)
    for name, where in _grouped(needs['collections']):
        if name not in collections:
            found.append('%s uses collection %s, which the EE does not install: add it to %s (dependencies.galaxy)'
                         % (where, name, relative(root, ee_path(root, 'galaxy'))))
    if found and (needs['templated'] or needs['dynamic']):
        found.append('not checked (their program is templated or not a literal): %s'
                     % '; '.join(['%s runs %s' % (where, argv0) for argv0, where in needs['templated']] + needs['dynamic']))
    return found


def introspected_distributions(root):
    """The Python distributions ansible-builder's introspection must put in the EE: those of the code's imports that
    come from requirements.txt or a collection (not ansible-core's own), and the runtime requirements the collections
    the code uses declare."""
    dists = provided_distributions(root)
    found = {}
    for name, _where in all_needs(root)['python']:
        accepted, _problem = distribution_of(name)
        for dist in accepted:
            if normalize(dist) in dists and 'dependencies:' not in dists[normalize(dist)]:
                found[normalize(dist)] = Requirement(dists[normalize(dist)].split(' (')[0]).name
    for name in sorted({n for n, _w in all_needs(root)['collections']}):
        path = installed_collection(name)
        for dist, line in (collection_python_requirements(path)[1] if path else {}).items():
            if dist not in TEST_ONLY:
                found.setdefault(dist, Requirement(line).name)
    return sorted(found.values(), key=str.lower)


def report(root):
    needs = all_needs(root)
    dists, programs = provided_distributions(root), provided_programs(root)
    lines = ['Python imports: distribution, where the EE gets it; where the code imports it']
    for name, where in _grouped(needs['python']):
        accepted = distribution_of(name)[0]
        source = next((dists[normalize(d)] for d in accepted if normalize(d) in dists), 'MISSING')
        lines.append('  %s: %s, %s; %s' % (name, ' or '.join(accepted) or '?', source, where))
    lines += ['Programs: where the EE gets it; where the code runs it']
    lines += ['  %s: %s; %s' % (p, programs.get(p, 'MISSING'), w) for p, w in _grouped(needs['programs'])]
    lines += ['Collections: files that use each']
    lines += ['  %s: %s' % (c, ', '.join(sorted({x.split(':')[0] for x in w.split(', ')}))) for c, w in _grouped(needs['collections'])]
    lines += ['Not checked (templated or dynamic):'] + ['  %s  %s' % (a, w) for a, w in needs['templated']]
    lines += ['  %s (run call, program not a literal)' % w for w in needs['dynamic']]
    return '\n'.join(lines)


def main(argv):
    if argv[1:] == ['introspected']:
        print('\n'.join(introspected_distributions(ROOT)))
    elif argv[1:] == ['report']:
        print(report(ROOT))
    elif argv[1:] == ['check']:
        found = problems(ROOT)
        print('\n'.join(found) or 'the EE provides everything the code needs')
        return 1 if found else 0
    else:
        print('usage: %s introspected|report|check' % argv[0], file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
