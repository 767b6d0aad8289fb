"""Image descriptors (against hand-derived values and explicit transcriptions), tercile groups,
BSDS500 boundary maps, user categories and the per-group gain tests with the small-n rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from latentopt.analysis import categories as C

PRE = {"mode": "center_crop", "multiple": 8, "size": 512, "crop_box": None}


def _luma01(img):
    img = img.astype(float)
    return (0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]) / 255


def test_colourfulness_hand_derived():
    assert C.colourfulness(np.full((8, 8, 3), 77, np.uint8)) == 0.0
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = (255, 0, 0)  # half red, half black: rg in {255, 0}, yb in {127.5, 0}
    expected = 1.3 * np.hypot(127.5, 63.75)
    assert C.colourfulness(img) == pytest.approx(expected, rel=1e-12)


def test_mean_gradient_matches_explicit_sobel(rng):
    img = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    y = np.pad(_luma01(img), 1, mode="symmetric")  # scipy 'reflect' = numpy 'symmetric'
    s = lambda dy, dx: y[1 + dy : y.shape[0] - 1 + dy, 1 + dx : y.shape[1] - 1 + dx]  # noqa: E731
    gx = (s(-1, 1) + 2 * s(0, 1) + s(1, 1)) - (s(-1, -1) + 2 * s(0, -1) + s(1, -1))
    gy = (s(1, -1) + 2 * s(1, 0) + s(1, 1)) - (s(-1, -1) + 2 * s(-1, 0) + s(-1, 1))
    assert C.mean_gradient(img) == pytest.approx(np.mean(np.hypot(gx, gy)), rel=1e-12)


def test_texture_energy_matches_explicit_gaussian(rng):
    img = rng.integers(0, 256, (20, 27, 3), dtype=np.uint8)
    y = _luma01(img)
    sigma, radius = C.TEXTURE_SIGMA, int(4 * C.TEXTURE_SIGMA + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    p = np.pad(y, radius, mode="symmetric")
    rows = sum(k[i] * p[i : i + y.shape[0], :] for i in range(k.size))
    blurred = sum(k[j] * rows[:, j : j + y.shape[1]] for j in range(k.size))
    assert C.texture_energy(img) == pytest.approx(np.mean((y - blurred) ** 2), rel=1e-9)
    flat = np.full((20, 20, 3), 90, np.uint8)
    assert C.texture_energy(flat) == pytest.approx(0.0, abs=1e-20)


def test_canny_edge_density_of_a_square_is_its_perimeter():
    img = np.zeros((100, 100, 3), np.uint8)
    img[29:71, 29:71] = 128  # a mid-grey ring: the step's centre lies ON a pixel row, so the
    img[30:70, 30:70] = 255  # edge has one maximum (a hard 0/255 step centres between two pixels,
    # whose equal gradients non-maximum suppression may both keep: 244 pixels measured here)
    # one-pixel-wide contour of a 40 x 40 square: about 4 * 40 pixels of 10 000
    assert C.canny_edge_density(img) == pytest.approx(160 / 10_000, rel=0.15)
    assert C.canny_edge_density(np.full((50, 50, 3), 128, np.uint8)) == 0.0


def test_terciles_hand_checked():
    levels, (q1, q2) = C.tercile_groups([9, 1, 5, 3, 7, 2, 8, 4, 6])
    assert (q1, q2) == pytest.approx((11 / 3, 19 / 3))
    assert levels == ["high", "low", "medium", "low", "high", "low", "high", "medium", "medium"]


def _write_gt(path, maps):
    from scipy.io import savemat

    cells = np.empty((1, len(maps)), dtype=object)
    for i, b in enumerate(maps):
        cells[0, i] = {"Segmentation": np.ones_like(b, dtype=np.uint16), "Boundaries": b.astype(np.uint8)}
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"groundTruth": cells})


def test_boundary_density_reads_bsds_mat_and_crops_like_the_image(tmp_path):
    a = np.zeros((21, 33), bool)
    a[:, 16] = True  # a vertical line
    b = np.zeros((21, 33), bool)
    b[0, :] = True  # top row: cropped away by a centre crop to 16 rows
    gt = tmp_path / "groundTruth" / "test" / "x.mat"
    _write_gt(gt, [a, b])
    assert len(C.boundary_maps(gt)) == 2
    # center_crop to multiples of 8: 16 x 32, rows 2..17, cols 0..31: the line stays, the top row goes
    assert C.boundary_density(gt, PRE) == pytest.approx((16 / (16 * 32) + 0.0) / 2)
    assert C.ground_truth_file(tmp_path / "images", "test", "x") == gt
    bad = tmp_path / "bad.mat"
    from scipy.io import savemat

    savemat(str(bad), {"other": 1})
    with pytest.raises(ValueError, match="not a BSDS500 groundTruth"):
        C.boundary_maps(bad)


def _originals(tmp_path, n=6):
    from latentopt.data.images import write_png

    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        img = np.full((24, 24, 3), 100, np.uint8)
        img[4:20, 4:20] = rng.integers(0, 256, 3)  # one square of varying colour and contrast
        img[:, : 2 * i] = rng.integers(0, 256, (24, 2 * i, 3))  # noise strip of growing width
        path = tmp_path / "orig" / f"{i}.png"
        write_png(path, img)
        rows.append({"split": "test", "image_id": str(i), "path": path})
    return pd.DataFrame(rows)


SETTINGS = {"method": "terciles", "descriptors": list(C.DESCRIPTORS), "boundaries": "auto", "csv": None}


def test_categorize_uses_human_boundaries_only_when_all_exist(tmp_path):
    originals = _originals(tmp_path)
    table, meta = C.categorize(originals, SETTINGS)
    assert meta["edge_density_source"] == "canny"
    assert set(table["group_texture_energy"]) == {"low", "medium", "high"}
    # texture grows with the noise strip: the widest strips are 'high'
    assert list(table["group_texture_energy"].iloc[-2:]) == ["high", "high"]
    maps = {}
    for i in range(6):
        b = np.zeros((24, 24), bool)
        b[: i + 1, :] = True
        maps[("test", str(i))] = tmp_path / f"gt{i}.mat"
        _write_gt(maps[("test", str(i))], [b])
    table_h, meta_h = C.categorize(originals, SETTINGS, maps, PRE)
    assert meta_h["edge_density_source"] == "bsds_boundaries"
    assert table_h["edge_density"].tolist() == pytest.approx([(i + 1) / 24 for i in range(6)])
    partial = dict(list(maps.items())[:3])
    assert C.categorize(originals, SETTINGS, partial, PRE)[1]["edge_density_source"] == "canny"
    with pytest.raises(FileNotFoundError, match="analysis.categories.boundaries"):
        C.categorize(originals, {**SETTINGS, "boundaries": "require"}, partial, PRE)


def test_user_csv_replaces_terciles_and_errors_name_the_file(tmp_path):
    originals = _originals(tmp_path, 4)
    csv = tmp_path / "cats.csv"
    csv.write_text("image_id,category\n0,sea\n1,sea\n2,city\n3,forest\n")
    table, meta = C.categorize(originals, {**SETTINGS, "csv": str(csv)})
    assert table["group_user"].tolist() == ["sea", "sea", "city", "forest"]
    assert list(meta["groupings"]) == ["user"]
    csv.write_text("image_id,category\n0,sea\n1,sea\n")
    with pytest.raises(ValueError, match=r"cats.csv has no category for 2 image"):
        C.categorize(originals, {**SETTINGS, "csv": str(csv)})
    csv.write_text("image,category\n0,sea\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['image_id'\]"):
        C.categorize(originals, {**SETTINGS, "csv": str(csv)})


def test_the_small_n_rule_is_scipys_exact_minimum():
    """Categories use statistics.min_attainable_p / min_n_for_alpha for their small-n rule."""
    from latentopt.analysis.statistics import min_attainable_p, min_n_for_alpha

    for n in (3, 5, 6, 8):
        d = np.arange(1, n + 1, dtype=float)  # all positive, distinct: the most extreme case
        assert stats.wilcoxon(d).pvalue == pytest.approx(min_attainable_p(n))
    assert min_attainable_p(5) >= 0.05 > min_attainable_p(6)
    assert min_n_for_alpha(0.05) == 6


def _per_image(gain_by_image):
    rows = []
    for i, g in enumerate(gain_by_image):
        base = 20.0 + 0.1 * i
        rows.append({"dataset": "baseline", "split": "test", "image_id": str(i), "status": "ok", "psnr": base, "gmsd": 0.2})
        rows.append({"dataset": "psnr", "split": "test", "image_id": str(i), "status": "ok", "psnr": base + g, "gmsd": 0.2 - g / 100})
    return pd.DataFrame(rows)


def test_group_gains_small_n_and_tests():
    rng = np.random.default_rng(3)
    gains = np.r_[1 + 0.1 * rng.standard_normal(8), 0.3 * rng.standard_normal(4)]
    per_image = _per_image(gains)
    groups = pd.DataFrame({"split": "test", "image_id": [str(i) for i in range(12)], "group_x": ["high"] * 8 + ["low"] * 4})
    out = C.group_gains(per_image, groups, ["psnr", "gmsd"], {"psnr": True, "gmsd": False}, alpha=0.05, n_boot=200, seed=0)
    assert out["x"]["groups"] == [{"group": "low", "n_images": 4}, {"group": "high", "n_images": 8}]
    rows = {r["group"]: r for r in out["x"]["tests"]["psnr"]}
    assert rows["low"]["n_too_small"] and rows["low"]["p_wilcoxon"] is None and rows["low"]["p_holm"] is None
    high = rows["high"]
    assert not high["n_too_small"] and high["n"] == 8
    assert high["mean_gain"] == pytest.approx(gains[:8].mean())
    assert high["p_wilcoxon"] == pytest.approx(stats.wilcoxon(gains[:8]).pvalue)
    assert high["p_holm"] == pytest.approx(high["p_wilcoxon"])  # the only testable row of its family
    assert high["significant"] and high["n_too_small_reason"] is None and rows["low"]["n_too_small_reason"] == "exact test"

    # gmsd is lower-is-better: its gain is baseline - loss = g / 100 > 0
    g_high = {r["group"]: r for r in out["x"]["tests"]["gmsd"]}["high"]
    assert g_high["mean_gain"] == pytest.approx(gains[:8].mean() / 100)


def test_group_gains_holm_family_too_small():
    """Three groups of 6 images, all gains positive: each exact p = 2/64 = 0.031 < 0.05, but Holm
    over the 3 tests makes the smallest 0.094: every row is 'n too small' for Holm."""
    gains = np.linspace(0.5, 1.6, 18)
    per_image = _per_image(gains)
    groups = pd.DataFrame({"split": "test", "image_id": [str(i) for i in range(18)], "group_x": ["low"] * 6 + ["medium"] * 6 + ["high"] * 6})
    rows = C.group_gains(per_image, groups, ["psnr"], {"psnr": True}, alpha=0.05, n_boot=50, seed=0)["x"]["tests"]["psnr"]
    assert all(r["n_too_small"] and r["n_too_small_reason"] == "Holm over 3 tests" and r["p_holm"] is None for r in rows)
    assert all(r["p_wilcoxon"] == pytest.approx(2 / 64) for r in rows)
    # at n = 7 per group the family can: 3 * 2/128 = 0.047 < 0.05
    per7 = _per_image(np.linspace(0.5, 1.6, 21))
    g7 = pd.DataFrame({"split": "test", "image_id": [str(i) for i in range(21)], "group_x": ["low"] * 7 + ["medium"] * 7 + ["high"] * 7})
    rows7 = C.group_gains(per7, g7, ["psnr"], {"psnr": True}, alpha=0.05, n_boot=50, seed=0)["x"]["tests"]["psnr"]
    assert all(not r["n_too_small"] and r["p_holm"] == pytest.approx(3 * 2 / 128) and r["significant"] for r in rows7)
