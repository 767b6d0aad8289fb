"""The README and docs/: every command they show runs as written, every config key of the schema is
documented, every config fragment they show is a valid config, every relative link resolves, and the
README stays a short guide."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from latentopt.devtools.snakemake_cli import job_stats, snakemake_command
from latentopt.workflow.config import check_config, load_config
from latentopt.workflow.plan import parse_optimize_rule

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]
CONFIG_DOC = REPO / "docs" / "configuration.md"
SCHEMA = REPO / "workflow_scripts" / "latentopt" / "workflow" / "config.schema.yaml"

README_MAX_LINES = 250
README_MAX_LINE_CHARS = 200

# The one command that needs a finished demo run: run by tests/test_pipeline.py on its demo tree.
REPORT_COMMAND = re.compile(r"snakemake --configfile demo/config.yaml --report \S+\.html$")
# Inline `code` that is a command line (prose mentions of a command, not only ```bash blocks).
COMMAND_START = re.compile(r"^(\.venv/bin/|snakemake |make |pytest |python |PYTHONPATH=|mkdir |tar )")
FENCE = re.compile(r"```(\w*)\n(.*?)```", flags=re.S)


def _norm(command: str) -> str:
    """A command line as the pages' commands are compared: shell words, comments dropped."""
    return shlex.join(shlex.split(command, comments=True))


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _block_commands(text: str) -> list[str]:
    """Every command line of a page's ```bash blocks, without its trailing comment."""
    lines = []
    for lang, block in FENCE.findall(text):
        if lang != "bash":
            continue
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(shlex.join(words))
    return lines


def _inline_commands(text: str) -> list[str]:
    """Inline `code` spans outside fenced blocks that start like a command line."""
    prose = FENCE.sub("", text)
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]  # a span may wrap a line
    return [_norm(s) for s in spans if COMMAND_START.match(s)]


def readme_commands() -> list[str]:
    """Every command line of the README's ```bash blocks (tests/test_pipeline.py runs its report command)."""
    return _block_commands(_text(README))


def documented_commands() -> list[str]:
    """Every command the README and docs/*.md show, in ```bash blocks or inline, each once."""
    commands: list[str] = []
    for page in PAGES:
        text = _text(page)
        for c in _block_commands(text) + _inline_commands(text):
            if c not in commands:
                commands.append(c)
    return commands


def yaml_blocks() -> list[tuple[str, str]]:
    """Every ```yaml block of the README and docs (page name, block)."""
    return [(page.name, block) for page in PAGES for lang, block in FENCE.findall(_text(page)) if lang == "yaml"]


# --- the README is a short guide; every page's relative links resolve -----------------------------


def test_readme_is_a_short_guide():
    lines = _text(README).splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    long = [(i, len(line)) for i, line in enumerate(lines, 1) if len(line) > README_MAX_LINE_CHARS]
    assert not long, f"README.md lines over {README_MAX_LINE_CHARS} characters (line, length): {long}"


def test_every_doc_page_is_linked_from_the_readme():
    readme = _text(README)
    assert DOCS, "docs/ holds no page"
    missing = [p.name for p in DOCS if f"(docs/{p.name})" not in readme]
    assert not missing, f"docs pages the README does not link: {missing}"


def _relative_links(text: str) -> list[str]:
    prose = FENCE.sub("", text)
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    return [t for t in targets if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


def test_every_relative_link_points_to_an_existing_file():
    broken = []
    for page in PAGES:
        for target in _relative_links(_text(page)):
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, f"relative links to missing files: {broken}"


def test_every_anchor_of_a_link_into_the_docs_exists():
    """`page.md#heading` links: the heading exists (GitHub's anchor of it)."""

    def anchors(page: Path) -> set[str]:
        heads = re.findall(r"^#+ (.+)$", FENCE.sub("", _text(page)), flags=re.M)
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}

    broken = []
    for page in PAGES:
        text = _text(page)
        links = [t for t in _relative_links(text) if "#" in t] + [f"#{a}" for a in re.findall(r"\]\(#([^)]+)\)", text)]
        for target in links:
            file, anchor = target.split("#", 1)
            dest = (page.parent / file).resolve() if file else page
            if dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, f"links to headings that do not exist: {broken}"


# --- every config key is documented; every config fragment shown is valid -------------------------


def _keys(node, prefix=""):
    for key, sub in node.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if "properties" in sub:
            yield from _keys(sub, dotted + ".")
        elif isinstance(sub.get("additionalProperties"), dict):
            yield from _keys(sub["additionalProperties"], dotted + ".<name>.")
        else:
            yield dotted


def test_every_config_key_is_in_the_configuration_page():
    schema = yaml.safe_load(SCHEMA.read_text())
    doc = _text(CONFIG_DOC)
    lines = doc.splitlines()

    def documented(key: str) -> bool:
        if f"`{key}`" in doc:
            return True
        parent, last = key.rsplit(".", 1)
        # a table row that names a sibling in full and this key as `last`
        return any(f"`{parent}." in line and f"`{last}`" in line for line in lines)

    missing = [k for k in _keys(schema) if not documented(k)]
    assert not missing, f"config keys missing from docs/configuration.md: {missing}"


