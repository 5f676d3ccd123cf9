"""Draw a timeline of the sandbox's GPU scaling loop as one SVG picture for the docs.

The timeline is a JSON-lines file, one sample a line:

    {"t": 240.0, "gpu": 85.0, "cpu": 12.5,
     "alarms": {"gpu-scale-out": "ALARM", "gpu-scale-in": "OK", ...},
     "desired": 3, "nodes": 1, "pending": 2, "phase": "GPU load 85 %"}

t is sandbox seconds since the start of the run; gpu and cpu may be null (no data). An optional
first line {"meta": {"title", "min", "max", "gpu_out", "gpu_in", "cpu_out", "cpu_in", "period",
"speed"}} names the picture and the thresholds and limits to draw (any key may be missing).

The picture has three panels over one x axis in sandbox minutes: utilisation (GPU and CPU, with the
alarm thresholds), the state of each alarm as a band (a sample's state holds until the next sample),
and capacity (desired, Ready GPU nodes, Pending GPU pods as step lines, with min and max). A thin
vertical line marks each change of phase. Standard library only; the same input gives the same bytes.

    python sandbox/cloudwatch/timeline_svg.py TIMELINE.jsonl OUT.svg
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH = 900
LEFT = 190                      # room for y ticks and the alarm names
RIGHT = 120                     # room for the threshold and limit labels
PLOT_W = WIDTH - LEFT - RIGHT
TITLE_H = 56
HEADER_H = 24                   # panel heading and legend, above each plot
GAP = 16
UTIL_H = 190
ROW_H = 18
CAP_H = 150
AXIS_H = 46
NAME_CHARS = 30                 # longer alarm names and phases are shortened (full text in a tooltip)
PHASE_CHARS = 34

SVG_NS = 'http://www.w3.org/2000/svg'
STYLES = {
    'gpu': {'stroke': '#7b3fbf', 'stroke_width': 2},
    'cpu': {'stroke': '#e08a1e', 'stroke_width': 1.5},
    'desired': {'stroke': '#1f6fb4', 'stroke_width': 5, 'stroke_opacity': 0.4},
    'nodes': {'stroke': '#17803a', 'stroke_width': 2},
    'pending': {'stroke': '#c62828', 'stroke_width': 1},
    'limit': {'stroke': '#666666', 'stroke_width': 1, 'stroke_dasharray': '6,4'},
}
STATE_COLOURS = {'ALARM': '#e06666', 'OK': '#93c47d', 'INSUFFICIENT_DATA': '#c4c4c4'}
OTHER_STATE = '#f6b26b'
THRESHOLDS = (('gpu_out', 'gpu', 'GPU scale-out'), ('gpu_in', 'gpu', 'GPU scale-in'),
              ('cpu_out', 'cpu', 'CPU scale-out'), ('cpu_in', 'cpu', 'CPU scale-in'))
CSS = ('text{fill:#222;font-size:11px}.title{font-size:16px;font-weight:bold}.subtitle{fill:#555}'
       '.heading{font-size:12px;font-weight:bold}.tick{font-size:10px;fill:#555}'
       '.phase-label{font-size:10px;fill:#333;paint-order:stroke;stroke:#fff;stroke-width:3px}')
_NOT_XML = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')


# ---- small pieces ----------------------------------------------------------------------------

def _text(value):
    """`value` as XML character data or attribute text (characters XML forbids are dropped)."""
    return escape(_NOT_XML.sub('', str(value)), {'"': '&quot;', "'": '&apos;'})


def _n(value):
    """A number with at most two decimals and no trailing zeros: stable, short coordinates."""
    text = ('%.2f' % value).rstrip('0').rstrip('.')
    return '0' if text == '-0' else text


def _num(value):
    """A finite float, or None for null, booleans, text and the like."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _el(tag, attrs, body=None):
    """One element; attribute names use _ for - (stroke_width), None values are left out."""
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        shown = _n(value) if _num(value) is not None else _text(value)
        parts.append(' %s="%s"' % (key.replace('_', '-'), shown))
    if body is None:
        return '<%s%s/>' % (tag, ''.join(parts))
    return '<%s%s>%s</%s>' % (tag, ''.join(parts), body, tag)


