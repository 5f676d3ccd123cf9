#!/usr/bin/env bash
# `make test`: every suite, timed, in three streams that start together, each on a sandbox of its
# own, because much of a suite's time is spent waiting (helm --wait, pods becoming Ready, polls)
# and two cores can do more than one suite's work at a time:
#   main     on the main sandbox (the one make demo converged):   MAIN_SUITES_SANDBOX
#   beside   on the reliability suite's sandbox:                   make alongside, make reliability,
#            then BESIDE_SUITES_AFTER there (stopped at the end)
#   checks   no sandbox, then a side sandbox (.sandbox-side):      MAIN_SUITES_FIRST, then SIDE_SUITES
# The main stream's output is printed as it comes; the other two go to log files, printed when all
# streams are done. RELIABILITY_ALONGSIDE=0 runs everything one after the other instead.
#
# Each suite's wall time is written to SUITE_TIMES as it ends and printed as a table at the end,
# and also when the run is stopped (SIGTERM/SIGINT, as a CI time limit does): a log whose tail is
# all that is left still says which suite took how long and which were still running.
set -uo pipefail

: "${MAKE:=make}" "${MAIN_SUITES_FIRST:?}" "${MAIN_SUITES_SANDBOX:?}" "${SIDE_SUITES:?}" "${RELIABILITY_LOG:?}"
BESIDE_SUITES_AFTER="${BESIDE_SUITES_AFTER:-}"
RELIABILITY_ALONGSIDE="${RELIABILITY_ALONGSIDE:-1}"
SUITE_TIMES="${SUITE_TIMES:-tests/output/suite-times.txt}"
CHECKS_LOG="${CHECKS_LOG:-tests/output/make-test-checks.log}"
SIDE_SANDBOX="${SIDE_SANDBOX:-$PWD/.sandbox-side}"
# The main sandbox's integration leaves out what the others run (see the Makefile).
MAIN_ARGS=(INTEGRATION_ALL=0 INTEGRATION_SPLIT=1)
mkdir -p "$(dirname "$SUITE_TIMES")" "$(dirname "$RELIABILITY_LOG")" "$(dirname "$CHECKS_LOG")"
: >"$SUITE_TIMES"
RELIABILITY_SANDBOX_DIR="${RELIABILITY_SANDBOX_DIR:-$PWD/.sandbox-reliability}"
start=$SECONDS
running="$SUITE_TIMES.running"
: >"$running"

SUITE_LOGS="${SUITE_LOGS:-tests/output/suites}"
mkdir -p "$SUITE_LOGS"

# run_suite NAME [make arguments...]: one make target, timed; its exit status is returned. Its
# output goes where the stream's goes and to $SUITE_LOGS/NAME.log, whose failure lines and tail
# are printed last when it fails (CI may show only the end of a long log).
run_suite() {
    local name="$1" t0=$SECONDS rc
    shift
    echo "$name $(( SECONDS - start ))" >>"$running"
    # In the background and waited for, so that a signal is handled at once, not when it ends
    # (with pipefail, the pipeline's status is make's when make fails).
    $MAKE --no-print-directory "$name" "$@" 2>&1 | tee "$SUITE_LOGS/$name.log" &
    wait $! && rc=0 || rc=$?
    printf '%-16s exit %-3s %5d s  (ended %5d s after make test began)\n' "$name" "$rc" "$(( SECONDS - t0 ))" \
        "$(( SECONDS - start ))" >>"$SUITE_TIMES"
    echo "make test: $name exited $rc after $(( SECONDS - t0 )) s"
    return "$rc"
}

# run_stream SUITES [make arguments...]: the suites in order, stopping at the first that fails.
run_stream() {
    local suite
    for suite in $1; do
        run_suite "$suite" "${@:2}" || return 1
    done
}

table() {
    echo "---- make test: wall time of each suite ($SUITE_TIMES) ----"
    cat "$SUITE_TIMES"
    local name began
    while read -r name began; do
        grep -q "^$name " "$SUITE_TIMES" || echo "$name still running, began $began s after make test began"
    done <"$running"
    echo "make test: $(( SECONDS - start )) s in all so far"
}