@pytest.mark.parametrize("page, block", yaml_blocks(), ids=lambda v: v if v.endswith(".md") else None)
def test_every_config_fragment_shown_is_a_valid_config(page, block, tmp_path):
    """Each ```yaml block, merged over config.yaml as --configfile would, validates and passes the
    checks the Snakefile makes (model files are not looked for: a fragment names the user's own)."""
    fragment = tmp_path / "fragment.yaml"
    fragment.write_text(block)
    config = load_config([fragment])
    check_config(config)


# --- every command runs as written ------------------------------------------------------------------

# `make` targets the pages show, each checked with `make -n` (the real ones: the demo pipeline is run
# by tests/test_pipeline.py, a study by tests/test_study_config.py, the suite is this run, lint by
# tests/test_lint.py, the benchmark by tests/test_benchmark.py) and the words its recipe must hold.
MAKE_TARGETS = {
    "make demo": ["latentopt.data.demo_data demo/data", "--configfile demo/config.yaml"],
    "make demo-study": ["latentopt.data.demo_data demo/data", "--configfile demo/study.yaml"],
    "make test": ["pytest -q"],
    "make lint": ["snakemake --lint", "snakefmt --check"],
    "make bench": ["bench/benchmark.py --quick"],
    "make bench-scale-stages": ["bench/benchmark.py --scale-stages"],
    "make progress": ["latentopt.workflow.progress --configfile demo/config.yaml"],
    "make progress CONFIG=config.yaml": ["latentopt.workflow.progress --configfile config.yaml"],
}
UNPACK_COMMAND = "mkdir -p data && tar -xzf BSR_bsds500.tgz -C data"
PYTEST_COMMAND = '.venv/bin/pytest -m "not slow"'
OTHER_COMMANDS = {_norm(c) for c in (". .venv/bin/activate", UNPACK_COMMAND, PYTEST_COMMAND)}


def _is_snakemake(command: str) -> bool:
    return command.startswith(("snakemake ", ".venv/bin/snakemake "))


def test_the_pages_show_only_commands_this_test_runs():
    commands = documented_commands()
    unknown = [
        c for c in commands
        if c not in MAKE_TARGETS and c not in OTHER_COMMANDS and not _is_snakemake(c)
    ]
    assert not unknown, f"commands in README.md or docs/ that tests/test_readme.py does not run: {unknown}"
    assert any(REPORT_COMMAND.search(c) for c in readme_commands())


@pytest.mark.parametrize("command", sorted(MAKE_TARGETS))
def test_make_targets_plan_as_documented(command):
    assert command in documented_commands(), f"{command!r} is no longer documented: drop it here"
    words = shlex.split(command)
    out = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for needed in MAKE_TARGETS[command]:
        assert needed in out.stdout, (needed, out.stdout)


def test_activate_script_exists():
    assert ". .venv/bin/activate" in documented_commands()
    assert (Path(sys.prefix) / "bin" / "activate").is_file()


def test_unpacking_the_bsds500_archive_gives_the_layout_the_config_reads(tmp_path):
    """The documented `tar` line on an archive laid out as BSR_bsds500.tgz is: data/BSR/BSDS500/data/images."""
    command = UNPACK_COMMAND
    assert _norm(command) in documented_commands()
    src = tmp_path / "src" / "BSR" / "BSDS500" / "data" / "images"
    for split in ("train", "val", "test"):
        (src / split).mkdir(parents=True)
        (src / split / f"{split}1.jpg").write_bytes(b"\xff\xd8\xff")
    with tarfile.open(tmp_path / "BSR_bsds500.tgz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "BSR", arcname="BSR")
    out = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data_root = yaml.safe_load((REPO / "config.yaml").read_text())["data"]["root"]
    assert (tmp_path / data_root / "BSDS500" / "data" / "images" / "test" / "test1.jpg").is_file()


def test_pytest_marker_expression_selects_the_fast_tests():
    """`.venv/bin/pytest -m 'not slow'` collects tests and leaves the slow ones out."""
    assert _norm(PYTEST_COMMAND) in documented_commands()
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow", "-p", "no:cacheprovider"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+/\d+ tests collected \(\d+ deselected\)", summary), summary


def snakemake_argv(words: list[str]) -> list[str]:
    """``snakemake``/``.venv/bin/snakemake`` -> this interpreter's Snakemake on the repository's
    Snakefile (the pages run from the repository root; the tests from a scratch folder)."""
    assert words[0] in ("snakemake", ".venv/bin/snakemake"), words
    return snakemake_command(*words[1:], snakefile=REPO / "Snakefile")


