#!/usr/bin/env bash
# Start a one-node SLURM cluster for CI: munged, slurmctld, slurmd (no systemd), two fake GPUs.
# Idempotent enough for CI: refuses to overwrite a slurm.conf it did not write.
# Usage: .ci/slurm/start-cluster.sh        (as root; installs slurm-wlm + munge if missing)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

[ "$(id -u)" = 0 ] || { echo "start-cluster.sh must run as root" >&2; exit 1; }
"$here/install.sh"

for f in "$SLURM_CONF_DIR/slurm.conf" "$SLURM_CONF_DIR/gres.conf"; do
    if [ -e "$f" ] && ! grep -qF "$SLURM_CI_MARKER" "$f"; then
        echo "$f exists and was not written by this script; refusing to overwrite it" >&2
        exit 1
    fi
done

# Daemons left over from an earlier start (a crashed CI run): stop them first.
if ls "$SLURM_CI_STATE"/run/*.pid >/dev/null 2>&1; then
    "$here/stop-cluster.sh" || true
fi
mkdir -p "$SLURM_CI_STATE"/{ctld,d,log,run,dev}
rm -rf "$SLURM_CI_STATE"/ctld/* "$SLURM_CI_STATE"/d/*

# Fake GPUs: character devices (same major/minor as /dev/null). Plain files are not enough: slurmd
# then schedules the GRES but sets no CUDA_VISIBLE_DEVICES.
for i in 0 1; do
    dev="$SLURM_CI_STATE/dev/fakegpu$i"
    [ -c "$dev" ] || { rm -f "$dev"; mknod -m 666 "$dev" c 1 3; }
done

mkdir -p "$SLURM_CONF_DIR"
cat > "$SLURM_CONF_DIR/slurm.conf" <<CONF
$SLURM_CI_MARKER (state in $SLURM_CI_STATE); removed by stop-cluster.sh
ClusterName=latentopt-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$SLURM_CI_STATE/ctld
SlurmdSpoolDir=$SLURM_CI_STATE/d
SlurmctldPidFile=$SLURM_CI_STATE/run/slurmctld.pid
SlurmdPidFile=$SLURM_CI_STATE/run/slurmd.pid
SlurmctldLogFile=$SLURM_CI_STATE/log/slurmctld.log
SlurmdLogFile=$SLURM_CI_STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
ReturnToService=2
# Finished jobs stay visible to squeue for 10 min: the Snakemake plugin polls with squeue because
# there is no slurmdbd (sacct fails, and the plugin would wait forever).
MinJobAge=600
KillWait=5
InactiveLimit=0
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# Use the node description below even where the host has fewer CPUs/less memory than declared.
SlurmdParameters=config_overrides
NodeName=$SLURM_CI_NODE NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$SLURM_CI_CPUS RealMemory=$SLURM_CI_MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=$SLURM_CI_PARTITION Nodes=$SLURM_CI_NODE Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$SLURM_CONF_DIR/gres.conf" <<CONF
$SLURM_CI_MARKER; removed by stop-cluster.sh
AutoDetect=off
NodeName=$SLURM_CI_NODE Name=gpu File=$SLURM_CI_STATE/dev/fakegpu0
NodeName=$SLURM_CI_NODE Name=gpu File=$SLURM_CI_STATE/dev/fakegpu1
CONF

# munge: reuse a running munged, else start one as user munge.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null
    cp /run/munge/munged.pid "$SLURM_CI_STATE/run/munged.started-by-ci.pid"
fi

slurmctld -c          # -c: no saved state (a fresh cluster every time); daemonizes
slurmd -N "$SLURM_CI_NODE"

# Wait until the node is idle (up to 60 s).
state=""
for _ in $(seq 120); do
    state=$(timeout 5 sinfo -h -n "$SLURM_CI_NODE" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.5
done
if [ "$state" != idle ]; then
    echo "node $SLURM_CI_NODE is '$state', not idle; logs follow" >&2
    tail -n 30 "$SLURM_CI_STATE"/log/*.log >&2 || true
    exit 1
fi
sinfo -N -o "%N %P %t %c %m %G"
