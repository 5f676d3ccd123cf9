"""CloudWatch Metrics Insights, the subset the sandbox evaluates for metric alarms.

A query is parsed into a `Query`; `Query.matches(metric)` says whether a metric (as ListMetrics
returns it) is one of the query's time series; `aggregate()` combines the per-period statistics of
the matched series into the query's value for that period. Anything outside the subset raises
`QueryError` naming the part that is not supported: an alarm whose query the sandbox cannot
evaluate must fail loudly, never sit in INSUFFICIENT_DATA as if no data had come.

The subset, following the documented syntax
(SELECT FUNCTION(metricName) FROM namespace | SCHEMA(...) [WHERE ...] [GROUP BY ...] [ORDER BY ...] [LIMIT n]):
- FUNCTION: AVG, COUNT, MAX, MIN, SUM (keywords are case-insensitive, identifiers are not);
- FROM a namespace (every metric of that name in it, whatever its dimensions), or
  SCHEMA("namespace"[, key ...]) (only the metrics whose dimension keys are exactly those keys;
  with no key, only the metrics without dimensions);
- WHERE key = 'value' and key != 'value', joined by AND.
GROUP BY, ORDER BY and LIMIT make several series, which an alarm cannot use; OR, LIKE, IN and
parentheses in WHERE are not evaluated here. All of them raise QueryError.

Semantics of each function, over the observations of one period of all matched series (the
documented ones: the observations matched by the query): AVG = sum of values / number of
observations; COUNT = number of observations; SUM; MAX; MIN. The statistics per series come from
GetMetricStatistics (Sum, SampleCount, Maximum, Minimum), which lets the combination be exact.
"""
from __future__ import annotations

import dataclasses
import re

