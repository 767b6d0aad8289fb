# Shared settings of the CI SLURM cluster (sourced by the other scripts in .ci/slurm).
# One node, "latentopt-ci", on 127.0.0.1 with two FAKE GPUs (character devices, no CUDA): SLURM
# allocates them as GRES and sets CUDA_VISIBLE_DEVICES per job, which is what the pipeline's
# device handling (workflow_scripts/latentopt/compute/devices.py) relies on.
SLURM_CI_STATE=${SLURM_CI_STATE:-/tmp/latentopt-slurm}   # spool, state, logs, pid files, fake devices
SLURM_CI_NODE=latentopt-ci
SLURM_CI_PARTITION=ci
SLURM_CI_CPUS=${SLURM_CI_CPUS:-8}                        # declared, not measured (config_overrides)
SLURM_CI_MEM_MB=${SLURM_CI_MEM_MB:-131072}               # declared; memory is not a consumable here
SLURM_CI_MARKER="# written by latentopt .ci/slurm/start-cluster.sh"
SLURM_CONF_DIR=/etc/slurm
