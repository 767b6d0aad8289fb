"""What an optimize job's import chain loads: the entry point of the optimize rules, imported in a
fresh interpreter, must not pull the heavy packages only some arms or models need (each costs
seconds of CPU per job before its first image; they are imported where they are used)."""

import json
import os
import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "workflow_scripts"
# imported by the job only when its arm or model needs them
ON_DEMAND = ["lpips", "torchvision", "torch._dynamo", "diffusers", "pandas", "scipy", "matplotlib", "sklearn"]


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(LIBRARY)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_optimize_job_entry_point_imports_no_on_demand_package():
    # the modules the job script (workflow_scripts/optimize_images.py) imports before its first image
    loaded = modules_after("import latentopt.core.stage_times, latentopt.core.joblog, latentopt.optimize.job")
    assert "torch" in loaded and "latentopt.optimize.job" in loaded
    assert sorted(m for m in ON_DEMAND if m in loaded) == []
