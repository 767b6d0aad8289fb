"""The README's three screenshots of a finished run, made in headless Chromium: the live status
page as the run stood halfway through its images (a replay from its records and job logs), the
per-image explorer (sorted by the PSNR arm's gain) and the landing page of `snakemake --report`.

    PYTHONPATH=workflow_scripts .venv/bin/python docs/make_screenshots.py [--configfile demo/config.yaml] [--out docs/img]

(after `make demo`; Debian: apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from latentopt.workflow import layout, live
from latentopt.workflow.config import load_config

WIDTH = 720  # pixels of each PNG in the README


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("headless Chromium not found (Debian: apt-get install -y chromium)")


def shoot(url: str, out: Path, size: str = "1300,850", keep_height: int | None = None) -> None:
    """A screenshot of ``url``, its top ``keep_height`` pixels when given (a page taller than the
    window is shot in a window as tall as the page, else Snakemake's report scrolls), WIDTH wide."""
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--virtual-time-budget=8000", f"--window-size={size}", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=180)
    image = Image.open(out).convert("RGB")
    if keep_height:
        image = image.crop((0, 0, image.width, min(keep_height, image.height)))
    image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    image.quantize(colors=128).save(out, optimize=True)  # a palette PNG: small in the repository


def live_replay(config: dict, page: Path) -> None:
    """The live page as the run stood when half of its images were done (state 'running' then)."""
    results = config["results_dir"]
    times = sorted(json.loads(Path(p).read_text()).get("finished_at") or 0.0
                   for p in glob.glob(str(layout.arm_dir(results, "*") / "per_image" / "*" / "*.json")))
    if not times:
        sys.exit(f"no per-image records under {results}: run the workflow first")
    driver = {"jobs": [], "errors": [], "replay": True,
              "note": "replay of the finished run as it stood halfway (docs/make_screenshots.py)"}
    st = live.status(config, driver, now=times[len(times) // 2] + 0.5, state="running")
    static = live.render_page(st).replace(f'<meta http-equiv="refresh" content="{live.REFRESH_S}">', "")
    page.write_text(static, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", action="append", default=[])
    parser.add_argument("--out", default="docs/img")
    args = parser.parse_args(argv)
    configfiles = args.configfile or ["demo/config.yaml"]
    config = load_config(configfiles)
    results = Path(config["results_dir"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # beside the live page: its thumbnails' originals are addressed relative to it
        page = layout.live_page_file(results).with_name(".screenshot_live.html")
        page.parent.mkdir(parents=True, exist_ok=True)
        try:
            live_replay(config, page)
            shoot(page.resolve().as_uri(), out / "live_page.png", size="1000,1000")
        finally:
            page.unlink(missing_ok=True)
        shoot(layout.explorer_file(results).resolve().as_uri() + "#sort=g:psnr&dir=-1", out / "explorer.png")
        report = Path(tmp) / "report.html"
        cmd = [sys.executable, "-m", "snakemake", "--configfile", *configfiles, "--report", str(report)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        shoot(report.resolve().as_uri(), out / "report_landing.png", size="1300,2400", keep_height=1000)
    for name in ("live_page", "explorer", "report_landing"):
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
