"""Definitions quoted verbatim from the docstrings of the implementing modules (one source of truth)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path


def module_docstring(module: str) -> str:
    """The module docstring of ``latentopt.<module>`` (dotted, e.g. ``metrics.fid``) read from its source
    (no import)."""
    spec = importlib.util.find_spec(f"latentopt.{module}")
    if spec is None or spec.origin is None:
        return ""
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""


def docstring_section(doc: str, heading: str) -> str:
    """The text of the section of ``doc`` whose unindented heading line starts with ``heading``
    (heading included, body up to the next unindented line)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(heading):
            out = [line]
            for nxt in lines[i + 1 :]:
                if nxt and not nxt[0].isspace():
                    break
                out.append(nxt)
            return "\n".join(out).rstrip()
    return ""


def docstring_until(doc: str, marker: str) -> str:
    """``doc`` up to (not including) the paragraph starting with ``marker`` (all of it when absent)."""
    idx = doc.find("\n\n" + marker)
    return (doc if idx < 0 else doc[:idx]).rstrip()


def definitions() -> dict[str, str]:
    fid_doc = module_docstring("metrics.fid")
    inception_doc = module_docstring("metrics.inception")
    stats_doc = module_docstring("analysis.statistics")
    return {
        "metrics": module_docstring("metrics.image_metrics"),
        "losses": docstring_until(module_docstring("optimize.losses"), "Building losses"),
        "fid": docstring_section(fid_doc, "FID (") + "\n\n" + docstring_section(inception_doc, "Features"),
        "fid_bias": docstring_section(fid_doc, "FID bias"),
        "fid_ci": docstring_section(fid_doc, "FID confidence interval"),
        "fid_difference": docstring_section(fid_doc, "FID difference"),
        "kid": docstring_section(fid_doc, "KID"),
        "statistics": "\n\n".join(
            s for s in (docstring_section(stats_doc, h) for h in ("Missing values", "Minimum sample sizes", "``summarize", "``paired_comparison", "``holm", "``pairwise_tests", "``spearman_matrix")) if s
        ),
    }

