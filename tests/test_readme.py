"""The README documents every config key the schema accepts."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _keys(node, prefix=""):
    for key, sub in node.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if "properties" in sub:
            yield from _keys(sub, dotted + ".")
        elif isinstance(sub.get("additionalProperties"), dict):
            yield from _keys(sub["additionalProperties"], dotted + ".<name>.")
        else:
            yield dotted


def test_every_config_key_is_in_the_readme():
    schema = yaml.safe_load((REPO / "workflow_scripts" / "latentopt" / "workflow" / "config.schema.yaml").read_text())
    readme = (REPO / "README.md").read_text()
    lines = readme.splitlines()

    def documented(key: str) -> bool:
        if f"`{key}`" in readme:
            return True
        parent, last = key.rsplit(".", 1)
        # a table row that names a sibling in full and this key as `last`
        return any(f"`{parent}." in line and f"`{last}`" in line for line in lines)

    missing = [k for k in _keys(schema) if not documented(k)]
    assert not missing, f"undocumented config keys: {missing}"


# --- every command the README shows runs as written ------------------------------------------------

import os  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from latentopt.devtools.snakemake_cli import job_stats, snakemake_command  # noqa: E402
from latentopt.workflow.plan import parse_optimize_rule  # noqa: E402

# Commands named in the README's prose (outside ```bash blocks) that the test runs too.
INLINE_COMMANDS = ["snakemake --cores 2 --configfile demo/taef2.yaml", "snakemake --cores 2 --configfile demo/study_taef2.yaml"]
# The one command that needs a finished demo run: run by tests/test_pipeline.py on its demo tree.
REPORT_COMMAND = re.compile(r"snakemake --configfile demo/config.yaml --report \S+\.html$")


def readme_commands() -> list[str]:
    """Every command line of the README's ```bash blocks, without its trailing comment."""
    text = (REPO / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(shlex.join(words))
    return lines


def snakemake_argv(words: list[str]) -> list[str]:
    """``snakemake``/``.venv/bin/snakemake`` -> this interpreter's Snakemake on the repository's
    Snakefile (the README runs from the repository root; the tests from a scratch folder)."""
    assert words[0] in ("snakemake", ".venv/bin/snakemake"), words
    return snakemake_command(*words[1:], snakefile=REPO / "Snakefile")


def _scratch_root(tmp_path, demo_data):
    """A folder laid out like the repository root for a user who followed 'The full BSDS500
    experiment': data/BSR (the demo photos here), the profiles, an overrides file."""
    shutil.copytree(demo_data, tmp_path / "data" / "BSR")
    (tmp_path / "profiles").symlink_to(REPO / "profiles")
    (tmp_path / "my_overrides.yaml").write_text("use_losses: [ssim]\ndata: {limit_per_split: 1}\n")
    return tmp_path


def _run(argv, cwd, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LATENTOPT_OFFLINE": "1"}
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"{shlex.join(argv)} failed:\n{text[-4000:]}"
    return text


def _optimize_jobs(dry_run: str) -> int:
    """Optimization jobs in the 'Job stats' table of a dry run."""
    return sum(n for rule, n in job_stats(dry_run).items() if parse_optimize_rule(rule))  # a study's <model>_optimize_... too


def test_readme_shows_the_commands_this_test_knows():
    known = {"make demo", "make demo-study", "make test", ". .venv/bin/activate"}
    commands = readme_commands()
    unknown = [c for c in commands if c not in known and not c.startswith("snakemake ") and not REPORT_COMMAND.search(c)]
    assert not unknown, f"README commands this test does not run: {unknown}"
    assert any(REPORT_COMMAND.search(c) for c in commands)


@pytest.mark.parametrize("target", ["demo", "demo-study", "test"])
def test_make_targets_of_the_quick_start(target):
    """`make demo` / `make demo-study` / `make test` as a dry run (the real ones: the demo
    pipeline is run by tests/test_pipeline.py, a study by tests/test_study_config.py, the suite
    is this run)."""
    assert f"make {target}" in readme_commands()
    out = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    if target.startswith("demo"):
        config = "demo/config.yaml" if target == "demo" else "demo/study.yaml"
        assert "latentopt.data.demo_data demo/data" in out.stdout and f"--configfile {config}" in out.stdout


def test_activate_script_exists():
    assert ". .venv/bin/activate" in readme_commands()
    assert (Path(sys.prefix) / "bin" / "activate").is_file()


@pytest.mark.slow
def test_every_snakemake_command_of_the_readme_plans_as_written(tmp_path, demo_data):
    """Each `snakemake ...` line of the README, as written plus `-n` (the real runs need GPUs,
    pretrained weights or hours), from a folder laid out like the repository root."""
    root = _scratch_root(tmp_path, demo_data)
    commands = [c for c in readme_commands() if c.startswith("snakemake ") and not REPORT_COMMAND.search(c)]
    assert len(commands) >= 5, commands
    for command in commands:
        words = shlex.split(command)
        if "|" in words:  # `snakemake -n --summary | head`: the pipe only shortens the output
            words = words[: words.index("|")]
        dry = [] if "-n" in words else ["-n"]
        text = _run(snakemake_argv(words) + dry, cwd=root)
        assert "is not of type" not in text and "invalid configuration" not in text, text[-3000:]
        if "--summary" in words:
            assert "/per_image/" in text
        else:
            assert "This was a dry-run" in text, text[-3000:]
        if "use_losses='[psnr]'" in command or "use_losses=[psnr]" in command:
            # 8 demo photos, 1 image per job, the baseline and psnr only
            assert _optimize_jobs(text) == 16, text[-3000:]
        if "my_overrides.yaml" in command:
            assert _optimize_jobs(text) == 6, text[-3000:]  # 1 image per split, 1 job per split, baseline + ssim


@pytest.mark.slow
def test_inline_taef2_command_plans_as_written(bsds_root, taef2_dir):
    """The README's TAEF2 command, run from the repository root where its relative ../shared paths
    point (skipped without ../shared)."""
    for command in INLINE_COMMANDS:
        assert f"`{command}`" in (REPO / "README.md").read_text()
        text = _run(snakemake_argv(shlex.split(command)) + ["-n"], cwd=REPO)
        assert "This was a dry-run" in text and _optimize_jobs(text) > 0
