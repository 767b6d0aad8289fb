"""Sweeps (issue 18): a losses entry listing values for lr / iterations / eps becomes one ordinary
arm per combination (latentopt.workflow.sweeps, expanded by latentopt.workflow.config)."""

from __future__ import annotations

import copy
import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, seed_config, snakemake_cmd, write_config

from latentopt.devtools.snakemake_cli import chunk_stats, job_stats
from latentopt.workflow import layout
from latentopt.workflow.config import (
    ConfigError,
    arm_settings,
    check_config,
    coerce_config,
    expand_sweeps,
    load_config,
    validate_config,
)
from latentopt.workflow.plan import parse_optimize_rule, selected_losses
from latentopt.workflow.settings import in_use
from latentopt.workflow.sweeps import RECORD, format_value, sweep_groups

PSNR = {"loss": {"name": "psnr"}}


def _config(losses: dict, **top) -> dict:
    """The repository's config with ``losses`` replacing its entries, validated and expanded."""
    cfg = seed_config()
    cfg["losses"] = copy.deepcopy(losses)
    cfg.update(copy.deepcopy(top))
    return expand_sweeps(validate_config(coerce_config(cfg)))


def test_expanded_arms_are_the_product_in_the_listed_order():
    cfg = _config({"psnr": {**PSNR, "lr": [0.02, 0.05, 0.1], "iterations": [25, 50]}, "l1": {"loss": {"name": "l1"}}})
    # keys in the fixed order lr, iterations; values as written; the plain entry kept after them
    expected = [f"psnr-lr{lr}-it{it}" for lr, it in itertools.product(["0.02", "0.05", "0.1"], [25, 50])] + ["l1"]
    assert list(cfg["losses"]) == expected
    for name, (lr, it) in zip(expected, itertools.product([0.02, 0.05, 0.1], [25, 50])):
        block = cfg["losses"][name]
        assert (block["lr"], block["iterations"]) == (lr, it)
        assert block[RECORD] == {"base": "psnr", "values": {"lr": lr, "iterations": it}}
    assert RECORD not in cfg["losses"]["l1"]
    assert sweep_groups(cfg) == {"psnr": [{"arm": n, "values": {"lr": lr, "iterations": it}}
                                          for n, (lr, it) in zip(expected, itertools.product([0.02, 0.05, 0.1], [25, 50]))]}
    check_config(cfg)


def test_yaml_key_order_does_not_change_names():
    a = _config({"psnr": {**PSNR, "iterations": [25], "lr": [0.1]}})
    b = _config({"psnr": {**PSNR, "lr": [0.1], "iterations": [25]}})
    assert list(a["losses"]) == list(b["losses"]) == ["psnr-lr0.1-it25"]


@pytest.mark.parametrize("value, text", [(0.1, "0.1"), (1e-05, "1e-5"), (2.5e-7, "2.5e-7"), (100, "100"), (1.0, "1"),
                                         (0.0001, "0.0001"), (1e20, "1e20"), (3e-4, "0.0003"), (1.5e-10, "1.5e-10")])
def test_values_are_written_canonically(value, text):
    assert format_value(value) == text


def test_value_texts_read_back_as_the_value_and_are_safe_in_paths(rng):
    values = [float(v) for v in 10.0 ** rng.uniform(-12, 3, 500)] + [float(v) for v in rng.integers(1, 10**6, 50)]
    for v in values:
        text = format_value(v)
        assert float(text) == v, (v, text)  # round trip: distinct values, distinct names
        assert re.fullmatch(r"[0-9][0-9.e-]*", text) and not text.endswith("."), text


def test_one_value_list_is_a_sweep_and_names_stay_when_a_list_grows():
    plain = _config({"psnr": {**PSNR, "lr": 0.1}})
    one = _config({"psnr": {**PSNR, "lr": [0.1]}})
    grown = _config({"psnr": {**PSNR, "lr": [0.1, 0.2]}})
    assert list(plain["losses"]) == ["psnr"] and RECORD not in plain["losses"]["psnr"]
    assert list(one["losses"]) == ["psnr-lr0.1"]
    assert list(grown["losses"]) == ["psnr-lr0.1", "psnr-lr0.2"]
    # the arm that was already there keeps its settings, hence its results
    assert arm_settings(one, "psnr-lr0.1") == arm_settings(grown, "psnr-lr0.1")


