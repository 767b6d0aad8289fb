"""The HTML report (issue 19): the Markdown report and its appendix rendered by Python-Markdown into
one self-contained page, registered so that ``snakemake --report`` opens on it, and checked in a
real browser (Debian's ``chromium``, headless): the banner, the headline table, the
recommendations and the figures are in the page the browser builds, not just in the file."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from latentopt.report.html import render_html

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium; .ci/run installs it)")


def dump_dom(path: Path, screenshot: Path | None = None) -> str:
    """The DOM that headless Chromium builds from ``path`` (scripts run)."""
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=5000"]
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", "--window-size=1300,2400", path.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    out = subprocess.run([*base, "--dump-dom", path.resolve().as_uri()], check=True, capture_output=True, text=True, timeout=120)
    return out.stdout


def test_markdown_is_rendered_with_tables_banner_and_embedded_figures(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 10), (200, 30, 30)).save(tmp_path / "fig.png")
    main = "# Title\n\n> [!WARNING]\n> **NOT RESEARCH RESULTS** here\n\n| a | b |\n|:---|---:|\n| **1** | 2 \\| 3 |\n\n![a figure](fig.png)\n\nsee [the appendix](APP.md)\n"
    page = render_html(main, "## Appendix part\n\ntext\n", tmp_path, title="T", appendix_name="APP.md")
    assert "<table>" in page and "<strong>1</strong>" in page and "2 | 3" in page
    assert "<blockquote>" in page and "[!WARNING]" not in page and "NOT RESEARCH RESULTS" in page
    (src,) = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert src.startswith("data:image/png;base64,") and base64.b64decode(src.split(",", 1)[1]) == (tmp_path / "fig.png").read_bytes()
    assert 'href="#appendix"' in page and 'id="appendix"' in page and "Appendix part" in page


@needs_chromium
def test_report_page_in_the_browser_shows_banner_headline_and_figures(tmp_path):
    """The page a browser builds from the rendered report of a constructed results tree."""
    from test_report import build_tree, make_config

    from latentopt.report import plots, write_report
    from latentopt.workflow import layout
    from latentopt.workflow.analysis_settings import report_settings

    plots.DPI = 40
    results = tmp_path / "results"
    config = make_config(results)
    out = build_tree(results, config)
    write_report(report_settings(config), cross=out["cross"], stats=out["stats"], performance=out["performance"], table_csv=out["table"], report=layout.report_file(results), log=lambda m: None)
    dom = dump_dom(layout.report_html_file(results))
    assert "NOT RESEARCH RESULTS" in dom and "<table>" in dom
    assert re.search(r"<th[^>]*>dataset</th>", dom) and "Recommendations" in dom and "Success criteria" in dom
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', dom)) >= 8


@pytest.mark.slow
@needs_chromium
def test_snakemake_report_opens_on_the_rendered_report(finished_demo, tmp_path):
    """``snakemake --report`` on the finished demo: its landing page shows the run's banner and
    verdicts and names the report page and the explorer; the HTML item it embeds is the rendered report, whose page shows the banner,
    the headline table, the recommendations and every figure; every figure has a caption."""
    from conftest import snakemake

    cfg, results = finished_demo
    out = tmp_path / "report.html"
    snakemake(cfg, "--report", str(out), timeout=600)
    text = out.read_text()
    landing = dump_dom(out, screenshot=tmp_path / "snakemake_report.png")
    assert "Per-image VAE latent optimization on BSDS500" in landing
    # it opens on this run's answer: the banner, the verdicts, links to the pages by sidebar name
    assert "NOT RESEARCH RESULTS" in landing and "Verdicts" in landing
    assert "IMAGE_EXPLORER.html" in landing and "Image explorer" in landing
    assert "FULL_BSDS500_COMPARISON_REPORT.html" in text and "Comparison report" in text
    uris = re.findall(r"data:text/html;(?:[^;,]+;)*base64,([A-Za-z0-9+/=]+)", text)  # snakemake: data:<mime>;charset=..;filename=..;base64,..
    pages = [base64.b64decode(u).decode("utf-8", "replace") for u in uris]
    page = next(p for p in pages if "Headline results" in p)
    (tmp_path / "item.html").write_text(page)
    dom = dump_dom(tmp_path / "item.html", screenshot=tmp_path / "item.png")
    assert "NOT RESEARCH RESULTS" in dom and "Recommendations" in dom
    assert re.search(r"<th[^>]*>dataset</th>", dom)
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', dom)) >= 5
    for name in ("distributions", "convergence", "paired_gains", "examples_psnr"):
        assert name in text
    assert "Per-image distributions of every metric per dataset" in text  # a figure caption (report/figure.rst)
