"""The landing page of ``snakemake --report``: this run's banner (synthetic or not), the verdict
lines of its report, and links to the report page, the image explorer and the figures by the
names they carry in the report's sidebar.

Snakemake renders the global ``report:`` text (reStructuredText, through Jinja) as the page the
report opens on; rules/report.smk points it at the file written here once the run has made it,
and at the static report/workflow.rst before. The banner and verdicts are taken from the
Markdown report itself (one source), rendered to HTML and handed to reStructuredText as a raw
HTML block, kept out of Jinja's reach.
"""

from __future__ import annotations

import html as _html
import re
from pathlib import Path

import markdown

from latentopt.core.fileio import write_text
from latentopt.workflow.messages import BANNER

# the report's sidebar: category and item labels of the report() registrations in rules/*.smk
REPORT_CATEGORY, FIGURES_CATEGORY, EXPLORER_CATEGORY = "Comparison report", "Figures", "Image explorer"


def section(md: str, heading: str) -> str:
    """The body of the ``## heading`` section of a Markdown text ('' when absent)."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", md, flags=re.M | re.S)
    return m.group(1).strip() if m else ""


def banner_parts(md: str) -> list[str]:
    """The synthetic / uncalibrated components a report's warning banner lists (none: no banner).
    Read from the report, written when the run's models existed (a parse-time reading of the
    config would describe a demo model not trained yet)."""
    m = re.search(r"^> \[!WARNING\]\n((?:>.*\n)+)", md, flags=re.M)
    return [line[4:].strip() for line in m.group(1).splitlines() if line.startswith("> - ")] if m else []


def _html_of(md: str) -> str:
    return markdown.markdown(md, extensions=["tables", "sane_lists"], output_format="html")


def landing_rst(*, report_md: str, experiment_id: str, results: str, synthetic: list[str],
                report_page: str, explorer_page: str) -> str:
    """The reStructuredText of the landing page."""
    if synthetic:
        banner = (f'<div style="border-left:6px solid #c0392b;background:#fdecea;padding:0.6em 1em;margin:0.8em 0">'
                  f"<b>{_html.escape(BANNER)}.</b> This run used: "
                  + "; ".join(_html.escape(p) for p in synthetic)
                  + ". Its numbers exercise the pipeline; they are not research results. Do not quote them.</div>")
    else:
        banner = ('<div style="border-left:6px solid #17603a;background:#eaf6ee;padding:0.6em 1em;margin:0.8em 0">'
                  "Real autoencoder and calibrated metric networks: no synthetic component in this run.</div>")
    heading, body = next(((h, s) for h in ("Verdicts", "Headline results") if (s := section(report_md, h))),
                         ("Verdicts", "(the report has no verdict section)"))
    raw = banner + f"<h2>{heading}</h2>" + _html_of(body)
    raw = "\n".join("   " + line for line in raw.splitlines())
    return f"""Per-image VAE latent optimization on BSDS500: {experiment_id}
{'=' * (48 + len(experiment_id))}

{{% raw %}}
.. raw:: html

{raw}

{{% endraw %}}

Where to look next:

- `{report_page}`_ (sidebar: **{REPORT_CATEGORY}**): the whole report on one page, banner,
  headline table, recommendations, criteria, cost, figures and the appendix.
- `{explorer_page}`_ (sidebar: **{EXPLORER_CATEGORY}**): every image in a sortable, filterable
  table (split, category, each arm's metrics and gain, failures with reasons) and the original,
  plain decode and each arm side by side with one zoom. Inside this report its images do not load;
  open ``{explorer_page}`` in the results folder ``{results}``.
- `{FIGURES_CATEGORY}`_: every figure with its caption.
"""


def write_landing(*, report_md: str | Path, landing: str | Path, experiment_id: str, results: str | Path,
                  report_page: str | Path, explorer_page: str | Path) -> None:
    md = Path(report_md).read_text(encoding="utf-8")
    text = landing_rst(report_md=md, experiment_id=experiment_id,
                       results=str(Path(results).resolve()), synthetic=banner_parts(md),
                       report_page=Path(report_page).name, explorer_page=Path(explorer_page).name)
    write_text(landing, text)