def _short(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + '\u2026'


def _points(points):
    return ' '.join('%s,%s' % (_n(x), _n(y)) for x, y in points)


@dataclass(frozen=True)
class Frame:
    """The shared x axis: sandbox seconds lo..hi over the plot width."""
    lo: float
    hi: float

    def x(self, t):
        return LEFT + (t - self.lo) / (self.hi - self.lo) * PLOT_W


@dataclass(frozen=True)
class Panel:
    """One plot area: its top and height in pixels, and the values lo..hi it shows."""
    top: float
    height: float
    lo: float
    hi: float

    @property
    def bottom(self):
        return self.top + self.height

    def y(self, value):
        value = min(max(value, self.lo), self.hi)
        return self.bottom - (value - self.lo) / (self.hi - self.lo) * self.height


# ---- the data --------------------------------------------------------------------------------

def _prepare(samples):
    """The samples in time order; an empty timeline or a sample without a time is refused."""
    if not samples:
        raise ValueError('empty timeline: no samples to draw')
    for index, sample in enumerate(samples):
        if not isinstance(sample, dict) or _num(sample.get('t')) is None:
            raise ValueError('sample %d has no numeric "t" (sandbox seconds)' % index)
    return sorted(samples, key=lambda sample: float(sample['t']))


def _frame(rows):
    lo = min(0.0, float(rows[0]['t']))
    return Frame(lo, max(float(rows[-1]['t']), lo + 60.0))


def _ends(rows, frame):
    """Until when each sample's values hold: the next sample's time, the last one the axis end."""
    return [float(sample['t']) for sample in rows[1:]] + [frame.hi]


def _alarms_of(sample):
    alarms = sample.get('alarms')
    return alarms if isinstance(alarms, dict) else {}


def _alarm_names(rows):
    names = []
    for sample in rows:
        names.extend(name for name in _alarms_of(sample) if name not in names)
    return names


def _stretches(rows, name, frame):
    """(state, t0, t1) for each run of one state of alarm `name`."""
    out = []
    for sample, t1 in zip(rows, _ends(rows, frame)):
        state, t0 = _alarms_of(sample).get(name), float(sample['t'])
        if state is None or t1 <= t0:
            continue
        state = str(state)
        if out and out[-1][0] == state and out[-1][2] == t0:
            out[-1] = (state, out[-1][1], t1)
        else:
            out.append((state, t0, t1))
    return out


def _segments(rows, key, frame):
    """Runs of (t, value, until) between null values of `key`; `until` is when the value stops holding."""
    runs, run = [], []
    for sample, until in zip(rows, _ends(rows, frame)):
        value = _num(sample.get(key))
        if value is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append((float(sample['t']), value, until))
    return runs + ([run] if run else [])


def _phases(rows):
    """(t, phase) where the phase label changes; samples without one keep the current phase."""
    marks, current = [], None
    for sample in rows:
        phase = sample.get('phase')
        if phase is not None and str(phase) != current:
            current = str(phase)
            marks.append((float(sample['t']), current))
    return marks


# ---- axes, legends, panels -------------------------------------------------------------------

def _x_ticks(frame):
    """Tick positions in minutes: a round step giving at most 10 ticks."""
    lo, hi = frame.lo / 60.0, frame.hi / 60.0
    step = next((s for s in (0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 240, 480, 720)
                 if (hi - lo) / s <= 10), None)
    step = step or 1440 * math.ceil((hi - lo) / 10 / 1440)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def _x_grid(frame, panel):
    lines = [_el('line', {'class': 'xgrid', 'x1': frame.x(m * 60), 'x2': frame.x(m * 60), 'y1': panel.top,
                          'y2': panel.bottom, 'stroke': '#000', 'stroke_opacity': 0.1})
             for m in _x_ticks(frame)]
    return ''.join(lines)


def _y_grid(panel, values, unit=''):
    out = []
    for value in values:
        y = panel.y(value)
        out.append(_el('line', {'class': 'ygrid', 'data_value': value, 'x1': LEFT, 'x2': LEFT + PLOT_W,
                                'y1': y, 'y2': y, 'stroke': '#000', 'stroke_opacity': 0.08}))
        out.append(_el('text', {'class': 'tick', 'x': LEFT - 6, 'y': y + 3.5, 'text_anchor': 'end'},
                       _text('%s%s' % (_n(value), unit))))
    return ''.join(out)


def _x_axis(frame, bottom):
    out = [_el('line', {'x1': LEFT, 'x2': LEFT + PLOT_W, 'y1': bottom, 'y2': bottom, 'stroke': '#444'})]
    for minutes in _x_ticks(frame):
        x = frame.x(minutes * 60)
        out.append(_el('line', {'x1': x, 'x2': x, 'y1': bottom, 'y2': bottom + 4, 'stroke': '#444'}))
        out.append(_el('text', {'class': 'tick xtick', 'x': x, 'y': bottom + 16, 'text_anchor': 'middle'},
                       _text(_n(minutes))))
    out.append(_el('text', {'x': LEFT + PLOT_W / 2, 'y': bottom + 36, 'text_anchor': 'middle'},
                   'sandbox time (minutes)'))
    return _el('g', {'id': 'x-axis'}, ''.join(out))


def _legend(x, y, items):
    """Swatches with labels in a row: (label, style); a style with a fill is a box, else a line."""
    out = []
    for label, style in items:
        if 'fill' in style:
            out.append(_el('rect', dict({'x': x, 'y': y - 9, 'width': 14, 'height': 10}, **style)))
        else:
            out.append(_el('line', dict({'x1': x, 'y1': y - 4, 'x2': x + 18, 'y2': y - 4}, **style)))
        out.append(_el('text', {'x': x + 22, 'y': y}, _text(label)))
        x += 22 + 6.5 * len(label) + 14
    return _el('g', {'class': 'legend'}, ''.join(out))


def _panel(name, heading, panel, parts, legend):
    """A panel's group: heading and legend above the plot, a frame around it."""
    y = panel.top - 8
    head = _el('text', {'class': 'heading', 'x': LEFT, 'y': y}, _text(heading))
    box = _el('rect', {'x': LEFT, 'y': panel.top, 'width': PLOT_W, 'height': panel.height,
                       'fill': 'none', 'stroke': '#999'})
    body = head + _legend(LEFT + 7.5 * len(heading) + 24, y, legend) + ''.join(parts) + box
    return _el('g', {'id': 'panel-' + name}, body)


def _side_labels(labels):
    """Labels right of the plot at their line's height, pushed apart so that none overlap."""
    out, last = [], None
    for y, text, colour in sorted(labels):
        y = y + 3.5 if last is None else max(y + 3.5, last + 11)
        last = y
        out.append(_el('text', {'class': 'side-label', 'x': LEFT + PLOT_W + 6, 'y': y, 'fill': colour}, _text(text)))
    return ''.join(out)


def _limit_lines(items, panel, css_class):
    """Dashed horizontal lines (value, label, style) and their labels at the right."""
    lines, labels = [], []
    for value, label, style in items:
        y = panel.y(value)
        lines.append(_el('line', dict({'class': css_class, 'data_value': value, 'x1': LEFT, 'x2': LEFT + PLOT_W,
                                       'y1': y, 'y2': y}, **style)))
        labels.append((y, label, style['stroke']))
    return ''.join(lines) + _side_labels(labels)


# ---- the three panels ------------------------------------------------------------------------

def _line_series(rows, key, frame, panel):
    """A polyline per run between nulls; a lone value is a dot."""
    out = []
    for run in _segments(rows, key, frame):
        points = [(frame.x(t), panel.y(v)) for t, v, _ in run]
        if len(points) == 1:
            out.append(_el('circle', {'class': 'series ' + key, 'cx': points[0][0], 'cy': points[0][1], 'r': 2,
                                      'fill': STYLES[key]['stroke']}))
        else:
            out.append(_el('polyline', dict({'class': 'series ' + key, 'points': _points(points),
                                             'fill': 'none', 'stroke_linejoin': 'round'}, **STYLES[key])))
    return ''.join(out)


def _step_series(rows, key, frame, panel):
    """A step line per run between nulls: each value holds until the next sample."""
    out = []
    for run in _segments(rows, key, frame):
        points = []
        for t, value, _ in run:
            if points:
                points.append((frame.x(t), points[-1][1]))
            points.append((frame.x(t), panel.y(value)))
        if run[-1][2] > run[-1][0]:
            points.append((frame.x(run[-1][2]), points[-1][1]))
        out.append(_el('polyline', dict({'class': 'series ' + key, 'points': _points(points), 'fill': 'none'},
                                        **STYLES[key])))
    return ''.join(out)


def _utilisation(rows, meta, frame, panel):
    given = [(_num(meta.get(key)), series, label) for key, series, label in THRESHOLDS]
    thresholds = [(value, '%s %s %%' % (label, _n(value)), dict(STYLES['limit'], stroke=STYLES[series]['stroke']))
                  for value, series, label in given if value is not None]
    parts = [_x_grid(frame, panel), _y_grid(panel, range(0, 101, 20), ' %'),
             _limit_lines(thresholds, panel, 'threshold'),
             _line_series(rows, 'cpu', frame, panel), _line_series(rows, 'gpu', frame, panel)]
    legend = [('GPU (scale-out query)', STYLES['gpu']), ('CPU (group average)', STYLES['cpu'])]
    if thresholds:
        legend.append(('alarm threshold', STYLES['limit']))
    return _panel('utilisation', 'Utilisation (%)', panel, parts, legend)


def _alarm_row(rows, name, frame, top):
    """One alarm: its name at the left, a coloured band per stretch of one state."""
    label = _text(_short(name, NAME_CHARS)) + _el('title', {}, _text(name))
    out = [_el('text', {'class': 'row-label', 'x': LEFT - 8, 'y': top + ROW_H / 2 + 4, 'text_anchor': 'end'}, label)]
    for state, t0, t1 in _stretches(rows, name, frame):
        tip = '%s: %s from %s to %s min' % (name, state, _n(t0 / 60), _n(t1 / 60))
        out.append(_el('rect', {'class': 'alarm-band', 'data_alarm': name, 'data_state': state,
                                'x': frame.x(t0), 'y': top + 2, 'width': frame.x(t1) - frame.x(t0),
                                'height': ROW_H - 4, 'fill': STATE_COLOURS.get(state, OTHER_STATE)},
                   _el('title', {}, _text(tip))))
    return ''.join(out)


def _alarm_panel(rows, frame, top):
    names = _alarm_names(rows)
    panel = Panel(top, max(1, len(names)) * ROW_H, 0.0, 1.0)
    parts = [_alarm_row(rows, name, frame, top + index * ROW_H) for index, name in enumerate(names)]
    if not names:
        parts.append(_el('text', {'x': LEFT + 8, 'y': top + ROW_H / 2 + 4}, 'no alarm states in the timeline'))
    parts.append(_x_grid(frame, panel))
    seen = [s for name in names for s, _, _ in _stretches(rows, name, frame)]
    states = list(STATE_COLOURS) + [s for i, s in enumerate(seen) if s not in STATE_COLOURS and s not in seen[:i]]
    legend = [(state, {'fill': STATE_COLOURS.get(state, OTHER_STATE)}) for state in states]
    return _panel('alarms', 'Alarm states', panel, parts, legend), panel


def _capacity_scale(rows, meta, top):
    """The capacity panel: 0 up to a round step above the largest count or limit; the step."""
    values = [_num(s.get(key)) for s in rows for key in ('desired', 'nodes', 'pending')]
    values += [_num(meta.get('min')), _num(meta.get('max'))]
    peak = max([v for v in values if v is not None] + [1.0])
    step = next((s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500) if peak / s <= 6), None)
    step = step or 1000 * math.ceil(peak / 6000)
    return Panel(top, CAP_H, 0.0, float((math.floor(peak / step) + 1) * step)), step