def test_expansion_is_idempotent():
    cfg = _config({"psnr": {**PSNR, "lr": [0.02, 0.1], "eps": [1e-8, 1e-6]}, "ssim": {"loss": {"name": "ssim"}}},
                  use_losses=["psnr"])
    again = expand_sweeps(validate_config(coerce_config(copy.deepcopy(cfg))))
    assert again == cfg
    # also after a round trip through YAML (a config written out and read again, or handed to a module)
    reread = expand_sweeps(validate_config(coerce_config(yaml.safe_load(yaml.safe_dump(cfg, sort_keys=False)))))
    assert reread == cfg
    assert [arm_settings(reread, a) for a in reread["losses"]] == [arm_settings(cfg, a) for a in cfg["losses"]]


def test_params_equal_those_of_a_hand_written_arm():
    block = {**PSNR, "iterations": 40, "lr": [0.02, 0.1], "stopping": {"rule": "absolute", "threshold": 1e-4}}
    hand = {**block, "lr": 0.1}
    cfg = _config({"psnr": block, "psnr_by_hand": hand})
    swept, by_hand = arm_settings(cfg, "psnr-lr0.1"), arm_settings(cfg, "psnr_by_hand")
    assert swept["arm"] == "psnr-lr0.1" and by_hand["arm"] == "psnr_by_hand"
    assert RECORD not in swept
    rest = lambda p: json.dumps({k: v for k, v in p.items() if k != "arm"})  # noqa: E731  (key order too)
    assert rest(swept) == rest(by_hand)


def test_a_config_without_lists_keeps_its_params_byte_for_byte():
    """Expansion leaves a config without lists as validation made it, and the params are what they
    were: the common keys, then the validated block verbatim (ArmSettings.params)."""
    for configfiles in ([], [REPO / "demo" / "config.yaml"]):
        validated = validate_config(coerce_config(_raw(configfiles)))
        before = copy.deepcopy(validated)
        expanded = expand_sweeps(validated)
        assert json.dumps(expanded) == json.dumps(before)
        expanded_loaded = load_config(configfiles)
        assert json.dumps(expanded_loaded) == json.dumps(before)
        for arm in ["baseline", *before["losses"]]:
            params = arm_settings(expanded_loaded, arm)
            if arm != "baseline":  # the block less the method/schedule keys left at their defaults
                block = in_use(before["losses"][arm])
                tail = list(params)[-len(block):]
                assert tail == list(block) and {k: params[k] for k in tail} == block
            assert json.dumps(params) == json.dumps(arm_settings(before, arm))


def _raw(configfiles) -> dict:
    from latentopt.workflow.config import REPO_CONFIG, merge_config

    cfg: dict = {}
    for path in [REPO_CONFIG, *configfiles]:
        merge_config(cfg, yaml.safe_load(Path(path).read_text()))
    return cfg


def test_use_losses_by_entry_or_by_arm():
    losses = {"psnr": {**PSNR, "lr": [0.02, 0.05, 0.1]}, "ssim": {"loss": {"name": "ssim"}}}
    arms = ["psnr-lr0.02", "psnr-lr0.05", "psnr-lr0.1"]
    assert selected_losses(_config(losses, use_losses=["psnr"])) == arms
    assert selected_losses(_config(losses, use_losses=["ssim", "psnr"])) == ["ssim", *arms]
    assert selected_losses(_config(losses, use_losses=["psnr-lr0.05"])) == ["psnr-lr0.05"]
    assert selected_losses(_config(losses, use_losses=["psnr-lr0.05", "psnr"])) == ["psnr-lr0.05", "psnr-lr0.02", "psnr-lr0.1"]
    assert selected_losses(_config(losses)) == [*arms, "ssim"]
    with pytest.raises(ConfigError, match=r"^use_losses: \['psnr-lr0.2'\] not defined"):
        check_config(_config(losses, use_losses=["psnr-lr0.2"]))


