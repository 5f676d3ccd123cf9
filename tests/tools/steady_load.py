"""A steady load on every GPU Node of the sandbox, for suites whose tests assert a node group's
size: the sandbox's node agents publish what the Nodes run (sandbox/cloudwatch/publisher.py) and
its evaluator applies the alarms' scaling policies, so idle GPUs would make the role's scale-in
alarm shrink a group to its minimum a few minutes after it appears, as on a real account. At
25 % GPU and 30 % CPU, between every threshold of the role's alarms, no alarm moves the size a
test set. The scaling loop's own test (tests/playbooks/test_cluster_gpu_loop.py) lifts it."""
import contextlib
import json
import os

STEADY = {'*': {'gpu': 25, 'cpu': 30}}


def _path():
    path = os.environ.get('SANDBOX_CLOUDWATCH_LOAD')
    if not path:
        raise RuntimeError('SANDBOX_CLOUDWATCH_LOAD is not set: is the sandbox env (45-alarms) sourced?')
    return path


def read():
    try:
        with open(_path(), encoding='utf-8') as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def write(load):
    """Replace the load file (None removes it)."""
    path = _path()
    if load is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w', encoding='utf-8') as handle:
        json.dump(load, handle)
    os.replace(path + '.tmp', path)


@contextlib.contextmanager
def holding(load):
    """`load` in the load file for the duration, then what was there before."""
    before = read()
    write(load)
    try:
        yield
    finally:
        write(before)
