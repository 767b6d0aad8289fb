"""The HTML report: the Markdown report and its appendix rendered by Python-Markdown (tables,
fenced code, heading anchors) into ONE self-contained page, figures embedded as data URIs, so that
``snakemake --report`` (which shows HTML items and only offers Markdown as a download) opens on
the report itself: banner, headline table, recommendations, criteria and figures."""

from __future__ import annotations

import base64
import html as _html
import re
from pathlib import Path
import markdown

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px; margin: 1.5em auto; padding: 0 1em; line-height: 1.45; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; display: block; overflow-x: auto; }
th, td { border: 1px solid #c8c8c8; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #f0f0f0; }
blockquote { border-left: 5px solid #c0392b; background: #fdecea; margin: 1em 0; padding: 0.5em 1em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.appendix { margin-top: 3em; border-top: 4px double #888; }
"""


def _embed_images(text: str, base: Path) -> str:
    """Every ``<img src="relative.png">`` replaced by a data URI of the file (missing files stay)."""

    def repl(m: re.Match) -> str:
        src = _html.unescape(m.group(2))
        path = base / src
        if src.startswith(("data:", "http:", "https:")) or not path.is_file():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'{m.group(1)}"data:image/png;base64,{data}"'

    return re.sub(r'(<img[^>]*?\ssrc=)"([^"]+)"', repl, text)


def _markdown(text: str) -> str:
    text = text.replace("> [!WARNING]\n", "> ⚠ **WARNING**\n>\n")  # GitHub's alert syntax is not Markdown
    return markdown.markdown(text, extensions=["tables", "fenced_code", "toc", "sane_lists"], output_format="html")


def render_html(main_md: str, appendix_md: str | None, base: Path, *, title: str, appendix_name: str | None = None) -> str:
    """One HTML page: the main report, then the appendix (links to the appendix file become links
    to its section on the page)."""
    if appendix_name:
        main_md = main_md.replace(f"]({appendix_name})", "](#appendix)")
    body = _markdown(main_md)
    if appendix_md:
        body += '\n<section class="appendix" id="appendix">\n' + _markdown(appendix_md) + "\n</section>"
    body = _embed_images(body, base)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_html.escape(title)}</title>
<style>{CSS}</style></head>
<body>
{body}
</body></html>
"""