def test_expected_fid_of_an_entry_applies_to_its_arms():
    cfg = _config({"psnr": {**PSNR, "lr": [0.02, 0.1]}},
                  analysis={"hypotheses": {"expected_fid": {"psnr": {"low": 1, "high": 2, "tolerance": 0},
                                                            "psnr-lr0.1": {"low": 5, "high": 6, "tolerance": 1}}}})
    expected = cfg["analysis"]["hypotheses"]["expected_fid"]
    assert expected["psnr-lr0.02"] == {"low": 1, "high": 2, "tolerance": 0}
    assert expected["psnr-lr0.1"] == {"low": 5, "high": 6, "tolerance": 1}  # its own range kept
    check_config(cfg)


@pytest.mark.parametrize("key, value, where", [
    ("lr", [], "losses.psnr.lr"),
    ("lr", [0.1, -1], "losses.psnr.lr[1]"),
    ("lr", [0.1, 0.1], "losses.psnr.lr"),
    ("lr", [0.1, "x"], "losses.psnr.lr[1]"),
    ("iterations", [10, 2.5], "losses.psnr.iterations[1]"),
    ("iterations", [0], "losses.psnr.iterations[0]"),
    ("eps", [0], "losses.psnr.eps[0]"),
    ("lr", "fast", "losses.psnr.lr"),
])
def test_bad_values_are_rejected_naming_the_key(key, value, where):
    with pytest.raises(ConfigError) as err:
        load_config([], {f"losses.psnr.{key}": value})
    assert str(err.value).startswith(where + ":"), str(err.value)


def test_empty_or_repeated_lists_say_what_a_sweep_takes():
    for value, problem in (([], "[] is empty"), ([5, 5], "[5, 5] lists a value twice")):
        with pytest.raises(ConfigError, match=re.escape(f"losses.psnr.iterations: {problem}; give one value or a "
                                                         "non-empty list of distinct values (a sweep)")):
            load_config([], {"losses.psnr.iterations": value})


def test_non_sweepable_keys_take_no_list():
    with pytest.raises(ConfigError, match=r"losses.psnr.betas\[0\]: \[0.9, 0.999\] is not a number"):
        load_config([], {"losses.psnr.betas": [[0.9, 0.999], [0.5, 0.9]]})


def test_names_with_a_dash_are_the_pipelines():
    with pytest.raises(ConfigError, match=r"^losses.my-loss: names with '-' are reserved"):
        load_config([], {"losses.my-loss": {**PSNR}})
    cfg = _config({"psnr": {**PSNR, "lr": [0.02, 0.1]}})
    forged = copy.deepcopy(cfg)
    forged["losses"]["psnr-lr0.1"]["lr"] = 0.3  # the block no longer is what its name says
    with pytest.raises(ConfigError, match=r"^losses.psnr-lr0.1.lr: 0.3 differs"):
        expand_sweeps(validate_config(forged))
    renamed = copy.deepcopy(cfg)
    renamed["losses"]["psnr-lr0.5"] = renamed["losses"].pop("psnr-lr0.1")
    with pytest.raises(ConfigError, match=r"^losses.psnr-lr0.5.sweep: .* names the arm 'psnr-lr0.1'"):
        expand_sweeps(validate_config(renamed))


def test_command_line_strings_are_coerced():
    """--config hands nested values over as strings (YAML's BaseLoader)."""
    for lr in (["0.02", "0.1"], "[0.02, 0.1]"):
        cfg = load_config([], {"losses.psnr.lr": lr, "losses.psnr.iterations": ["25"]})
        assert [(b["lr"], b["iterations"]) for b in cfg["losses"].values()][:2] == [(0.02, 25), (0.1, 25)]
        assert list(cfg["losses"])[:2] == ["psnr-lr0.02-it25", "psnr-lr0.1-it25"]