FUNCTIONS = ('AVG', 'COUNT', 'MAX', 'MIN', 'SUM')
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<dquoted>"(?:[^"\\]|\\.)*")
    | (?P<squoted>'(?:[^'\\]|\\.)*')
    | (?P<op>!=|=|\(|\)|,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_./:-]*)
    | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
    | (?P<other>\S)
    )""", re.VERBOSE)
_UNSUPPORTED_KEYWORDS = {'GROUP': 'GROUP BY', 'ORDER': 'ORDER BY', 'LIMIT': 'LIMIT', 'OR': 'OR', 'LIKE': 'LIKE', 'IN': 'IN'}


class QueryError(ValueError):
    """A query the sandbox does not evaluate, or a malformed one; the message says which part."""


@dataclasses.dataclass(frozen=True)
class Query:
    function: str
    metric: str
    namespace: str
    schema_keys: tuple | None  # None: FROM namespace; a tuple: SCHEMA(namespace, *keys)
    where: tuple  # ((key, '=' or '!=', value), ...)

    def matches(self, metric):
        """True when `metric` ({'Namespace', 'MetricName', 'Dimensions': [{'Name', 'Value'}]}) is a
        series of this query."""
        if metric.get('Namespace') != self.namespace or metric.get('MetricName') != self.metric:
            return False
        dimensions = {d['Name']: d['Value'] for d in metric.get('Dimensions') or []}
        if self.schema_keys is not None and set(dimensions) != set(self.schema_keys):
            return False
        for key, op, value in self.where:
            if op == '=' and dimensions.get(key) != value:
                return False
            if op == '!=' and dimensions.get(key) == value:
                return False
        return True


def _tokens(text):
    out = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        value = match.group(kind)
        if kind == 'other':
            raise QueryError('unexpected character %r in the query' % value)
        if kind == 'dquoted':
            out.append(('ident', _unescape(value[1:-1])))
        elif kind == 'squoted':
            out.append(('string', _unescape(value[1:-1])))
        elif kind == 'word':
            out.append(('word', value))
        else:
            out.append((kind, value))
    return out


def _unescape(text):
    return re.sub(r'\\(.)', r'\1', text)


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        if token[0] is None:
            raise QueryError('the query ends too early: %r' % self.text)
        self.pos += 1
        return token

    def keyword(self, word):
        kind, value = self.take()
        if kind != 'word' or value.upper() != word:
            raise QueryError('expected %s, found %r' % (word, value))

    def symbol(self, symbol):
        kind, value = self.take()
        if kind != 'op' or value != symbol:
            raise QueryError('expected %r, found %r' % (symbol, value))

    def identifier(self, what):
        kind, value = self.take()
        if kind not in ('word', 'ident'):
            raise QueryError('expected %s, found %r' % (what, value))
        return value

    def refuse_unsupported(self):
        kind, value = self.peek()
        if kind == 'word' and value.upper() in _UNSUPPORTED_KEYWORDS:
            raise QueryError('%s is not evaluated by the sandbox (an alarm needs one series; '
                             'supported: SELECT AVG|COUNT|MAX|MIN|SUM(metric) FROM namespace|SCHEMA(...) '
                             "[WHERE key = 'value' [AND key != 'value' ...]])" % _UNSUPPORTED_KEYWORDS[value.upper()])


def parse(text):
    """The Query for `text`, or QueryError."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError('an empty query')
    p = _Parser(text)
    p.keyword('SELECT')
    kind, function = p.take()
    if kind != 'word' or function.upper() not in FUNCTIONS:
        raise QueryError('function %r is not one of %s' % (function, ', '.join(FUNCTIONS)))
    p.symbol('(')
    metric = p.identifier('a metric name')
    p.symbol(')')
    p.keyword('FROM')
    kind, value = p.peek()
    if kind == 'word' and value.upper() == 'SCHEMA':
        p.take()
        p.symbol('(')
        namespace = p.identifier('a namespace')
        keys = []
        while p.peek() == ('op', ','):
            p.take()
            keys.append(p.identifier('a dimension key'))
        p.symbol(')')
        schema_keys = tuple(keys)
    else:
        namespace = p.identifier('a namespace or SCHEMA(...)')
        schema_keys = None
    where = []
    p.refuse_unsupported()
    if p.peek()[0] == 'word' and p.peek()[1].upper() == 'WHERE':
        p.take()
        while True:
            if p.peek() == ('op', '('):
                raise QueryError('parentheses in WHERE are not evaluated by the sandbox')
            key = p.identifier('a dimension key')
            kind, op = p.take()
            if kind == 'word' and op.upper() in _UNSUPPORTED_KEYWORDS:
                raise QueryError('%s is not evaluated by the sandbox' % _UNSUPPORTED_KEYWORDS[op.upper()])
            if kind != 'op' or op not in ('=', '!='):
                raise QueryError('expected = or != after %r, found %r' % (key, op))
            kind, value = p.take()
            if kind != 'string':
                raise QueryError("the value compared with %r must be a quoted string ('...'), found %r" % (key, value))
            where.append((key, op, value))
            p.refuse_unsupported()
            if p.peek()[0] == 'word' and p.peek()[1].upper() == 'AND':
                p.take()
                continue
            break
    p.refuse_unsupported()
    if p.peek()[0] is not None:
        raise QueryError('unexpected %r after the query' % p.peek()[1])
    return Query(function.upper(), metric, namespace, schema_keys, tuple(where))


def aggregate(function, statistics):
    """The value of `function` over one period, given each matched series' statistics for that
    period ({'Sum', 'SampleCount', 'Maximum', 'Minimum'}); None when no series has an observation."""
    observed = [s for s in statistics if s and s.get('SampleCount')]
    if not observed:
        return None
    if function == 'AVG':
        return sum(s['Sum'] for s in observed) / sum(s['SampleCount'] for s in observed)
    if function == 'COUNT':
        return float(sum(s['SampleCount'] for s in observed))
    if function == 'SUM':
        return float(sum(s['Sum'] for s in observed))
    if function == 'MAX':
        return max(s['Maximum'] for s in observed)
    if function == 'MIN':
        return min(s['Minimum'] for s in observed)
    raise QueryError('function %r is not one of %s' % (function, ', '.join(FUNCTIONS)))