def _capacity(rows, meta, frame, panel, step):
    given = [(_num(meta.get(key)), key) for key in ('min', 'max')]
    limits = [(value, '%s %s' % (key, _n(value)), STYLES['limit']) for value, key in given if value is not None]
    parts = [_x_grid(frame, panel), _y_grid(panel, range(0, int(panel.hi) + 1, step)),
             _limit_lines(limits, panel, 'limit')]
    parts += [_step_series(rows, key, frame, panel) for key in ('desired', 'nodes', 'pending')]
    legend = [('desired capacity', STYLES['desired']), ('Ready GPU nodes', STYLES['nodes']),
              ('Pending GPU pods', STYLES['pending'])]
    if limits:
        legend.append(('min / max', STYLES['limit']))
    return _panel('capacity', 'Capacity', panel, parts, legend)


def _phase_marks(rows, frame, top, bottom):
    out = []
    for t, phase in _phases(rows):
        x = frame.x(t)
        out.append(_el('line', {'class': 'phase', 'x1': x, 'x2': x, 'y1': top, 'y2': bottom,
                                'stroke': '#333', 'stroke_width': 0.8, 'stroke_dasharray': '2,3'}))
        out.append(_el('text', {'class': 'phase-label', 'x': x + 11, 'y': top + 4, 'text_anchor': 'end',
                                'transform': 'rotate(-90 %s %s)' % (_n(x + 11), _n(top + 4))},
                       _text(_short(phase, PHASE_CHARS)) + _el('title', {}, _text(phase))))
    return _el('g', {'id': 'phases'}, ''.join(out))