def test_wildcard_regex_matches_exactly_one_name():
    names = ["baseline", "psnr-lr0.1", "psnr-lr1e-5-it50", "ssim"]
    regex = layout.one_of(names)
    for n in names:
        assert re.fullmatch(f"(?:{regex})", n)
    for other in ("psnr-lr0x1", "psnr-lr0.10", "psnr", "psnr-lr1e-5"):
        assert not re.fullmatch(f"(?:{regex})", other), other
    # names without metacharacters: the plain alternation of before
    assert layout.one_of(["baseline", "psnr", "lpips_2"]) == "baseline|psnr|lpips_2"


def _dry_run(tmp_path: Path, demo_data: Path, name: str, losses: dict, use_losses: list[str]) -> str:
    cfg = write_config(tmp_path / f"{name}.yaml", tmp_path / f"results_{name}", demo_data,
                       model={"kind": "synthetic_kl"}, losses=losses, use_losses=use_losses)
    out = subprocess.run(snakemake_cmd(cfg, "-n"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def _arms_of(plan: str) -> dict[str, set[str]]:
    """rule -> the arm (or features name) wildcards of its planned jobs."""
    out: dict[str, set[str]] = {}
    rule = None
    for line in plan.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            parsed = parse_optimize_rule(rule)
            if parsed:  # one rule per (chunk, arm): the arm is in its name
                out.setdefault(f"{parsed[0]}optimize_{parsed[1]}", set()).add(parsed[2])
        elif line.startswith("wildcards:") and rule:
            wild = dict(part.split("=", 1) for part in line.removeprefix("wildcards:").strip().split(", "))
            if "arm" in wild or "name" in wild:
                out.setdefault(rule, set()).add(wild.get("arm", wild.get("name")))
    return out


def test_dry_run_of_a_three_value_sweep(tmp_path, demo_data):
    """A 3-value lr sweep plans what the same three arms written by hand plan, job for job, each
    job on the expanded arm's own outputs (the demo config, 8 photos)."""
    lrs, names = [0.02, 0.05, 0.1], ["psnr-lr0.02", "psnr-lr0.05", "psnr-lr0.1"]
    swept = _dry_run(tmp_path, demo_data, "swept", {"psnr": {**PSNR, "lr": lrs}}, ["psnr"])
    hand = _dry_run(tmp_path, demo_data, "hand", {f"psnr_{i}": {**PSNR, "lr": lr} for i, lr in enumerate(lrs)},
                    ["psnr_0", "psnr_1", "psnr_2"])
    assert chunk_stats(swept) == chunk_stats(hand), (chunk_stats(swept), chunk_stats(hand))
    assert job_stats(swept)["quality_gate"] == 3 and job_stats(swept)["record_settings"] == 4
    arms = _arms_of(swept)
    for rule in ("record_settings", "build_dataset", "evaluate_dataset"):
        assert arms[rule] == {"baseline", *names}, (rule, arms.get(rule))
    assert arms["inception_features"] == {"original", "baseline", *names}
    assert arms["quality_gate"] == set(names)
    optimize = [r for r in arms if r.startswith("optimize_")]
    assert optimize and all(arms[r] == {"baseline", *names} for r in optimize), {r: arms[r] for r in optimize}
    results = tmp_path / "results_swept"
    for n in names:
        for path in (layout.gate_file(results, n), layout.dataset_manifest(results, n), layout.arm_settings_file(results, n)):
            assert str(path) in swept, path


def test_start_lines_name_each_sweeps_arms():
    from latentopt.workflow.messages import start_lines

    swept = _config({"psnr": {**PSNR, "lr": [0.02, 0.1]}, "l1": {"loss": {"name": "l1"}}})
    assert start_lines(swept)[2:] == ["latentopt: sweep psnr: 2 arm(s): psnr-lr0.02, psnr-lr0.1"]
    assert len(start_lines(_config({"psnr": {**PSNR}}))) == 2  # no sweep, no line


def test_a_study_runs_each_sweep_arm_per_model(tmp_path, demo_data):
    """With `models` (a study) each model's one-model config holds the sweep's arms, re-validated
    unchanged inside its Snakemake module; the comparison's params list the sweep."""
    from latentopt.workflow.study import model_configs, study_params

    models = {"small": {"kind": "synthetic_kl", "seed": 1}, "large": {"kind": "synthetic_kl", "seed": 2}}
    cfg = load_config([REPO / "demo" / "config.yaml"], {"results_dir": str(tmp_path / "r"), "models": models,
                                                        "losses.psnr.lr": [0.02, 0.1], "use_losses": ["psnr"]})
    arms = ["psnr-lr0.02", "psnr-lr0.1"]
    for sub in model_configs(cfg).values():
        assert selected_losses(sub) == arms
        again = expand_sweeps(validate_config(coerce_config(copy.deepcopy(sub))))  # what the module does
        assert {k: v for k, v in again.items() if k not in ("models", "use_models")} == sub  # + the schema's defaults
    assert study_params(cfg)["sweeps"] == {"psnr": {"psnr-lr0.02": {"lr": 0.02}, "psnr-lr0.1": {"lr": 0.1}}}


def test_dry_run_of_a_study_with_a_sweep(tmp_path, demo_data):
    models = {"small": {"kind": "synthetic_kl", "seed": 1}, "large": {"kind": "synthetic_kl", "seed": 2}}
    arms = ["psnr-lr0.02", "psnr-lr0.1"]
    path = write_config(tmp_path / "study.yaml", tmp_path / "r", demo_data, models=models,
                        losses={"psnr": {"lr": [0.02, 0.1]}}, use_losses=["psnr"])
    out = subprocess.run(snakemake_cmd(path, "-n"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    jobs = job_stats(out.stdout)
    assert jobs["compare_models"] == 1 and jobs["study_explorer"] == 1
    for m in models:
        assert jobs[f"{m}_quality_gate"] == 2 and jobs[f"{m}_record_settings"] == 3
    for m, a in itertools.product(models, arms):
        assert str(layout.dataset_manifest(tmp_path / "r" / m, a)) in out.stdout


@pytest.mark.slow
def test_a_sweep_runs_end_to_end_and_a_grown_list_adds_only_its_new_arm(tmp_path, demo_data):
    """A 2-value lr sweep (3 images, 3 iterations) runs to its report; the report lists each arm;
    nothing is left to do; with a third value only the new arm's jobs (and the aggregates) are planned."""
    from conftest import snakemake

    def config(lrs, name):
        return write_config(tmp_path / f"{name}.yaml", tmp_path / "results", demo_data,
                            model={"kind": "synthetic_kl"}, data={"limit_per_split": 1}, use_losses=["psnr"],
                            losses={"psnr": {**PSNR, "lr": lrs, "iterations": [3]}},
                            quality_gate={"images_per_loss": 1, "mode": "warn"}, run={"images_per_job": 2, "batch_size": 2},
                            evaluation={"n_boot": 10, "fid_n_boot": 10})

    first = config([0.05, 0.1], "first")
    snakemake(first, timeout=1800)
    report = layout.report_file(tmp_path / "results").read_text()
    for arm in ("psnr-lr0.05-it3", "psnr-lr0.1-it3"):
        assert f"| {arm} |" in report
        assert layout.dataset_manifest(tmp_path / "results", arm).is_file()
    assert "Nothing to be done" in snakemake(first, "-n").stdout + snakemake(first, "-n").stderr
    grown = snakemake(config([0.05, 0.1, 0.2], "grown"), "-n").stdout
    arms = _arms_of(grown)
    assert set().union(*arms.values()) == {"psnr-lr0.2-it3"}, arms
    assert job_stats(grown)["record_settings"] == 1 and job_stats(grown)["build_dataset"] == 1
