"""Image categories without hand labels: measurable descriptors of each original, tercile groups,
and the per-group gains of every loss over the baseline.

Descriptors (per preprocessed original PNG, the evaluation reference; luma Y = BT.601 / 255 in
[0, 1], visual_quality.luma):

``edge_density``
    Fraction of pixels on an edge. Source ``canny``: ``skimage.feature.canny(Y, sigma=2)`` with
    scikit-image's default hysteresis thresholds (0.1 and 0.2 of the float range). Source
    ``bsds_boundaries``: the BSDS500 human boundary maps (``groundTruth/{split}/{id}.mat``, one
    map per annotator, next to the ``images`` folder), each cropped exactly like the image
    (``images.preprocess``; for ``resize_crop`` resized bicubically like the image and
    thresholded at one half), the fraction
    of boundary pixels averaged over the annotators. Human maps are used only when every image
    has one (a mix of the two sources would not be comparable); the source is recorded.
``texture_energy``
    mean((Y - G_2(Y))^2): energy of the high-pass residual after a Gaussian blur with sigma
    2 px (``scipy.ndimage.gaussian_filter``, mode 'reflect').
``colourfulness``
    Hasler & Suesstrunk (2003) on 0..255 RGB: rg = R - G, yb = (R + G)/2 - B,
    M = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2), population sd.
``mean_gradient``
    mean over pixels of sqrt(Sx^2 + Sy^2), Sx/Sy = ``scipy.ndimage.sobel`` of Y along each axis
    (unnormalised 3 x 3 Sobel kernels, mode 'reflect').

Groups (method ``terciles``)
    For each descriptor separately, over the images whose preparation succeeded: cut points
    q1, q2 = the 1/3 and 2/3 quantiles (``numpy.quantile``, linear interpolation); an image is
    ``low`` if x <= q1, ``medium`` if q1 < x <= q2, ``high`` otherwise. Each descriptor thus
    defines its own grouping of the same images (GROUP_NAMES gives the display names). With a
    user CSV (``analysis.categories.csv``: columns ``image_id``, ``category``, optional
    ``split``) its categories form the one grouping ``user`` instead.

Per-group gains
    For each grouping, group, loss and metric: over the group's images that succeeded in both
    the loss and the baseline, ``statistics.paired_comparison`` of the gain (loss - baseline for
    higher-is-better metrics, baseline - loss otherwise; positive = the loss is better): mean
    gain, bootstrap 95 % CI, Wilcoxon signed-rank p; Holm-corrected (``statistics.holm``) across
    all groups x losses of one grouping and metric.
    Small n: a two-sided exact Wilcoxon test on n nonzero differences cannot give p below
    2 / 2^n, so with 2 / 2^n >= alpha (n <= 5 at alpha 0.05) no p-value is reported and the
    test is marked "n too small" (reason "exact test"). Holm multiplies the smallest p of a
    family of m tests by m, so when m x (smallest attainable p among them) >= alpha none of them
    can reach alpha either: they are marked "n too small" too (reason "Holm over m tests"; their
    uncorrected p stays in ``p_wilcoxon``). At alpha 0.05 three groups x one loss need n >= 7.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.io import loadmat
from scipy.ndimage import gaussian_filter, sobel
from skimage.feature import canny

from latentopt.analysis.statistics import holm, min_attainable_p, min_n_for_alpha, n_too_small, paired_comparison
from latentopt.core.fileio import atomic_path, read_json, write_json
from latentopt.data.images import preprocess as preprocess_image
from latentopt.data.images import read_rgb
from latentopt.metrics.visual_quality import luma
from latentopt.workflow import layout
from latentopt.workflow.analysis_settings import CategorySettings
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.metric_specs import HIGHER_IS_BETTER

DESCRIPTORS = ("edge_density", "texture_energy", "colourfulness", "mean_gradient")
LEVELS = ("low", "medium", "high")
GROUP_NAMES = {
    "edge_density": {"low": "few edges (smooth)", "medium": "moderate edges", "high": "many edges (structures, clutter)"},
    "texture_energy": {"low": "flat", "medium": "some texture", "high": "strongly textured"},
    "colourfulness": {"low": "muted colours", "medium": "moderately colourful", "high": "colourful"},
    "mean_gradient": {"low": "low detail", "medium": "medium detail", "high": "high detail"},
}
CANNY_SIGMA = 2.0
TEXTURE_SIGMA = 2.0
USER_GROUPING = "user"


# ---------------------------------------------------------------------------------------------
# descriptors


def _luma01(img_u8: np.ndarray) -> np.ndarray:
    return luma(img_u8) / 255.0


def canny_edge_density(img_u8: np.ndarray) -> float:
    return float(canny(_luma01(img_u8), sigma=CANNY_SIGMA).mean())


def texture_energy(img_u8: np.ndarray) -> float:
    y = _luma01(img_u8)
    return float(np.mean((y - gaussian_filter(y, TEXTURE_SIGMA, mode="reflect")) ** 2))


def colourfulness(img_u8: np.ndarray) -> float:
    rgb = img_u8.astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def mean_gradient(img_u8: np.ndarray) -> float:
    y = _luma01(img_u8)
    return float(np.mean(np.hypot(sobel(y, axis=1, mode="reflect"), sobel(y, axis=0, mode="reflect"))))


def ground_truth_file(images_dir: Path, split: str, image_id: str) -> Path:
    """BSDS500 layout: data/images/{split}/{id}.jpg <-> data/groundTruth/{split}/{id}.mat."""
    return images_dir.parent / "groundTruth" / split / f"{image_id}.mat"


def boundary_maps(path: str | Path) -> list[np.ndarray]:
    """The annotators' boundary maps (bool H x W) of one BSDS500 groundTruth .mat file."""
    try:
        gt = loadmat(str(path), squeeze_me=False)["groundTruth"]
        return [np.asarray(cell[0, 0]["Boundaries"], dtype=bool) for cell in gt.ravel()]
    except (KeyError, IndexError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a BSDS500 groundTruth file ({exc})") from exc


def boundary_density(path: str | Path, preprocess: Mapping) -> float:
    """Mean over annotators of the boundary-pixel fraction, cropped like the image."""
    fractions = []
    for b in boundary_maps(path):
        rgb = np.repeat((b.astype(np.uint8) * 255)[..., None], 3, axis=2)
        out = preprocess_image(rgb, preprocess["mode"], multiple=preprocess["multiple"], size=preprocess["size"], crop_box=tuple(preprocess["crop_box"]) if preprocess["crop_box"] else None)
        fractions.append(float((out[..., 0] >= 128).mean()))
    return float(np.mean(fractions))


def image_descriptors(img_u8: np.ndarray) -> dict[str, float]:
    """The image-only descriptors (edge density from Canny)."""
    return {"edge_density": canny_edge_density(img_u8), "texture_energy": texture_energy(img_u8), "colourfulness": colourfulness(img_u8), "mean_gradient": mean_gradient(img_u8)}


# ---------------------------------------------------------------------------------------------
# groups


def tercile_groups(values: Sequence[float]) -> tuple[list[str], tuple[float, float]]:
    """(level per value, (q1, q2)): low <= q1 < medium <= q2 < high (see the module docstring)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return [], (float("nan"), float("nan"))
    q1, q2 = (float(q) for q in np.quantile(x, [1 / 3, 2 / 3]))
    levels = ["low" if v <= q1 else "medium" if v <= q2 else "high" for v in x]
    return levels, (q1, q2)


def read_user_categories(path: str | Path, images: pd.DataFrame) -> pd.Series:
    """Category per row of ``images`` (columns split, image_id) from the user CSV; errors name the
    file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"analysis.categories.csv: file {path} does not exist")
    user = pd.read_csv(path, dtype=str)
    missing_cols = {"image_id", "category"} - set(user.columns)
    if missing_cols:
        raise ValueError(f"analysis.categories.csv: {path} lacks column(s) {sorted(missing_cols)} (has {list(user.columns)})")
    keys = ["split", "image_id"] if "split" in user.columns else ["image_id"]
    dup = user[user.duplicated(keys, keep=False)]
    if len(dup):
        raise ValueError(f"analysis.categories.csv: {path} lists {keys} more than once: {dup[keys].drop_duplicates().values.tolist()[:5]}")
    merged = images[["split", "image_id"]].astype(str).merge(user[[*keys, "category"]], on=keys, how="left")
    absent = merged[merged["category"].isna()]
    if len(absent):
        raise ValueError(f"analysis.categories.csv: {path} has no category for {len(absent)} image(s), e.g. {absent[['split', 'image_id']].values.tolist()[:5]}")
    return merged["category"].set_axis(images.index)


