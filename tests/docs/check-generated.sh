#!/usr/bin/env bash
# Fails when a generated document differs from what its results render to with the current code:
# docs/security.md from the committed reliability run (tests/reliability/last-run-counts.json) and
# docs/benchmarks.md from the committed benchmark results (bench/results/), the scaling loop's picture
# (docs/stacks/cluster_gpu-loop.svg) from the sandbox run's timeline beside it (make loop-picture), and when the unit tests
# showing that these checks, and the counting behind docs/security.md, can fail do not pass.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PYTHON" tests/docs/security_counts.py --check
"$PYTHON" bench/report.py --check
loop_svg="$(mktemp)"
"$PYTHON" sandbox/cloudwatch/timeline_svg.py docs/stacks/cluster_gpu-loop.timeline.jsonl "$loop_svg" >/dev/null
if ! cmp -s "$loop_svg" docs/stacks/cluster_gpu-loop.svg; then
  rm -f "$loop_svg"
  echo "docs/stacks/cluster_gpu-loop.svg is not what its timeline draws: make loop-picture (or redraw it with sandbox/cloudwatch/timeline_svg.py)" >&2
  exit 1
fi
rm -f "$loop_svg"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/docs/test_generated_docs.py
