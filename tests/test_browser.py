"""The pages a researcher opens in a browser, checked in a real one (Debian's ``chromium``,
headless; .ci/run installs it): the per-image explorer (its table sorts and filters, its
side-by-side view loads the run's PNGs from ``file://``), the landing page of
``snakemake --report`` (banner and verdicts), and the live status page during a demo run
(slow: it changes between two loads; ``make progress`` says "stopped" once the driver is gone)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, hold_driver_lock, make_config
from test_html_report import CHROMIUM, dump_dom, needs_chromium

ARMS = ("baseline", "psnr", "ssim")
IMAGES = (("train", "a1"), ("train", "a2"), ("test", "b1"), ("val", "c1"))


def _explorer_tree(tmp_path: Path, rng) -> tuple[Path, dict]:
    """A results folder with the explorer's inputs: PNGs of every view, the per-image table (one
    failed image) and the image categories; returns it and {(split, id, arm): psnr or None}."""
    from PIL import Image

    from latentopt.workflow import layout

    results = tmp_path / "results"
    psnr, rows = {}, []
    for split, image in IMAGES:
        layout.original_png(results, split, image).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(layout.original_png(results, split, image))
        for arm in ARMS:
            png = layout.dataset_png_dir(results, arm) / split / f"{image}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(png)
            failed = (arm, split, image) == ("ssim", "test", "b1")
            value = None if failed else float(rng.uniform(18, 30))
            psnr[split, image, arm] = value
            rows.append({"dataset": arm, "split": split, "image_id": image, "status": "failed" if failed else "ok",
                         "reason": "non-finite loss at step 7" if failed else "", "psnr": "" if failed else value,
                         "ssim": "" if failed else float(rng.uniform(0.3, 0.9))})
    ev = layout.evaluation_dir(results)
    ev.mkdir(parents=True)
    with open(ev / "per_image_metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(ev / "image_categories.csv", "w", newline="") as f:
        f.write("split,image_id,edge_density,group_edge_density\n")
        for i, (split, image) in enumerate(IMAGES):
            f.write(f"{split},{image},{i / 10},{'high' if i % 2 else 'low'}\n")
    return results, psnr


def _rows(dom: str) -> list[str]:
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<tr data-key="([^"]+)"', body)


@needs_chromium
def test_explorer_sorts_filters_and_shows_every_view_side_by_side(tmp_path, rng):
    from PIL import Image

    from latentopt.report.explorer import write_explorer
    from latentopt.workflow import layout

    results, psnr = _explorer_tree(tmp_path, rng)
    page = layout.explorer_file(results)
    ev = layout.evaluation_dir(results)
    assert write_explorer(results=results, metrics_csv=ev / "per_image_metrics.csv",
                          categories_csv=ev / "image_categories.csv", page=page, title="t",
                          synthetic=["autoencoder: random"]) == len(IMAGES)
    # sorted by the ssim arm's PSNR gain over the plain decode, best first; the failed image last
    gains = {f"{s}/{i}": psnr[s, i, "ssim"] - psnr[s, i, "baseline"] for s, i in IMAGES if psnr[s, i, "ssim"] is not None}
    expected = sorted(gains, key=gains.get, reverse=True) + ["test/b1"]
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri() + "#metric=psnr&sort=g:ssim&dir=-1"],
                         check=True, capture_output=True, text=True, timeout=120)
    dom = out.stdout
    assert _rows(dom) == expected
    assert "NOT RESEARCH RESULTS" in dom and "non-finite loss at step 7" in dom
    # the side-by-side view of the top row: the original and every arm, each PNG loaded from disk
    viewer = dom.split('<div id="panels">', 1)[1].split("</section>", 1)[0]
    panels = re.findall(r'<img[^>]*data-view="([^"]+)"[^>]*>', viewer)
    assert panels == ["original", *ARMS]
    assert len(re.findall(r'<img[^>]*data-loaded="1"', viewer)) == len(panels)
    # filtered to one split and one category
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri() + "#split=train&category=edge_density%3Dhigh"],
                         check=True, capture_output=True, text=True, timeout=120)
    assert _rows(out.stdout) == ["train/a2"]
    # a screenshot that is not blank: the panels show the PNGs' noise
    shot = tmp_path / "explorer.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--virtual-time-budget=5000", "--window-size=1300,900", f"--screenshot={shot}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 20 and len(np.unique(pixels)) > 100


def test_landing_page_renders_banner_and_verdicts_as_snakemake_does(tmp_path):
    """The landing text through Jinja then docutils (Snakemake's two steps for a global
    ``report:`` text): the banner and every verdict line arrive as HTML; a '{{' in the report
    does not reach Jinja."""
    import jinja2
    from docutils.core import publish_parts

    from latentopt.report.landing import landing_rst

    from latentopt.report.landing import banner_parts

    verdicts = ["**psnr** beats baseline on SSIM (p = 0.01, {{ n }} = 8)", "no setting shown better for LPIPS"]
    banner = "> [!WARNING]\n> **NOT RESEARCH RESULTS.** This run used:\n>\n> - autoencoder: random\n> - LPIPS: random\n>\n> Do not quote.\n"
    md = "# Title\n\n" + banner + "\n## Verdicts\n\nLead.\n\n" + "".join(f"- {v}\n" for v in verdicts) + "\n## Contents\n\nelse\n"
    assert banner_parts(md) == ["autoencoder: random", "LPIPS: random"] and banner_parts("# no banner\n") == []
    rst = landing_rst(report_md=md, experiment_id="exp", results="/r", synthetic=banner_parts(md),
                      report_page="R.html", explorer_page="E.html")
    links = ".. _R.html: javascript:x()\n.. _E.html: javascript:y()\n.. _Figures: javascript:z()\n"
    html = publish_parts(jinja2.Environment().from_string(rst + "\n" + links).render(), writer="html")["html_body"]
    assert "NOT RESEARCH RESULTS" in html and "autoencoder: random" in html
    assert "<strong>psnr</strong> beats baseline on SSIM (p = 0.01, {{ n }} = 8)" in html
    assert "no setting shown better for LPIPS" in html and "else" not in html.split("Where to look next")[0]
    assert 'href="javascript:x()">R.html</a>' in html and 'href="javascript:y()">E.html</a>' in html
    calibrated = landing_rst(report_md=md, experiment_id="exp", results="/r", synthetic=[], report_page="R.html",
                             explorer_page="E.html")
    assert "NOT RESEARCH RESULTS" not in calibrated and "no synthetic component" in calibrated


def test_live_status_says_stopped_without_a_driver_and_running_with_one(tmp_path, demo_data):
    """Nothing done yet: no driver, the run is 'stopped' and shows no ETA; a driver holding the
    results folder makes it 'running'; the page reloads itself only then."""
    from latentopt.workflow import live

    cfg = make_config(tmp_path / "results", demo_data)
    st = live.status(cfg)
    total = st["models"][""]["arms"]["all"]["total"]
    assert st["state"] == "stopped" and st["remaining"] == total > 0 and st["eta_s"] is None
    assert "STOPPED" in live.format_text(st) and "ETA" not in live.format_text(st).splitlines()[0]
    assert 'http-equiv="refresh"' not in live.render_page(st)
    holder = hold_driver_lock(tmp_path / "results", seconds=30)
    try:
        st = live.status(cfg)
        assert st["state"] == "running"
        assert 'http-equiv="refresh"' in live.render_page(st)
    finally:
        holder.kill()
        holder.wait()


def _text(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</', dom, flags=re.S)
    return m.group(1) if m else ""


@pytest.mark.slow
@needs_chromium
def test_live_page_changes_during_a_demo_run_and_a_killed_run_reads_stopped(tmp_path, demo_data):
    """A demo run with ``--logger latentopt``: two loads of the live page, seconds apart, show
    different progress; killed outright, its status (what ``make progress`` prints) is 'stopped'."""
    from conftest import snakemake_cmd, write_config

    results = tmp_path / "results"
    cfg = write_config(tmp_path / "config.yaml", results, demo_data, model={"kind": "synthetic_kl"},
                       data={"limit_per_split": 2}, run={"images_per_job": 1, "batch_size": 1},
                       losses={name: {"iterations": 60} for name in ("psnr", "ssim", "lpips")})
    plugin = REPO / "plugins" / "snakemake-logger-plugin-latentopt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    cmd = snakemake_cmd(cfg, "--logger", "latentopt", "--logger-latentopt-interval", "2")
    driver = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    page, status = results / "live" / "progress.html", results / "live" / "status.json"

    def done() -> float:
        try:
            row = json.loads(status.read_text())["models"][""]["arms"]["all"]
        except (OSError, ValueError, KeyError):
            return -1.0
        return row["ok"] + row["failed"] + row["partial"]

    try:
        deadline = time.time() + 900
        while done() <= 0 and time.time() < deadline and driver.poll() is None:
            time.sleep(1)
        first = dump_dom(page)
        start = done()
        while done() <= start and time.time() < deadline and driver.poll() is None:
            time.sleep(1)
        second = dump_dom(page, screenshot=tmp_path / "live.png")
        assert driver.poll() is None, "the demo run ended before its page was read twice"
        assert _text(first, "state") == _text(second, "state") == "running"
        progress_of = lambda dom: re.findall(r"<progress[^>]*value=['\"]([\d.]+)", dom)  # noqa: E731
        assert progress_of(first) != progress_of(second) and _text(first, "summary") != _text(second, "summary")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its jobs, no chance to say goodbye
        driver.wait()
    out = subprocess.run([sys.executable, "-m", "latentopt.workflow.progress", "--configfile", str(REPO / "demo" / "config.yaml"),
                          "--configfile", str(cfg)], cwd=REPO, env={**env, "PYTHONPATH": str(REPO / "workflow_scripts")},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    first_line = out.stdout.splitlines()[0]
    assert "STOPPED" in first_line and "ETA" not in first_line


def _finished_image(results: Path, arm: str, split: str, image: str, at: float, gain: float, rng,
                    row_order: bool = False) -> np.ndarray:
    """The per-image files an optimization job writes for one image (its .pt with the decoded
    reconstruction, then its record), and the image's preprocessed original; returns the decoded image."""
    import torch
    from PIL import Image

    from latentopt.workflow import layout

    decoded = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    # as a job stores it: a channel-last view of the decoder's C x H x W output
    tensor = torch.from_numpy(np.ascontiguousarray(decoded.transpose(2, 0, 1))).permute(1, 2, 0)
    pt, record = layout.per_image(results, arm, split, image, "pt"), layout.per_image(results, arm, split, image, "json")
    pt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"image_id": image, "split": split, "arm": arm, "status": "ok", "z0": torch.zeros(4, 5, 8),
                "z": torch.ones(4, 5, 8), "loss_history": [1.0, 0.5], "decoded": tensor.contiguous() if row_order else tensor.clone(),
                "region": [0, 0, 40, 60]}, pt)
    record.write_text(json.dumps({"image_id": image, "split": split, "arm": arm, "status": "ok", "finished_at": at,
                                  "initial": {"psnr": 20.0}, "final": {"psnr": 20.0 + gain}}))
    original = layout.original_png(results, split, image)
    original.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(original)
    return decoded