def categorize(originals: pd.DataFrame, settings: Mapping, ground_truth: Mapping[tuple[str, str], Path] | None = None, preprocess: Mapping | None = None) -> tuple[pd.DataFrame, dict]:
    """``originals``: columns split, image_id, path (the preprocessed PNGs). Returns the table of
    descriptors and groups (one ``group_<grouping>`` column per grouping) and the metadata
    (source of edge density, cut points)."""
    rows = []
    for split, image_id, path in originals[["split", "image_id", "path"]].itertuples(index=False):
        rows.append({"split": split, "image_id": image_id, **image_descriptors(read_rgb(path))})
    table = pd.DataFrame(rows, columns=["split", "image_id", *DESCRIPTORS])
    meta: dict = {"edge_density_source": "canny", "method": settings["method"]}
    gt = ground_truth or {}
    keys = list(zip(table["split"], table["image_id"]))
    if settings["boundaries"] != "off" and keys and all(k in gt for k in keys):
        table["edge_density"] = [boundary_density(gt[k], preprocess) for k in keys]
        meta["edge_density_source"] = "bsds_boundaries"
    elif settings["boundaries"] == "require":
        lacking = [k for k in keys if k not in gt]
        raise FileNotFoundError(f"analysis.categories.boundaries: 'require' but no groundTruth .mat for {len(lacking)} image(s), e.g. {lacking[:3]}")
    meta["groupings"] = {}
    if settings.get("csv"):
        table[f"group_{USER_GROUPING}"] = read_user_categories(settings["csv"], table).to_numpy()
        meta["groupings"][USER_GROUPING] = {"source": str(settings["csv"])}
    else:
        for d in settings["descriptors"]:
            levels, (q1, q2) = tercile_groups(table[d].to_numpy())
            table[f"group_{d}"] = levels
            meta["groupings"][d] = {"descriptor": d, "cut_points": [q1, q2], "names": GROUP_NAMES[d]}
    return table, meta


