#!/usr/bin/env bash
# Usage: ps-sampler.sh OUTFILE -- command...   Samples every process's argv while the command runs.
set -u
out="$1"; shift 2
( while :; do ps -eo args >>"$out" 2>/dev/null; sleep 0.05; done ) &
sampler=$!
"$@"
rc=$?
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
exit "$rc"