def _scratch_root(tmp_path, demo_data):
    """A folder laid out like the repository root of a user who followed the README: data/BSR (the
    demo photos here), a flat folder of their own photos, the demo configs, the profiles, and the
    README's my_overrides.yaml."""
    root = tmp_path / "root"
    shutil.copytree(demo_data, root / "data" / "BSR")
    photos = root / "my_photos"
    photos.mkdir()
    for image in sorted(demo_data.rglob("*.jpg"))[:3]:
        shutil.copy(image, photos / image.name)
    (root / "profiles").symlink_to(REPO / "profiles")
    (root / "demo").mkdir()  # the demo configs, and the demo images `make demo` writes to demo/data
    for item in (REPO / "demo").iterdir():
        if item.name != "data":
            (root / "demo" / item.name).symlink_to(item)
    shutil.copytree(demo_data, root / "demo" / "data")
    overrides = [b for _, b in yaml_blocks() if b.startswith("# my_overrides.yaml")]
    assert len(overrides) == 1, "the README shows my_overrides.yaml once"
    (root / "my_overrides.yaml").write_text(overrides[0])
    return root


def _run(argv, cwd, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LATENTOPT_OFFLINE": "1"}
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"{shlex.join(argv)} failed:\n{text[-4000:]}"
    return text


def _optimize_jobs(dry_run: str) -> int:
    """Optimization jobs in the 'Job stats' table of a dry run."""
    return sum(n for rule, n in job_stats(dry_run).items() if parse_optimize_rule(rule))  # a study's <model>_optimize_... too


def _needs_shared(words: list[str]) -> bool:
    """A command whose config file reads ../shared (real BSDS500 photos, TAEF2 weights)."""
    if "--configfile" not in words:
        return False
    path = REPO / words[words.index("--configfile") + 1]
    return path.is_file() and "../shared" in path.read_text()  # a user's own file (my_overrides.yaml) is not in the repository


def _check_snakemake_command(command: str, root: Path) -> None:
    """Run one documented snakemake command from ``root``: as written plus `-n` (the real runs need
    GPUs, pretrained weights or hours); `--unlock` and `--summary` as written."""
    words = shlex.split(command)
    if "|" in words:  # `snakemake -n --summary | head`: the pipe only shortens the output
        words = words[: words.index("|")]
    dry = [] if ("-n" in words or "--unlock" in words) else ["-n"]
    text = _run(snakemake_argv(words) + dry, cwd=root)
    assert "is not of type" not in text and "invalid configuration" not in text, text[-3000:]
    if "--unlock" in words:
        assert "Unlock" in text, text[-3000:]
        return
    if "--summary" in words:
        assert "/per_image/" in text, text[-3000:]
        return
    assert "This was a dry-run" in text, text[-3000:]
    if "use_losses='[psnr]'" in command or "use_losses=[psnr]" in command:
        # 8 demo photos, 1 image per job, the plain reconstruction and psnr only
        assert _optimize_jobs(text) == 16, text[-3000:]
    if "my_overrides.yaml" in command:
        assert _optimize_jobs(text) == 6, text[-3000:]  # 1 image per split, 1 job per split, baseline + ssim
    if "my_photos" in command:
        assert _optimize_jobs(text) > 0 and "my_photos" in text, text[-3000:]


@pytest.mark.slow
def test_every_snakemake_command_of_the_pages_runs_as_written(tmp_path, demo_data):
    """Each `snakemake ...` command of the README and docs, from a folder laid out like the
    repository root (those that read ../shared: the next test)."""
    root = _scratch_root(tmp_path, demo_data)
    commands = [
        c for c in documented_commands()
        if _is_snakemake(c) and not REPORT_COMMAND.search(c) and not _needs_shared(shlex.split(c))
    ]
    assert len(commands) >= 6, commands
    for command in commands:
        _check_snakemake_command(command, root)


@pytest.mark.slow
def test_commands_on_real_photos_and_taef2_plan_as_written(tmp_path, demo_data, bsds_root, taef2_dir):
    """The commands whose configs read ../shared (demo/taef2.yaml, demo/study_taef2.yaml), from a
    repository root whose ../shared is the real material (skipped without it)."""
    shared = bsds_root.parents[1]
    assert taef2_dir.parent.parent == shared, (taef2_dir, shared)
    root = _scratch_root(tmp_path, demo_data)
    (tmp_path / "shared").symlink_to(shared)
    commands = [c for c in documented_commands() if _is_snakemake(c) and _needs_shared(shlex.split(c))]
    assert {"demo/taef2.yaml", "demo/study_taef2.yaml"} <= {w for c in commands for w in shlex.split(c)}, commands
    for command in commands:
        text = _run(snakemake_argv(shlex.split(command)) + ["-n"], cwd=root)
        assert "This was a dry-run" in text and _optimize_jobs(text) > 0, text[-3000:]


@pytest.mark.slow
def test_progress_command_reports_a_planned_run(tmp_path, demo_data):
    """`make progress CONFIG=config.yaml`'s command, from a root laid out like the README's, on a run
    not started yet: every image left, nothing written."""
    root = _scratch_root(tmp_path, demo_data)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow_scripts")}
    out = subprocess.run([sys.executable, "-m", "latentopt.workflow.progress", "--configfile", str(REPO / "config.yaml")],
                         cwd=root, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    images = len(list((root / "data" / "BSR").rglob("*.jpg")))
    arms = 1 + len(yaml.safe_load((REPO / "config.yaml").read_text())["losses"])  # the plain reconstruction + each loss
    assert re.search(rf"^all\s+0\s+0\s+{images * arms}\b", out.stdout, flags=re.M), out.stdout
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
