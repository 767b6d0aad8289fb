"""The per-image table with the metric networks fed batches of one shape (latentopt.analysis.scoring)
holds the rows of one image at a time: the same rows in the plan's order, failed records where
they were, every metric equal within its precision; and the evaluate_dataset job runs torch on
its threads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentopt.analysis import scoring
from latentopt.analysis.scoring import per_image_table, shape_batches
from latentopt.compute.devices import torch_threads
from latentopt.core.fileio import write_json
from latentopt.data.images import write_png
from latentopt.metrics.image_metrics import batch_image_metrics, image_metrics
from latentopt.metrics.lpips_network import lpips_network
from latentopt.metrics.visual_quality import visual_metrics
from latentopt.workflow import layout

ARM = "psnr"
# float64 metrics (PSNR, SSIM, MSE, MAE; the numpy visual metrics): batching changes at most the
# summation order
F64_RTOL = 1e-9
# LPIPS runs in the networks' float32: another batch shape may take another convolution algorithm
# (as another thread count does), so agreement is to float32 rounding, accumulated through the
# trunk's layers
LPIPS_RTOL = 100 * float(np.finfo(np.float32).eps)
SHAPES = ((48, 64), (64, 48))  # landscape and portrait, as BSDS500's two orientations


@pytest.fixture(scope="module")
def nets():
    return {net: lpips_network(net, random_trunk=True) for net in ("alex", "vgg")}


def write_arm(results, rng, plan) -> list:
    """PNGs, originals and per-image records for ``plan`` [(image_id, shape, status)], in order."""
    records = []
    for image_id, (h, w), status in plan:
        ref = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pred = np.clip(ref + rng.normal(0, 12, ref.shape), 0, 255).round().astype(np.uint8)
        write_png(layout.original_png(results, "test", image_id), ref)
        record = {"arm": ARM, "split": "test", "image_id": image_id, "status": status,
                  "reason": None if status == "ok" else "out of memory", "settings": {"lr": 0.1, "loss": {"name": "psnr"}},
                  "batch": {"size": 2, "image_ids": [image_id]}, "best_loss": float(rng.random())}
        if status == "ok":  # a failed image has no published PNG and no initial metrics
            write_png(layout.dataset_png_dir(results, ARM) / "test" / f"{image_id}.png", pred)
            record["initial"] = {"psnr": float(rng.random())}
        records.append(layout.per_image(results, ARM, "test", image_id, "json"))
        write_json(records[-1], record)
    return records


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    """Seven records: the two shapes interleaved unevenly, a failed record between ok ones."""
    rng = np.random.default_rng(0)
    results = tmp_path_factory.mktemp("results")
    shapes = [SHAPES[k] for k in (0, 1, 0, 0, 1, 0, 1)]
    plan = [(f"img{i}", shape, "failed" if i == 3 else "ok") for i, shape in enumerate(shapes)]
    return results, write_arm(results, rng, plan), plan


@pytest.fixture(scope="module")
def one_at_a_time(arm, nets):
    results, records, _ = arm
    return per_image_table(records, results, nets, batch_size=1)


def metric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c in ("psnr", "ssim", "mse", "mae", "gmsd", "delta_e00", "sharpness_ratio") or c.startswith("lpips_")]


def test_one_at_a_time_is_image_metrics_of_each_image(arm, nets, one_at_a_time):
    """batch_size 1 is image_metrics + visual_metrics image by image, exactly; failed rows carry no metric."""
    from latentopt.data.images import read_rgb

    results, _, plan = arm
    assert list(one_at_a_time["image_id"]) == [image_id for image_id, _, _ in plan]
    for (image_id, _, status), (_, row) in zip(plan, one_at_a_time.iterrows()):
        assert row["status"] == status
        if status != "ok":
            assert row[metric_columns(one_at_a_time)].isna().all()
            continue
        pred = read_rgb(layout.dataset_png_dir(results, ARM) / "test" / f"{image_id}.png")
        ref = read_rgb(layout.original_png(results, "test", image_id))
        expected = {**image_metrics(pred, ref, nets), **visual_metrics(pred, ref)}
        assert {k: row[k] for k in expected} == expected


@pytest.mark.parametrize("batch_size", [2, 3, 16])  # full batches, a remainder per shape, one batch per shape
def test_batched_table_equals_one_image_at_a_time(arm, nets, one_at_a_time, batch_size):
    results, records, _ = arm
    batched = per_image_table(records, results, nets, batch_size=batch_size)
    assert list(batched.columns) == list(one_at_a_time.columns)
    metrics = metric_columns(one_at_a_time)
    assert {"psnr", "ssim", "lpips_alex", "lpips_vgg", "gmsd"} <= set(metrics)
    others = [c for c in one_at_a_time.columns if c not in metrics]
    pd.testing.assert_frame_equal(batched[others], one_at_a_time[others])  # rows, order, records, failed rows
    for col in metrics:
        rtol = LPIPS_RTOL if col.startswith("lpips_") else F64_RTOL
        np.testing.assert_allclose(batched[col].to_numpy(float), one_at_a_time[col].to_numpy(float), rtol=rtol, atol=0,
                                   equal_nan=True, err_msg=col)


def test_the_networks_see_batches_of_one_shape_in_plan_order(arm, nets, monkeypatch):
    """What batch_image_metrics is handed: at most batch_size images, each batch of one shape,
    each shape's images in their plan order, every ok image once."""
    results, records, plan = arm
    seen = []

    def spy(preds, refs, lpips_nets):
        seen.append([p.shape[:2] for p in preds])
        return batch_image_metrics(preds, refs, lpips_nets)

    monkeypatch.setattr(scoring, "batch_image_metrics", spy)
    batch_size = 2
    per_image_table(records, results, {}, batch_size=batch_size)
    assert all(0 < len(b) <= batch_size and len(set(b)) == 1 for b in seen), seen
    ok = [shape for _, shape, status in plan if status == "ok"]
    assert sorted(s for b in seen for s in b) == sorted(ok)
    assert len(seen) == sum(-(-ok.count(s) // batch_size) for s in set(ok))  # no batch left unfilled but a shape's last


def test_shape_batches_groups_by_key_in_order_and_bounds_what_it_holds(rng):
    keys = rng.integers(0, 5, 200).tolist()  # many keys: the held bound forces batches out unfilled
    items = list(enumerate(keys))
    for batch_size, max_held in [(1, 1), (3, 3), (4, 6), (8, 16)]:
        consumed = 0

        def source():
            nonlocal consumed
            for i, k in items:
                consumed += 1
                yield k, i

        emitted = 0
        batches = []
        for batch in shape_batches(source(), batch_size, max_held):
            assert consumed - emitted <= max_held + 1  # held, counting the item just read
            emitted += len(batch)
            batches.append(batch)
        assert all(0 < len(b) <= batch_size and len({keys[i] for i in b}) == 1 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(len(items)))  # each once
        for k in set(keys):  # each key's items in their order
            assert [i for b in batches for i in b if keys[i] == k] == [i for i, kk in items if kk == k]
    with pytest.raises(ValueError):
        next(shape_batches(iter(items), 4, 3))
    with pytest.raises(ValueError):
        next(shape_batches(iter(items), 0, 3))


def test_batch_image_metrics_takes_one_shape_per_batch():
    a, b = np.zeros((16, 16, 3), np.uint8), np.zeros((16, 20, 3), np.uint8)
    with pytest.raises(ValueError, match="one shape"):
        batch_image_metrics([a, b], [a, b])
    with pytest.raises(ValueError, match="at least one"):
        batch_image_metrics([], [])
    with pytest.raises(ValueError, match="shapes differ"):
        batch_image_metrics([a, a], [a, b])


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    other = before % 2 + 1  # differs from before
    with torch_threads(other) as n:
        assert n == torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(other):
        raise RuntimeError
    assert torch.get_num_threads() == before
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError):
            with torch_threads(bad):
                pass


def test_evaluate_dataset_runs_torch_on_the_jobs_threads_and_batch_size(arm, tmp_path, monkeypatch):
    results, records, _ = arm
    before = torch.get_num_threads()
    threads, batch_size = before % 2 + 1, 3
    calls = []
    table_of = scoring.per_image_table

    def spy(records_, results_, nets_, *, batch_size):
        calls.append((torch.get_num_threads(), batch_size))
        return table_of(records_, results_, nets_, batch_size=batch_size)

    monkeypatch.setattr(scoring, "per_image_table", spy)
    out = tmp_path / "table.csv"
    table = scoring.evaluate_dataset(records, out, results=results, lpips_nets=[], lpips_random_trunk=True,
                                     batch_size=batch_size, threads=threads,
                                     device={"requested": "cpu", "lock_dir": tmp_path / "locks"}, log=lambda _: None)
    assert calls == [(threads, batch_size)]
    assert torch.get_num_threads() == before
    assert pd.read_csv(out)["image_id"].tolist() == table["image_id"].tolist() == [r.stem for r in records]


def test_how_the_evaluation_runs_is_no_rerun_trigger(tmp_path):
    """evaluation.batch_size and evaluation.threads reach the evaluate_dataset jobs untracked (rules/
    evaluate.smk); the evaluation block that summarize_evaluation and a study's comparison track
    leaves them out and keeps every other key."""
    from conftest import REPO
    from latentopt.workflow.config import load_config
    from latentopt.workflow.rule_params import EVALUATION_RUN_KEYS, tracked_evaluation
    from latentopt.workflow.study import study_params

    def study(**evaluation):
        over = {"results_dir": str(tmp_path), "models": {"a": {"kind": "synthetic_kl", "seed": 1}},
                **{f"evaluation.{k}": v for k, v in evaluation.items()}}
        return load_config([REPO / "demo" / "config.yaml"], over)

    base = study()
    assert set(EVALUATION_RUN_KEYS) <= set(base["evaluation"])  # the schema's defaults filled in
    other = study(**{k: base["evaluation"][k] + 1 for k in EVALUATION_RUN_KEYS})
    assert tracked_evaluation(other["evaluation"]) == tracked_evaluation(base["evaluation"])
    assert set(tracked_evaluation(base["evaluation"])) == set(base["evaluation"]) - set(EVALUATION_RUN_KEYS)
    assert study_params(other)["evaluation"] == study_params(base)["evaluation"] == tracked_evaluation(base["evaluation"])
    boot = study(n_boot=base["evaluation"]["n_boot"] + 1)
    assert tracked_evaluation(boot["evaluation"]) != tracked_evaluation(base["evaluation"])
