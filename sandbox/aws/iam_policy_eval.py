"""IAM policy evaluation for the sandbox's AWS emulator: pure functions, no moto, no I/O.

What AWS documents for identity-based policies (IAM User Guide, "Policy evaluation logic" and
"IAM JSON policy elements: Condition operators"), as far as the emulator needs it:

- an explicit Deny in any statement wins; else any Allow allows; else the request is denied;
- a statement applies when its Action (or NotAction) matches the action, case-insensitively,
  with ``*`` and ``?`` wildcards; its Resource (or NotResource) matches the resource ARN,
  case-sensitively, with the same wildcards; and every condition in it holds;
- within a Condition block every operator and every key must hold (AND); the values listed for
  one key are alternatives (OR); a key missing from the request context makes a condition false,
  except for the negated operators (``StringNotEquals``...), ``...IfExists`` and ``Null``;
  ``ForAllValues:`` holds for a missing key, ``ForAnyValue:`` does not.

Operators evaluated: String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,Like,NotLike},
Arn{Equals,NotEquals,Like,NotLike}, Bool, Null, each with ``IfExists`` and the
``ForAllValues:`` / ``ForAnyValue:`` qualifiers. Any other operator (Numeric*, Date*, IpAddress,
BinaryEquals) raises UnsupportedCondition: the emulator refuses to guess, and says which.
Policy variables (``${aws:username}``) are not substituted.
Unit tests: tests/sandbox/unit/test_iam_policy_eval.py.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable


class UnsupportedCondition(Exception):
    """A condition operator the emulator cannot evaluate."""


_STRING_OPS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
               "StringLike", "StringNotLike", "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike", "Bool"}


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's glob: ``*`` any run of characters, ``?`` one character, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike compares the six colon-separated parts, each with wildcards (the resource part
    keeps its own colons)."""
    p_parts, v_parts = pattern.split(":", 5), value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(wildcard_match(p, v) for p, v in zip(p_parts, v_parts))


def _one(op: str, expected: str, actual: str) -> bool:
    """The positive form of ``op`` for one expected and one actual value."""
    if op in ("StringEquals", "ArnEquals"):
        return actual == expected
    if op == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if op == "StringLike":
        return wildcard_match(expected, actual)
    if op == "ArnLike":
        return _arn_like(expected, actual)
    if op == "Bool":
        return actual.lower() == str(expected).lower()
    raise UnsupportedCondition(op)


_POSITIVE = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
             "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def condition_holds(operator: str, key: str, expected: Any, context: dict[str, Any]) -> bool:
    """One operator on one key. ``context`` maps keys (any case) to a string or a list."""
    qualifier = None
    if ":" in operator and operator.split(":", 1)[0] in ("ForAllValues", "ForAnyValue"):
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    lowered = {k.lower(): v for k, v in context.items()}
    present = key.lower() in lowered
    actual = [str(v) for v in _as_list(lowered.get(key.lower()))]
    expected_values = [str(v).lower() if isinstance(v, bool) else str(v) for v in _as_list(expected)]

    if operator == "Null":
        # Null: true means the key must be absent, false that it must be present.
        wants_absent = expected_values and expected_values[0].lower() == "true"
        return (not present) if wants_absent else present
    if operator not in _STRING_OPS:
        raise UnsupportedCondition(
            "condition operator %s (key %s): the sandbox's AWS emulator evaluates only String*, Arn*, Bool and Null"
            % (operator, key))
    if not present:
        if if_exists or qualifier == "ForAllValues":
            return True
        return operator in _POSITIVE  # a negated operator holds for a missing key
    negated = operator in _POSITIVE
    positive = _POSITIVE.get(operator, operator)

    def matches(value: str) -> bool:
        return any(_one(positive, e, value) for e in expected_values)

    if qualifier == "ForAllValues":
        result = all(matches(v) for v in actual)
        return result if not negated else all(not matches(v) for v in actual)
    if qualifier == "ForAnyValue":
        result = any(matches(v) for v in actual)
        return result if not negated else any(not matches(v) for v in actual)
    # A single-valued key (a multi-valued one without qualifier: any of its values).
    hit = any(matches(v) for v in actual)
    return not hit if negated else hit


def statement_applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, Any]) -> bool:
    if "NotAction" in statement:
        if any(wildcard_match(p, action, ignore_case=True) for p in _as_list(statement["NotAction"])):
            return False
    elif not any(wildcard_match(p, action, ignore_case=True) for p in _as_list(statement.get("Action"))):
        return False
    if "NotResource" in statement:
        if any(wildcard_match(p, resource) for p in _as_list(statement["NotResource"])):
            return False
    elif not any(wildcard_match(p, resource) for p in _as_list(statement.get("Resource"))):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not condition_holds(operator, key, expected, context):
                return False
    return True


def _statements(document: Any) -> Iterable[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document)
    return _as_list(document.get("Statement"))


def evaluate(documents: Iterable[Any], action: str, resource: str, context: dict[str, Any] | None = None) -> str:
    """``"Allow"``, ``"ExplicitDeny"`` or ``"ImplicitDeny"`` for one action on one resource."""
    context = context or {}
    allowed = False
    for document in documents:
        for statement in _statements(document):
            if statement_applies(statement, action, resource, context):
                if statement.get("Effect") == "Deny":
                    return "ExplicitDeny"
                if statement.get("Effect") == "Allow":
                    allowed = True
    return "Allow" if allowed else "ImplicitDeny"
