"""The torch-free boundary: importing any module of latentopt.workflow or latentopt.core loads
none of the heavy packages (the Snakefile imports that layer at parse time, in every job)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "pandas", "scipy", "diffusers", "lpips", "pytorch_fid", "matplotlib", "PIL")

# Imports each module in a fresh interpreter and reports, for every heavy package it loaded, the
# chain of latentopt modules whose import reached it (the import stack at the first heavy import).
PROBE = r"""
import builtins, importlib, json, sys
heavy, module = set(sys.argv[1].split(",")), sys.argv[2]
stack, found = [], {}
real_import = builtins.__import__

def tracing_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "?")
    stack.append(importer)
    try:
        top = name.split(".")[0] if level == 0 else None
        if top in heavy and top not in found and top not in sys.modules:
            found[top] = [m for m in stack if m.startswith("latentopt")] + [name]
        return real_import(name, globals, locals, fromlist, level)
    finally:
        stack.pop()

builtins.__import__ = tracing_import
importlib.import_module(module)
loaded = sorted(h for h in heavy if h in sys.modules)
print(json.dumps({h: found.get(h, ["?"]) for h in loaded}))
"""


def _modules(repo_root, package: str) -> list[str]:
    import pkgutil

    folder = repo_root / "workflow_scripts" / "latentopt" / package
    return [f"latentopt.{package}"] + [f"latentopt.{package}.{m.name}" for m in pkgutil.iter_modules([str(folder)])]


@pytest.mark.parametrize("package", ["workflow", "core"])
def test_torch_free_layers_load_no_heavy_package(repo_root, package):
    env = {**os.environ, "PYTHONPATH": str(repo_root / "workflow_scripts")}
    offenders = {}
    for module in _modules(repo_root, package):
        out = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), module], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"importing {module} failed:\n{out.stderr}"
        loaded = json.loads(out.stdout.strip().splitlines()[-1])
        if loaded:
            offenders[module] = {pkg: " -> ".join(chain) for pkg, chain in loaded.items()}
    assert not offenders, "heavy packages loaded by the torch-free layer:\n" + "\n".join(
        f"  {module}: " + "; ".join(f"{pkg} via {chain}" for pkg, chain in found.items())
        for module, found in offenders.items()
    )
