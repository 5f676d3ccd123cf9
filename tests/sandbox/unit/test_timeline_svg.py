"""The docs' picture of the GPU scaling loop (sandbox/cloudwatch/timeline_svg.py): the SVG is
well-formed, the bands, steps and lines sit where the timeline's times and values put them, text is
escaped, and an empty timeline is refused."""
import ast
import json
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from sandbox.cloudwatch import timeline_svg  # noqa: E402

SCRIPT = ROOT / "sandbox" / "cloudwatch" / "timeline_svg.py"
NS = {"s": "http://www.w3.org/2000/svg"}
META = {"title": "GPU loop", "min": 1, "max": 4, "gpu_out": 40, "gpu_in": 10, "cpu_out": 60, "cpu_in": 5,
        "period": 120, "speed": 60}


def _sample(t, gpu=5.0, cpu=3.0, out="OK", desired=1, nodes=1, pending=0, phase=None, **extra):
    alarms = {"gpu-scale-out": out, "gpu-scale-in": "OK", "cpu-scale-out": "OK", "cpu-scale-in": "OK"}
    alarms.update(extra)
    sample = {"t": t, "gpu": gpu, "cpu": cpu, "alarms": alarms, "desired": desired, "nodes": nodes, "pending": pending}
    if phase is not None:
        sample["phase"] = phase
    return sample


def _x(t, lo=0.0, hi=600.0):
    return timeline_svg.LEFT + (t - lo) / (hi - lo) * timeline_svg.PLOT_W


def _parse(samples, meta=META):
    return ET.fromstring(timeline_svg.render(samples, meta))


def _points(polyline):
    return [tuple(float(c) for c in pair.split(",")) for pair in polyline.get("points").split()]


def _series(root, panel, key):
    return [p for p in root.findall(".//s:g[@id='panel-%s']//s:polyline" % panel, NS) if p.get("class") == "series " + key]


def _value_to_y(root, panel):
    """The panel's value -> y mapping as its horizontal grid lines show it (value: y)."""
    lines = root.findall(".//s:g[@id='panel-%s']/s:line[@class='ygrid']" % panel, NS)
    return {float(line.get("data-value")): float(line.get("y1")) for line in lines}


def _run():
    """Eleven samples a minute apart; gpu-scale-out in ALARM for t = 180..360 s."""
    return [_sample(t, gpu=85.0 if 120 <= t < 420 else 5.0, out="ALARM" if 180 <= t < 360 else "OK",
                    desired=3 if t >= 240 else 1, nodes=3 if t >= 360 else 1)
            for t in range(0, 601, 60)]


def test_the_svg_is_well_formed_with_three_panels_and_the_title():
    root = _parse(_run())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == "900"
    assert [g.get("id") for g in root.findall("s:g", NS)][:3] == ["panel-utilisation", "panel-alarms", "panel-capacity"]
    assert root.find("s:title", NS).text == "GPU loop"
    assert not root.findall(".//s:script", NS) and "@import" not in timeline_svg.render(_run(), META)


def test_an_alarm_stretch_is_a_band_over_its_time_span():
    root = _parse(_run())
    bands = [r for r in root.findall(".//s:rect[@class='alarm-band']", NS) if r.get("data-alarm") == "gpu-scale-out"]
    assert [b.get("data-state") for b in bands] == ["OK", "ALARM", "OK"]
    alarm = bands[1]
    assert float(alarm.get("x")) == pytest.approx(_x(180), abs=0.01)
    assert float(alarm.get("width")) == pytest.approx(_x(360) - _x(180), abs=0.02)
    assert alarm.get("fill") == timeline_svg.STATE_COLOURS["ALARM"]
    assert float(bands[2].get("x")) + float(bands[2].get("width")) == pytest.approx(_x(600), abs=0.02)


def test_alarm_rows_come_in_the_order_first_seen_with_their_names():
    samples = _run()
    for sample in samples[3:]:
        sample["alarms"]["gpu-scale-out-wrong-dimension"] = "INSUFFICIENT_DATA"
    root = _parse(samples)
    labels = [t.text for t in root.findall(".//s:g[@id='panel-alarms']/s:text[@class='row-label']", NS)]
    assert labels == ["gpu-scale-out", "gpu-scale-in", "cpu-scale-out", "cpu-scale-in", "gpu-scale-out-wrong-dimension"]
    late = [r for r in root.findall(".//s:rect[@class='alarm-band']", NS) if r.get("data-alarm") == labels[-1]]
    assert len(late) == 1 and float(late[0].get("x")) == pytest.approx(_x(180), abs=0.01)
    assert late[0].get("fill") == timeline_svg.STATE_COLOURS["INSUFFICIENT_DATA"]


def test_desired_capacity_steps_from_1_to_3_where_it_changed():
    root = _parse(_run())
    [desired] = _series(root, "capacity", "desired")
    y_of = _value_to_y(root, "capacity")
    points = _points(desired)
    jumps = [(a, b) for a, b in zip(points, points[1:]) if a[1] != b[1]]
    assert len(jumps) == 1
    (x0, y0), (x1, y1) = jumps[0]
    assert x0 == x1 == pytest.approx(_x(240), abs=0.01)
    assert (y0, y1) == (pytest.approx(y_of[1.0]), pytest.approx(y_of[3.0]))
    assert points[0] == pytest.approx((_x(0), y_of[1.0])) and points[-1] == pytest.approx((_x(600), y_of[3.0]))
    [nodes] = _series(root, "capacity", "nodes")
    assert [a[0] for a, b in zip(_points(nodes), _points(nodes)[1:]) if a[1] != b[1]] == [pytest.approx(_x(360), abs=0.01)]


