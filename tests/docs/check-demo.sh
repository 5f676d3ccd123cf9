#!/usr/bin/env bash
# The README's first command, as a newcomer runs it, on the sandbox as this script finds it.
#  1. `make demo`. When the sandbox did not hold the demo yet (a fresh sandbox, or one a suite
#     reset), this run converges it and reports changes: say so and run `make demo` again.
#     After .ci/run's own `make demo`, the first run here is already the second one.
#  2. That last `make demo` must pass, report changed=0 for every host of its PLAY RECAP, and end
#     by saying how to tear the demo down.
#  3. The teardown command it names is run as printed; it must remove what the demo deployed
#     (changed > 0, no Helm release left in the sandbox).
# With --keep (make site-check, which make test runs), step 3 is left to tests/playbooks/site: the
# converged demo is kept for the checks of the installed tarball, and the teardown command is
# written to tests/output/demo-check/teardown-command, which that test runs last as printed.
# Logs: tests/output/demo-check/.
set -euo pipefail
keep=0
[[ "${1:-}" == --keep ]] && keep=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
out="$ROOT/tests/output/demo-check"
mkdir -p "$out"
say() { echo "demo-check: $*"; }
fail() { echo "demo-check: FAILED: $*" >&2; exit 1; }

# "changed" summed over the PLAY RECAP lines of a log; fails when there is no recap at all, so a
# run that printed none can never pass as "changed=0".
recap_changed() {
    local total
    total="$(sed -nE 's/^[^ ]+ +: ok=[0-9]+ +changed=([0-9]+) +unreachable=([0-9]+) +failed=([0-9]+).*/\1 \2 \3/p' "$1" \
        | awk 'BEGIN{c=0; n=0} {n++; c+=$1; if ($2+$3>0) bad=1} END{if (n==0 || bad) print "none"; else print c}')"
    [[ "$total" != none ]] || fail "no clean PLAY RECAP in $1 (unreachable or failed hosts, or no recap); last lines:
$(tail -n 30 "$1")"
    echo "$total"
}

run_demo() {
    local log="$out/demo-$1.log" start=$SECONDS
    if ! make --no-print-directory demo >"$log" 2>&1; then
        tail -n 40 "$log"
        fail "make demo (run $1) exited non-zero; log $log"
    fi
    local changed
    changed="$(recap_changed "$log")"
    say "make demo run $1: $(( SECONDS - start )) s, changed=$changed"
}

# The demo needs a sandbox without injected errors: an interrupted test can leave AWS faults or EKS
# outcomes queued (its cleanup never ran); a user's sandbox has none. Clear them, and say so.
set -a; . "$ROOT/.sandbox/env"; set +a
for kind in faults eks-outcomes; do
    queued="$(curl -fsS -m 10 "$AWS_ENDPOINT_URL/_sandbox/$kind")" || fail "the AWS emulator does not answer at $AWS_ENDPOINT_URL"
    if python3 -c 'import json, sys; sys.exit(0 if any(json.loads(sys.argv[1]).values()) else 1)' "$queued"; then
        say "clearing what an earlier test left queued in the emulator's $kind: $queued"
        curl -fsS -m 10 -X DELETE "$AWS_ENDPOINT_URL/_sandbox/$kind" >/dev/null
    fi
done

rm -f "$out/teardown-command"
run_demo 1
last=1
first="$(recap_changed "$out/demo-1.log")"
if [[ "$first" != 0 ]]; then
    say "the sandbox did not hold the demo yet: run 1 converged it; make demo again must change nothing"
    run_demo 2
    last=2
fi
log="$out/demo-$last.log"
final="$(recap_changed "$log")"
[[ "$final" == 0 ]] || fail "make demo run $last, on a converged sandbox, reported changes; log $log"

hint="$(sed -nE 's/^demo: to remove what it deployed: (make [a-z-]+).*/\1/p' "$log" | tail -n 1)"
[[ -n "$hint" ]] || fail "make demo did not say how to tear the demo down; log $log"
if [[ $keep == 1 ]]; then
    echo "$hint" >"$out/teardown-command"
    say "make demo says to tear down with '$hint': kept for tests/playbooks/site ($out/teardown-command), which runs it last"
    exit 0
fi
say "make demo says to tear down with '$hint': running it"
start=$SECONDS
$hint >"$out/teardown.log" 2>&1 || { tail -n 40 "$out/teardown.log"; fail "'$hint' exited non-zero"; }
changed="$(recap_changed "$out/teardown.log")"
[[ "$changed" -gt 0 ]] || fail "'$hint' changed nothing, so it removed nothing; log $out/teardown.log"

left="$("$KUBECTL_BIN" get secrets -A -l owner=helm -o name)"
[[ -z "$left" ]] || fail "Helm releases left after '$hint': $left"
say "'$hint': $(( SECONDS - start )) s, changed=$changed, no Helm release left"
