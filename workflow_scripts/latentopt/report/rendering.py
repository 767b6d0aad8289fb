"""The one Jinja2 environment of the report's templates (``report/templates/``): Markdown out, so
no autoescape; undefined names fail (a template and its context must agree)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


def render_template(template: str, context: Mapping) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template(template).render(**context)