def _header(meta, rows, frame):
    title = str(meta.get('title') or 'GPU scaling timeline')
    facts = ['%d samples over %s sandbox minutes' % (len(rows), _n((frame.hi - frame.lo) / 60))]
    if _num(meta.get('period')) is not None:
        facts.append('alarm period %s s' % _n(_num(meta['period'])))
    if _num(meta.get('speed')) is not None:
        facts.append('sandbox clock \u00d7%s' % _n(_num(meta['speed'])))
    return (_el('text', {'class': 'title', 'x': 16, 'y': 24}, _text(title))
            + _el('text', {'class': 'subtitle', 'x': 16, 'y': 42}, _text(' \u00b7 '.join(facts))))


# ---- the API ---------------------------------------------------------------------------------

def render(samples, meta=None):
    """The SVG (a string) for `samples` (dicts as in the module docstring) and the header `meta`."""
    meta = dict(meta or {})
    rows = _prepare(samples)
    frame = _frame(rows)
    util = Panel(TITLE_H + HEADER_H, UTIL_H, 0.0, 100.0)
    alarms, alarm_panel = _alarm_panel(rows, frame, util.bottom + GAP + HEADER_H)
    cap, step = _capacity_scale(rows, meta, alarm_panel.bottom + GAP + HEADER_H)
    height = int(math.ceil(cap.bottom + AXIS_H))
    body = [_el('rect', {'width': WIDTH, 'height': height, 'fill': '#fff'}), _header(meta, rows, frame),
            _utilisation(rows, meta, frame, util), alarms, _capacity(rows, meta, frame, cap, step),
            _x_axis(frame, cap.bottom), _phase_marks(rows, frame, util.top, cap.bottom)]
    title = _el('title', {}, _text(meta.get('title') or 'GPU scaling timeline'))
    svg = _el('svg', {'xmlns': SVG_NS, 'width': WIDTH, 'height': height, 'viewBox': '0 0 %d %d' % (WIDTH, height),
                      'font_family': 'Helvetica, Arial, sans-serif', 'role': 'img'},
              '\n'.join([title, _el('style', {}, CSS)] + body) + '\n')
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + '\n'