# ---------------------------------------------------------------------------------------------
# per-group gains


def group_gains(per_image: pd.DataFrame, groups: pd.DataFrame, metrics: Sequence[str], higher_is_better: Mapping[str, bool], *, alpha: float, n_boot: int, seed: int) -> dict:
    """{grouping: {"groups": [{group, n_images}], "tests": {metric: [row, ...]}}} (rows: group,
    arm, n, mean_gain, ci95, p_wilcoxon, p_holm, n_too_small); see the module docstring."""
    ok = per_image[per_image["status"] == "ok"]
    ok = ok.assign(split=ok["split"].astype(str), image_id=ok["image_id"].astype(str))
    groups = groups.assign(split=groups["split"].astype(str), image_id=groups["image_id"].astype(str))
    arms = [a for a in ok["dataset"].unique() if a != BASELINE]
    base = ok[ok["dataset"] == BASELINE].set_index(["split", "image_id"])
    tested = [m for m in metrics if m in ok.columns and m in higher_is_better]
    # each arm's images joined with the baseline's once, for every grouping, metric and group
    joined_arms = {arm: ok[ok["dataset"] == arm].set_index(["split", "image_id"])[tested].merge(base[tested], left_index=True, right_index=True, suffixes=("", "_base")) for arm in arms}
    out = {}
    for column in [c for c in groups.columns if c.startswith("group_")]:
        grouping = column[len("group_") :]
        names = [g for g in LEVELS if g in set(groups[column])] + sorted(set(groups[column]) - set(LEVELS))
        members = {g: groups.loc[groups[column] == g, ["split", "image_id"]] for g in names}
        tests: dict = {}
        for metric in tested:
            rows = []
            for g in names:
                keys = pd.MultiIndex.from_frame(members[g])
                for arm in arms:
                    joined = joined_arms[arm]
                    joined = joined[joined.index.isin(keys)]
                    a, b = joined[metric].to_numpy(float), joined[f"{metric}_base"].to_numpy(float)
                    r = paired_comparison(a, b, n_boot=n_boot, seed=seed) if higher_is_better[metric] else paired_comparison(b, a, n_boot=n_boot, seed=seed)
                    n_nonzero = r["n"] - r["n_zero"]
                    too_small = n_too_small(n_nonzero, alpha)
                    rows.append({"group": g, "arm": arm, "n": r["n"], "mean_gain": r["mean_diff"], "ci95_low": r["ci95_low"], "ci95_high": r["ci95_high"], "p_wilcoxon": None if too_small else r["p_wilcoxon"], "n_too_small": bool(too_small), "min_attainable_p": min_attainable_p(n_nonzero)})
            for r in rows:
                r["n_too_small_reason"] = "exact test" if r["n_too_small"] else None
            testable = [r for r in rows if not r["n_too_small"]]
            # Holm multiplies the smallest p by m: no row can reach alpha when m * min p >= alpha
            if testable and n_too_small(None, alpha, len(testable), p_floor=min(r["min_attainable_p"] for r in testable)):
                for r in testable:
                    r["n_too_small"], r["n_too_small_reason"] = True, f"Holm over {len(testable)} tests"
            adjusted = holm([r["p_wilcoxon"] if not r["n_too_small"] and r["p_wilcoxon"] is not None else float("nan") for r in rows])
            for r, p in zip(rows, adjusted):
                r["p_holm"] = None if r["n_too_small"] or not np.isfinite(p) else p
                r["significant"] = bool(r["p_holm"] is not None and r["p_holm"] < alpha)
            tests[metric] = rows
        out[grouping] = {"groups": [{"group": g, "n_images": int(len(members[g]))} for g in names], "tests": tests}
    return out


