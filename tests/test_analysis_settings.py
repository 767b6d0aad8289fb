"""The settings the jobs after the optimization receive (latentopt.workflow.analysis_settings):
built once from the config, they survive the trip through a rule's params unchanged, the demo
model's label is read when a job asks (not when the workflow is parsed), and the jobs read the
files they are given, not the data folder."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, make_config
from latentopt.core.fileio import write_json
from latentopt.workflow import layout
from latentopt.workflow.analysis_settings import (
    EVALUATION_FIELDS,
    CategorySettings,
    HypothesisSettings,
    ReportSettings,
    StudySettings,
    SummarySettings,
    category_settings,
    hypothesis_settings,
    report_settings,
    study_settings,
    summary_settings,
)
from latentopt.workflow.config import load_config, synthetic_parts
from latentopt.workflow.demo_model_spec import describe
from latentopt.workflow.study import model_configs


@pytest.mark.parametrize("build, cls", [(summary_settings, SummarySettings), (category_settings, CategorySettings),
                                        (hypothesis_settings, HypothesisSettings), (report_settings, ReportSettings)])
def test_settings_survive_the_trip_through_rule_params(tmp_path, build, cls):
    config = make_config(tmp_path / "results", tmp_path / "data")
    settings = build(config)
    handed = pickle.loads(pickle.dumps(settings.params()))  # how a job receives its params
    if cls is SummarySettings:  # the evaluation block is the rule's tracked param `evaluation`
        assert not set(handed) & set(EVALUATION_FIELDS)
        assert cls.from_params(handed, evaluation=config["evaluation"]) == settings
    else:
        assert cls.from_params(handed) == settings


def test_study_settings_survive_the_trip_and_name_the_gate_images(tmp_path, demo_data):
    cfg = load_config([REPO / "demo" / "study.yaml"], {"results_dir": str(tmp_path / "results"),
                                                        "data": {"root": str(demo_data)}})
    subs = model_configs(cfg)
    settings = study_settings(subs)
    assert StudySettings.from_params(pickle.loads(pickle.dumps(settings.params()))) == settings
    assert list(settings.models) == list(subs)
    assert len(settings.gate_images) == cfg["quality_gate"]["images_per_loss"]


def test_demo_model_label_is_read_when_a_job_asks(tmp_path):
    """Settings built before the demo model is trained (the workflow is parsed first) name the
    model as trained once its summary exists, as synthetic_parts(config) does."""
    cfg = make_config(tmp_path / "results", tmp_path / "data", **{"model.kind": "demo_trained"})
    settings = summary_settings(cfg)
    assert "(not trained yet)" in settings.synthetic.parts()[0]
    summary = layout.demo_model_dir(cfg["results_dir"]) / "demo_autoencoder.json"
    write_json(summary, {"n_crops": 123, "train_time_s": 7.2})
    after = SummarySettings.from_params(settings.params(), cfg["evaluation"]).synthetic.parts()
    assert after[0] == describe(123, 7.2) and after == synthetic_parts(cfg)


def test_per_image_scoring_and_categories_read_their_records_not_the_data_folder(tmp_path, rng):
    """The per-image table, the feature keys and the originals of the category analysis come from
    the records handed over (their split and image id): no data folder exists here to scan."""
    from latentopt.analysis.categories import originals_of
    from latentopt.analysis.scoring import per_image_status, per_image_table
    from latentopt.data.images import write_png

    results = tmp_path / "results"
    prepared, records, mse = [], [], []
    for split, image_id, status in [("val", "b", "ok"), ("train", "a", "ok"), ("train", "c", "failed")]:
        ref, pred = ((rng.random((16, 16, 3)) * 255).astype(np.uint8) for _ in range(2))
        write_png(layout.original_png(results, split, image_id), ref)
        write_png(layout.dataset_png_dir(results, "psnr") / split / f"{image_id}.png", pred)
        mse.append(float(np.mean((pred / 255.0 - ref / 255.0) ** 2)))
        prepared.append(layout.prepared_record(results, split, image_id))
        write_json(prepared[-1], {"split": split, "image_id": image_id, "status": status, "source": str(tmp_path / "gone" / split / f"{image_id}.jpg")})
        records.append(layout.per_image(results, "psnr", split, image_id, "json"))
        record = {"arm": "psnr", "split": split, "image_id": image_id, "status": status, "reason": None if status == "ok" else "x"}
        if status == "ok":
            record["initial"] = {"psnr": 10.0}
        write_json(records[-1], record)
    table = per_image_table(records, results, {})
    assert list(zip(table["split"], table["image_id"], table["status"])) == [("val", "b", "ok"), ("train", "a", "ok"), ("train", "c", "failed")]
    assert table.loc[table["status"] == "ok", "mse"].tolist() == pytest.approx(mse[:2], rel=1e-6)  # each its own pair of PNGs
    pd.testing.assert_frame_equal(per_image_status(records), table[["dataset", "split", "image_id", "status"]])
    originals, ground_truth = originals_of(prepared, results)
    assert list(zip(originals["split"], originals["image_id"])) == [("val", "b"), ("train", "a")]
    assert originals["path"].tolist() == [layout.original_png(results, "val", "b"), layout.original_png(results, "train", "a")]
    assert ground_truth == {}
