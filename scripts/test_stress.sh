#!/usr/bin/env bash
# `make test-stress`: the whole suite on a busy machine. Starts CPU burners (two by
# default, HOOKSHELF_STRESS_BURNERS), then runs pytest the way `make test` does (honouring
# PYTEST_ARGS) several times in a row (three by default, HOOKSHELF_STRESS_RUNS), stopping
# at the first failing run. The burners are killed on exit, however the script ends.
#
# A test that fails here and passes on an idle machine assumes something about speed or
# scheduling: it should wait on the condition it needs (with a generous deadline), not
# on the clock. Run after `make setup postgres test-tools` (the Makefile target does).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

RUNS=${HOOKSHELF_STRESS_RUNS:-3}
BURNERS=${HOOKSHELF_STRESS_BURNERS:-2}
PY=${PY:-.venv/bin/python}
# Word-split on purpose: PYTEST_ARGS is a command-line fragment, as in `make test`.
read -r -a pytest_args <<<"${PYTEST_ARGS:-}"

burner_pids=()
stop_burners() {
    local pid
    for pid in "${burner_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${burner_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    burner_pids=()
}
trap stop_burners EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq "$BURNERS"); do
    python3 -c 'while True: pass' &
    burner_pids+=($!)
done
say "test-stress: $BURNERS CPU burner(s) running (pids ${burner_pids[*]:-none}) on $(nproc) core(s)"

started=$(date +%s)
for run in $(seq "$RUNS"); do
    say "test-stress: run $run of $RUNS"
    run_started=$(date +%s)
    status=0
    "$PY" -m pytest "${pytest_args[@]}" || status=$?
    elapsed=$(($(date +%s) - run_started))
    if [ "$status" -eq 5 ]; then
        die "test-stress: run $run: pytest collected no tests"
    fi
    if [ "$status" -ne 0 ]; then
        say "test-stress: run $run of $RUNS FAILED (pytest status $status) after ${elapsed}s"
        exit "$status"
    fi
    say "test-stress: run $run of $RUNS passed in ${elapsed}s"
done
say "test-stress: $RUNS run(s) passed under $BURNERS burner(s) in $(($(date +%s) - started))s"