def load(path):
    """(meta, samples) from a JSON-lines timeline; blank lines are skipped, a bad line is a ValueError."""
    meta, samples = {}, []
    with open(path, encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError('%s:%d: not JSON (%s)' % (path, number, error.msg)) from None
            if not isinstance(record, dict):
                raise ValueError('%s:%d: not a JSON object' % (path, number))
            if 't' not in record and isinstance(record.get('meta'), dict):
                meta.update(record['meta'])
            else:
                samples.append(record)
    return meta, samples


def main(argv=None):
    parser = argparse.ArgumentParser(description='Draw a GPU scaling timeline (JSON lines) as an SVG picture.')
    parser.add_argument('timeline', help='the JSON-lines timeline')
    parser.add_argument('output', help='the SVG file to write')
    args = parser.parse_args(argv)
    try:
        meta, samples = load(args.timeline)
        svg = render(samples, meta)
    except (OSError, ValueError) as error:
        print('timeline_svg: %s: %s' % (args.timeline, error), file=sys.stderr)
        return 2
    with open(args.output, 'w', encoding='utf-8', newline='\n') as handle:
        handle.write(svg)
    rows = _prepare(samples)
    print('wrote %s: %d samples, %s sandbox minutes, %d alarms, %d phases'
          % (args.output, len(rows), _n((float(rows[-1]['t']) - min(0.0, float(rows[0]['t']))) / 60),
             len(_alarm_names(rows)), len(_phases(rows))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