# why_failed: for each suite that failed, the lines of its log that say so, then its last lines.
why_failed() {
    local name rc log
    while read -r name _ rc _; do
        [[ "$rc" == 0 ]] && continue
        log="$SUITE_LOGS/$name.log"
        echo "---- make test: why $name failed (exit $rc; whole output: $log) ----"
        [[ -f "$log" ]] || continue
        echo "-- its lines that report a failure (at most 40):"
        grep -E 'FAILED|ERROR|Error|fatal:|failed=[1-9]|Traceback|AssertionError|^E  ' "$log" | grep -v 'RETRYING' | head -n 40
        echo "-- its last 40 lines:"
        tail -n 40 "$log"
    done <"$SUITE_TIMES"
}

# Every process started by this script, deepest first.
descendants() {
    local child
    for child in $(pgrep -P "$1"); do
        descendants "$child"
        echo "$child"
    done
}

stopped() {
    trap - TERM INT
    echo "make test: stopped by a signal after $(( SECONDS - start )) s" >&2
    table >&2
    # shellcheck disable=SC2046
    kill -TERM $(descendants $$) 2>/dev/null
    exit 143
}
trap stopped TERM INT

if [[ "$RELIABILITY_ALONGSIDE" != 1 ]]; then
    run_stream "$MAIN_SUITES_FIRST" && run_stream "$MAIN_SUITES_SANDBOX" "${MAIN_ARGS[@]}" && run_stream "$SIDE_SUITES" \
        && run_stream "alongside reliability" && run_stream "$BESIDE_SUITES_AFTER"
    rc=$?
    table
    [[ $rc -eq 0 ]] && echo "make test: all suites passed"
    [[ $rc -eq 0 ]] || why_failed
    exit "$rc"
fi

echo "make test: three streams: main sandbox ($MAIN_SUITES_SANDBOX, below); reliability sandbox (alongside reliability" \
    "${BESIDE_SUITES_AFTER:+then $BESIDE_SUITES_AFTER}, output $RELIABILITY_LOG); checks then a side sandbox ($MAIN_SUITES_FIRST, then $SIDE_SUITES on $SIDE_SANDBOX," \
    "output $CHECKS_LOG); the last two are printed at the end"
# The reliability sandbox, once make reliability has stopped it, is reset for BESIDE_SUITES_AFTER
# (each resets the sandbox it is given) and stopped after them.
(
    run_stream "alongside reliability" || exit 1
    [[ -n "$BESIDE_SUITES_AFTER" ]] || exit 0
    export SANDBOX_DIR="$RELIABILITY_SANDBOX_DIR"
    run_stream "$BESIDE_SUITES_AFTER" && rc=0 || rc=1
    sandbox/sandboxctl down
    exit "$rc"
) >"$RELIABILITY_LOG" 2>&1 &
beside=$!
(
    run_stream "$MAIN_SUITES_FIRST" || exit 1
    export SANDBOX_DIR="$SIDE_SANDBOX"
    run_stream "$SIDE_SUITES" || exit 1
    sandbox/sandboxctl down
) >"$CHECKS_LOG" 2>&1 &
checks=$!

run_stream "$MAIN_SUITES_SANDBOX" "${MAIN_ARGS[@]}" && main=0 || main=1
wait "$beside" && besiderc=0 || besiderc=1
wait "$checks" && checksrc=0 || checksrc=1
echo "---- checks, then the side sandbox: their output ----"
cat "$CHECKS_LOG"
echo "---- make alongside and make reliability: their output ----"
cat "$RELIABILITY_LOG"
echo "---- end of the streams' output ----"
table
if [[ $main -ne 0 || $besiderc -ne 0 || $checksrc -ne 0 ]]; then
    why_failed
    echo "make test: FAILED (exit 1 means a suite failed: main sandbox $main, reliability sandbox $besiderc, checks and side sandbox $checksrc)" >&2
    exit 1
fi
echo "make test: all suites passed"
