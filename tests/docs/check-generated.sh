#!/usr/bin/env bash
# Fails when a generated document differs from what its results render to with the current code:
# docs/security.md from the committed reliability run (tests/reliability/last-run-counts.json) and
# docs/benchmarks.md from the committed benchmark results (bench/results/), and when the unit tests
# showing that these checks, and the counting behind docs/security.md, can fail do not pass.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PYTHON" tests/docs/security_counts.py --check
"$PYTHON" bench/report.py --check
"$PYTHON" -m pytest -q -p no:cacheprovider tests/docs/test_generated_docs.py