def test_capacity_ticks_are_integers_and_min_max_are_dashed_lines():
    root = _parse(_run())
    y_of = _value_to_y(root, "capacity")
    assert sorted(y_of) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    limits = root.findall(".//s:g[@id='panel-capacity']/s:line[@class='limit']", NS)
    assert {float(line.get("data-value")): float(line.get("y1")) for line in limits} == {1.0: y_of[1.0], 4.0: y_of[4.0]}
    assert all(line.get("stroke-dasharray") for line in limits)


def test_null_gpu_values_break_the_line():
    samples = _run()
    samples[4]["gpu"] = None
    root = _parse(samples)
    gpu = _series(root, "utilisation", "gpu")
    assert [len(_points(p)) for p in gpu] == [4, 6]
    assert _points(gpu[0])[-1][0] == pytest.approx(_x(180), abs=0.01)
    assert _points(gpu[1])[0][0] == pytest.approx(_x(300), abs=0.01)
    y_of = _value_to_y(root, "utilisation")
    assert _points(gpu[1])[0][1] == pytest.approx(y_of[80.0] - (y_of[60.0] - y_of[80.0]) / 4, abs=0.01)  # 85 %
    assert len(_series(root, "utilisation", "cpu")) == 1


def test_thresholds_are_dashed_lines_at_their_values_with_labels():
    root = _parse(_run())
    y_of = _value_to_y(root, "utilisation")
    lines = root.findall(".//s:g[@id='panel-utilisation']/s:line[@class='threshold']", NS)
    assert sorted(float(line.get("data-value")) for line in lines) == [5.0, 10.0, 40.0, 60.0]
    at_40 = [line for line in lines if line.get("data-value") == "40"][0]
    assert float(at_40.get("y1")) == pytest.approx(y_of[40.0]) and at_40.get("stroke-dasharray")
    labels = [t.text for t in root.findall(".//s:g[@id='panel-utilisation']/s:text[@class='side-label']", NS)]
    assert "GPU scale-out 40 %" in labels and "CPU scale-in 5 %" in labels
    assert not _parse(_run(), {}).findall(".//s:line[@class='threshold']", NS)


def test_phase_changes_are_marked_once_each():
    samples = _run()
    for sample in samples:
        sample["phase"] = "idle" if sample["t"] < 120 else "GPU load 85 %"
    del samples[5]["phase"]  # no label: still the same phase
    root = _parse(samples)
    marks = root.findall(".//s:g[@id='phases']/s:line", NS)
    assert [float(m.get("x1")) for m in marks] == [pytest.approx(_x(0)), pytest.approx(_x(120))]
    assert [t.text for t in root.findall(".//s:g[@id='phases']/s:text", NS)] == ["idle", "GPU load 85 %"]


def test_xml_special_characters_are_escaped():
    title, phase = 'A & B <"scale"> \'x\'', "load < 85 % & rising >"
    samples = _run()
    samples[2]["phase"] = phase
    samples[0]["alarms"]["odd<&>name"] = "OK"
    svg = timeline_svg.render(samples, dict(META, title=title))
    assert "A &amp; B &lt;&quot;scale&quot;&gt;" in svg and "load &lt; 85 % &amp; rising &gt;" in svg
    assert '<"scale">' not in svg and "odd<&>" not in svg
    root = ET.fromstring(svg)
    assert root.find("s:title", NS).text == title
    assert [t.text for t in root.findall(".//s:g[@id='phases']/s:text", NS)] == [phase]
    assert "odd<&>name" in [r.get("data-alarm") for r in root.findall(".//s:rect[@class='alarm-band']", NS)]


def test_the_same_input_gives_the_same_output():
    assert timeline_svg.render(_run(), META) == timeline_svg.render(list(reversed(_run())), dict(META))


@pytest.mark.parametrize("samples", [[], [{"gpu": 5.0}]])
def test_an_empty_or_timeless_timeline_is_refused(samples):
    with pytest.raises(ValueError, match="empty timeline|no numeric"):
        timeline_svg.render(samples, META)


def _write(path, meta, samples):
    lines = ([json.dumps({"meta": meta})] if meta is not None else []) + [json.dumps(s) for s in samples]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


def test_load_reads_the_header_and_the_samples(tmp_path):
    meta, samples = timeline_svg.load(_write(tmp_path / "t.jsonl", META, _run()))
    assert meta == META and samples == _run()
    (tmp_path / "bad.jsonl").write_text('{"t": 0}\n{nope\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
        timeline_svg.load(tmp_path / "bad.jsonl")


def _cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_the_cli_writes_the_svg(tmp_path):
    timeline, out = _write(tmp_path / "t.jsonl", META, _run()), tmp_path / "out.svg"
    done = _cli(timeline, out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("wrote %s: 11 samples" % out)
    assert out.read_text(encoding="utf-8") == timeline_svg.render(_run(), META)


def test_the_cli_refuses_an_empty_timeline(tmp_path):
    timeline, out = _write(tmp_path / "t.jsonl", META, []), tmp_path / "out.svg"
    done = _cli(timeline, out)
    assert done.returncode == 2 and "empty timeline" in done.stderr
    assert not out.exists()


def test_no_function_is_over_50_lines():
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 50]
    assert long == []