def category_analysis(per_image: pd.DataFrame, groups: pd.DataFrame, meta: Mapping, settings: CategorySettings,
                      categories: Mapping) -> dict:
    """The content of category_analysis.json; ``categories``: the analysis.categories settings."""
    alpha = settings.alpha
    gains = group_gains(per_image, groups, categories["metrics"], HIGHER_IS_BETTER, alpha=alpha, n_boot=settings.n_boot, seed=settings.seed)
    min_n = min_n_for_alpha(alpha)
    return {
        "metadata": {"experiment_id": settings.experiment_id, "synthetic": settings.synthetic.parts(), "alpha": alpha, "min_n_for_test": min_n, "metrics": [m for m in categories["metrics"] if m in per_image.columns], **meta},
        "groupings": {g: {**meta["groupings"].get(g, {}), **v} for g, v in gains.items()},
    }


def originals_of(prepared: Sequence[str | Path], results: str | Path) -> tuple[pd.DataFrame, dict]:
    """(split, image_id, path of the preprocessed PNG) of every successfully prepared image of the
    prepared records ``prepared``, and the BSDS500 groundTruth file of each that has one (next to
    the ``images`` folder of the record's source)."""
    rows, gt = [], {}
    for path in prepared:
        rec = read_json(path)
        if rec["status"] != "ok":
            continue
        split, image_id, source = rec["split"], rec["image_id"], Path(rec["source"])
        rows.append({"split": split, "image_id": image_id, "path": layout.original_png(results, split, image_id)})
        mat = ground_truth_file(source.parent.parent, source.parent.name, image_id)
        if mat.is_file():
            gt[(split, image_id)] = mat
    return pd.DataFrame(rows, columns=["split", "image_id", "path"]), gt


def write_category_analysis(prepared: Sequence[str | Path], per_image_csv: str | Path, out_csv: str | Path, out_json: str | Path,
                            *, categories: Mapping, settings: CategorySettings) -> dict:
    """The analyze_categories job: image_categories.csv (descriptors and groups of the originals of
    the prepared records ``prepared``) and category_analysis.json, as ``categories`` (the
    analysis.categories settings: the rule's param) says."""
    originals, gt = originals_of(prepared, settings.results)
    groups, meta = categorize(originals, categories, gt, settings.preprocess)
    per_image = pd.read_csv(per_image_csv, dtype={"split": str, "image_id": str, "dataset": str})
    result = category_analysis(per_image, groups, meta, settings, categories)
    with atomic_path(out_csv) as tmp:
        groups.to_csv(tmp, index=False)
    write_json(out_json, result)
    return result
