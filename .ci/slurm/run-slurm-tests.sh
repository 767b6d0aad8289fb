#!/usr/bin/env bash
# Start the one-node CI SLURM cluster, run the real-SLURM tests, tear the cluster down (always).
# Usage (as root, from anywhere): .ci/slurm/run-slurm-tests.sh [extra pytest args]
# Exit status: pytest's, or 1 when the cluster cannot start or does not stop cleanly.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/env.sh"
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3

t0=$(date +%s)
teardown() {
    "$here/stop-cluster.sh"
    # Teardown check: the daemons started here are gone.
    for f in slurmctld slurmd; do
        if [ -f "$SLURM_CI_STATE/run/$f.pid" ] && kill -0 "$(cat "$SLURM_CI_STATE/run/$f.pid")" 2>/dev/null; then
            echo "teardown failed: $f still running" >&2
            return 1
        fi
    done
    return 0
}

if ! "$here/start-cluster.sh"; then
    echo "could not start the CI SLURM cluster" >&2
    "$here/stop-cluster.sh" || true
    exit 1
fi
t1=$(date +%s)

cd "$repo"
LATENTOPT_SLURM_TESTS=1 timeout --signal=INT --kill-after=120 2400 \
    "$python" -m pytest -m slurm tests/test_slurm.py -v -s -rxs -p no:cacheprovider "$@"
rc=$?
t2=$(date +%s)

if ! teardown && [ "$rc" = 0 ]; then rc=1; fi
echo "slurm tests: cluster start $((t1 - t0)) s, pytest $((t2 - t1)) s, total $(($(date +%s) - t0)) s, exit $rc"
exit $rc