def test_thumbnail_is_read_from_the_per_image_pt_without_torch(tmp_path, rng):
    """The live page's thumbnail of a reconstruction: the ``decoded`` tensor of a per-image .pt,
    read torch-free, subsampled, as a PNG that decodes back to the same pixels."""
    import base64
    import io

    from PIL import Image

    from latentopt.workflow import layout, thumbnails

    for row_order in (False, True):  # the job's channel-last view of C x H x W, and a plain H x W x C tensor
        decoded = _finished_image(tmp_path / "r", "psnr", "train", "a1", 1.0, 1.5, rng, row_order=row_order)
        pt = layout.per_image(tmp_path / "r", "psnr", "train", "a1", "pt")
        h, w, raw = thumbnails.read_decoded(pt)
        assert (h, w) == (40, 60) and np.array_equal(np.frombuffer(raw, np.uint8).reshape(h, w, 3), decoded)
    uri = thumbnails.thumbnail_uri(pt, size=30)
    small = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    assert np.array_equal(small, decoded[::2, ::2])
    (tmp_path / "broken.pt").write_bytes(b"not a zip")
    assert thumbnails.thumbnail_uri(tmp_path / "broken.pt") is None and thumbnails.thumbnail_uri(tmp_path / "none.pt") is None


@needs_chromium
def test_live_page_shows_the_latest_reconstructions_as_thumbnails_with_their_gain(tmp_path, demo_data, rng):
    """Finished images of a running run: the newest ones are thumbnails (original from its PNG,
    reconstruction from its .pt, both loaded in the browser) with their PSNR gain, newest first."""
    from latentopt.workflow import live
    from latentopt.workflow.plan import build_plan

    cfg = make_config(tmp_path / "results", demo_data)
    results = Path(cfg["results_dir"])
    entries = [(split, e.image_id) for split, es in build_plan(cfg).splits.items() for e in es]
    done = [("psnr", *entries[0], 1.25), ("ssim", *entries[1], -0.5), ("lpips", *entries[2], 2.0),
            ("psnr", *entries[3], 0.75), ("ssim", *entries[4], 0.1)]
    now = time.time()
    for i, (arm, split, image, gain) in enumerate(done):
        _finished_image(results, arm, split, image, now - 100 + i, gain, rng)
    page = tmp_path / "results" / "live" / "progress.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(live.render_page(live.status(cfg, state="running")))
    dom = dump_dom(page)
    thumbs = re.findall(r"<figure class=\"thumb\" data-image=\"([^\"]+)\">(.*?)</figure>", dom, flags=re.S)
    newest = [f"{arm}/{split}/{image}" for arm, split, image, _ in reversed(done)][:live.THUMBS]
    assert [name for name, _ in thumbs] == newest
    for (name, body), (_, _, _, gain) in zip(thumbs, list(reversed(done))[:live.THUMBS]):
        assert f"{gain:+.2f} dB" in body
        assert 'class="recon" src="data:image/png;base64,' in body and 'class="original" src="../original_bsds500/' in body
    check = page.with_name("check.html")  # every thumbnail image decodes in the browser
    check.write_text(page.read_text().replace(
        "</body>", "<script>addEventListener('load', () => document.body.dataset.loaded = [...document.querySelectorAll("
                   "'#thumbs img')].filter(i => i.complete && i.naturalWidth > 0).length);</script></body>"))
    assert re.search(r'<body data-loaded="(\d+)"', dump_dom(check)).group(1) == str(2 * live.THUMBS)


