"""Which option or variable a failed task result blames, read from its structure, never by a
substring search of the message: `name` must not be found in a message about `cluster_name`.

A failure names its options in one of these forms, tried in this order:

- genai.stack modules: `errors`, a list of `{option, message}` (the option as a path, such as
  `scaling_config.desired_size`), returned by every input failure;
- genai.stack role preflight: a message `<role> preflight: <variable>: <rule>`, in the task's
  `msg` or in each failed item of a loop;
- the eks_gpu_ami lookup: a message `eks_gpu_ami: <option>: <text>`, or ansible-core's
  `Invalid value ... for config '<option>' for ... lookup plugin.`;
- ansible-core's argument spec validation of a module (`msg`) or a role (`argument_errors`):
  each message parsed with one anchored pattern of ansible-core's wording, nested options as
  `parent.option` (ansible-core's `found in parent -> child`).

A result in none of these forms names no option; nothing else counts.
"""
import re

_NAME = r"[A-Za-z_][\w.\[\]*]*"
_LIST = r"%s(?:(?:, |\|)%s)*" % (_NAME, _NAME)
# ansible-core adds " found in a -> b" (sometimes quoted, sometimes with a trailing period).
_CONTEXT = r"(?: found in '?(?P<context>%s(?: -> %s)*)'?\.?)?" % (_NAME, _NAME)

# ansible-core 2.19 wording (module_utils/common/parameters.py, validation.py, arg_spec.py).
_CORE_PATTERNS = [re.compile(p) for p in (
    r"^argument '(?P<options>%s)' is of type (?:<class '[\w.]+'>|[\w.]+)%s and we were unable to convert to " % (_NAME, _CONTEXT),
    r"^Elements value for option '(?P<options>%s)'%s is of type " % (_NAME, _CONTEXT),
    r"^value of (?P<options>%s) must be one (?:or more )?of: .*?%s$" % (_NAME, _CONTEXT),
    r"^missing required arguments: (?P<options>%s)%s$" % (_LIST, _CONTEXT),
    r"^parameters are mutually exclusive: (?P<options>%s)%s$" % (_LIST, _CONTEXT),
    r"^one of the following is required: (?P<options>%s)%s$" % (_LIST, _CONTEXT),
    r"^parameters are required together: (?P<options>%s)%s$" % (_LIST, _CONTEXT),
    r"^%s is .* but (?:any|all) of the following are missing: (?P<options>%s)%s$" % (_NAME, _LIST, _CONTEXT),
    r"^missing parameter\(s\) required by '%s': (?P<options>%s)%s$" % (_NAME, _LIST, _CONTEXT),
    r"^Unsupported parameters for \([\w.]+\) module: (?P<options>%s)\. Supported parameters include: " % _LIST,
)]
_PREFLIGHT = re.compile(r"^[a-z][a-z0-9_]* preflight: (?P<option>%s): " % _NAME)
_LOOKUP = re.compile(r"(?:^|: )eks_gpu_ami: (?P<option>%s): " % _NAME)
_LOOKUP_CONFIG = re.compile(r"\bInvalid value .* for config '(?P<option>%s)' for '[\w.]+' lookup plugin\." % _NAME)


def core_options(message):
    """The option paths one ansible-core argument validation message names; [] if not one."""
    for pattern in _CORE_PATTERNS:
        found = pattern.match(message)
        if found:
            context = found.groupdict().get('context')
            prefix = context.replace(' -> ', '.') + '.' if context else ''
            return [prefix + name for name in re.split(r', |\|', found.group('options'))]
    return []


def named_options(result):
    """The options (paths) or role variables a failed task result blames, in order, without repeats."""
    names = []
    errors = result.get('errors')
    if isinstance(errors, list) and errors and all(isinstance(e, dict) and isinstance(e.get('option'), str) for e in errors):
        names = [e['option'] for e in errors]
    elif isinstance(result.get('argument_errors'), list):
        names = [n for message in result['argument_errors'] for n in core_options(str(message))]
    else:
        message = result.get('msg') if isinstance(result.get('msg'), str) else ''
        for pattern in (_PREFLIGHT, _LOOKUP, _LOOKUP_CONFIG):
            found = pattern.search(message)
            if found:
                names = [found.group('option')]
                break
        else:
            names = core_options(message)
    for item in result.get('results') or []:
        if isinstance(item, dict) and item.get('failed'):
            names += named_options(item)
    return list(dict.fromkeys(names))


def blame_problem(expected, result):
    """None when the failure names exactly the expected option(s); otherwise what is wrong.

    `expected` is one option path or a list of them (a failure that rightly names several); the
    comparison is equality of the sets, so naming another option, or one more, is a problem.
    """
    wanted = {expected} if isinstance(expected, str) else set(expected)
    named = named_options(result)
    if not named:
        return 'names no option in a structured form (expected %s)' % sorted(wanted)
    if set(named) != wanted:
        return 'names %s, expected %s' % (named, sorted(wanted))
    return None
