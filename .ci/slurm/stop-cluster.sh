#!/usr/bin/env bash
# Tear down what start-cluster.sh started: cancel the CI partition's jobs, stop slurmd, slurmctld and
# (only if start-cluster.sh started it) munged, by their pid files; remove the CI slurm.conf/gres.conf.
# Packages stay installed. Safe to run twice.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

if command -v scancel >/dev/null && [ -f "$SLURM_CONF_DIR/slurm.conf" ]; then
    timeout 10 scancel -p "$SLURM_CI_PARTITION" 2>/dev/null || true
fi

stop_pidfile() {  # stop_pidfile NAME FILE: SIGTERM the pid in FILE, wait up to 10 s, then SIGKILL
    local name=$1 file=$2 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && { echo "$name ($pid) did not stop; SIGKILL" >&2; kill -KILL "$pid"; }
    fi
    rm -f "$file"
}
stop_pidfile slurmd "$SLURM_CI_STATE/run/slurmd.pid"
stop_pidfile slurmctld "$SLURM_CI_STATE/run/slurmctld.pid"
if [ -f "$SLURM_CI_STATE/run/munged.started-by-ci.pid" ]; then
    stop_pidfile munged "$SLURM_CI_STATE/run/munged.started-by-ci.pid"
    rm -f /run/munge/munged.pid
fi

for f in "$SLURM_CONF_DIR/slurm.conf" "$SLURM_CONF_DIR/gres.conf"; do
    [ -f "$f" ] && grep -qF "$SLURM_CI_MARKER" "$f" && rm -f "$f"
done
echo "slurm CI cluster stopped (logs kept in $SLURM_CI_STATE/log)"