def test_study_explorer_puts_every_models_arms_side_by_side_with_gains_over_their_own_decode(tmp_path, rng):
    """Two models' per-image tables (the large one without the ssim arm): one row per image,
    the columns <model>/<arm> with each arm's models next to each other, each gain over that
    model's own plain decode; in the browser it sorts by a model's gain and shows every panel."""
    from latentopt.report.explorer import read_study_rows, study_banner_parts, write_study_explorer
    from latentopt.report.study_report import header
    from latentopt.workflow import layout

    small, psnr_small = _explorer_tree(tmp_path / "small", rng)
    large, psnr_large = _explorer_tree(tmp_path / "large", rng)
    table = layout.evaluation_dir(large) / "per_image_metrics.csv"
    with open(table, newline="") as f:
        kept = [r for r in csv.DictReader(f) if r["dataset"] != "ssim"]
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(kept[0]))
        w.writeheader()
        w.writerows(kept)
    tables = {m: (layout.evaluation_dir(r) / "per_image_metrics.csv", layout.evaluation_dir(r) / "image_categories.csv")
              for m, r in (("small", small), ("large", large))}
    columns, metrics, rows, baselines = read_study_rows(tables)
    assert columns == ["small/baseline", "large/baseline", "small/psnr", "large/psnr", "small/ssim"]
    assert metrics == ["psnr", "ssim"] and len(rows) == len(IMAGES)
    assert baselines["large/psnr"] == "large/baseline" and baselines["small/ssim"] == "small/baseline"
    row = next(r for r in rows if r["image_id"] == "b1")
    assert row["arms"]["large/psnr"]["psnr"] == pytest.approx(psnr_large["test", "b1", "psnr"])
    assert row["arms"]["small/ssim"]["status"] == "failed" and row["categories"] == {"edge_density": "low"}
    assert study_banner_parts(header(["autoencoder: demo", "LPIPS: random"])) == ["autoencoder: demo", "LPIPS: random"]
    assert study_banner_parts(header([])) == []

    page = tmp_path / "study" / "IMAGE_EXPLORER.html"
    assert write_study_explorer(models={m: {"results": r, "metrics": tables[m][0], "categories": tables[m][1]}
                                        for m, r in (("small", small), ("large", large))},
                                page=page, title="s", synthetic=["autoencoder: demo"]) == len(IMAGES)
    if not CHROMIUM:
        return
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri() + "#metric=psnr&sort=g:large/psnr&dir=-1"],
                         check=True, capture_output=True, text=True, timeout=120)
    dom = out.stdout
    gains = {f"{s}/{i}": psnr_large[s, i, "psnr"] - psnr_large[s, i, "baseline"] for s, i in IMAGES}
    assert _rows(dom) == sorted(gains, key=gains.get, reverse=True)
    assert "gain large/psnr" in dom and "gain small/ssim" in dom and "gain large/baseline" not in dom
    assert "NOT RESEARCH RESULTS" in dom
    viewer = dom.split('<div id="panels">', 1)[1].split("</section>", 1)[0]
    panels = re.findall(r'<img[^>]*data-view="([^"]+)"[^>]*>', viewer)
    assert panels == ["original", *columns]
    assert len(re.findall(r'<img[^>]*data-loaded="1"', viewer)) == len(panels)
