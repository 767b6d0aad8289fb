#!/usr/bin/env bash
# Install SLURM (controller, node daemon, client commands) and munge from Debian, unless present.
# Needs root and a reachable Debian mirror. No systemd is needed: start-cluster.sh starts the daemons.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
    echo "slurm + munge already installed: $(slurmctld -V)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
timeout 600 apt-get update -qq
# slurm-wlm pulls slurmctld, slurmd and slurm-client; the postinst scripts try to start services,
# which fails harmlessly in a container without systemd (policy-rc.d / no init).
timeout 900 apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
echo "installed: $(slurmctld -V)"
