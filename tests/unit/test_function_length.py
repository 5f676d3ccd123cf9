"""No function or method of the collection's plugins is longer than 50 lines (docstring and
comments included), so each reads as one job, as in the collections we stand beside. A longer one
fails here with its place and length; split it where its phases are."""
import ast
import pathlib

MAX_LINES = 50
PLUGINS = pathlib.Path(__file__).resolve().parents[2] / "plugins"


def _long_functions():
    for path in sorted(PLUGINS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    yield "%s:%d %s (%d lines)" % (path.relative_to(PLUGINS.parent), node.lineno, node.name, length)


def test_plugins_have_no_function_over_50_lines():
    found = list(_long_functions())
    assert not found, "functions over %d lines: %s" % (MAX_LINES, "; ".join(found))


def test_the_check_sees_a_long_function(tmp_path):
    module = tmp_path / "plugins" / "modules" / "long.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n" + "    x = 1\n" * MAX_LINES)
    saved = globals()["PLUGINS"]
    globals()["PLUGINS"] = tmp_path / "plugins"
    try:
        assert [f.split(" ", 1)[1] for f in _long_functions()] == ["f (%d lines)" % (MAX_LINES + 1)]
    finally:
        globals()["PLUGINS"] = saved
