"""The workflow stays `snakemake --lint` and `snakefmt --check` clean."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("configfile", ["demo/config.yaml", "demo/study.yaml"])  # one model; a study (rules/study*.smk)
def test_snakemake_lint_is_clean(demo_data, tmp_path, configfile):
    (tmp_path / "c.yaml").write_text(f"data: {{root: {demo_data}}}\nresults_dir: {tmp_path / 'results'}\n")
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--configfile", configfile, str(tmp_path / "c.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "Congratulations" in text, text[-3000:]


def test_snakefmt_is_clean():
    snakefmt = Path(sys.executable).with_name("snakefmt")
    out = subprocess.run([str(snakefmt), "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
