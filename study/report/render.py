"""A report as a list of blocks, rendered twice: report.md, and report.html for screens and print in one offline file.

A block is a heading, a paragraph, a list, a table (header row first; a cell that is a list of parts is one line
in Markdown, joined by "; ", and one line per part in HTML), a figure, a code block, a callout ("banner" at the
top, "caution" for standing warnings) or a grid of thumbnails (HTML: the figures embedded at a small size, each
a link to its full-size file; Markdown: the links). Inline text uses **bold**, `code` and [links](path); a link's
path is relative to the report's directory. Figures are embedded in the HTML as base64 PNGs, so it opens offline.
Lines that depend on wall-clock time carry TIMING, so that two runs of one study can be compared without them.

Every heading gets an anchor (`anchors`: GitHub's rule for Markdown headings, so `[Glossary](#glossary)` works in
report.md on GitHub and in report.html alike, where each heading carries the id), and a "toc" block becomes a short
table of contents: a link to each section (h2).
"""

from __future__ import annotations

from study.plan.thumbs import THUMB_WIDTH, png_data  # noqa: F401  (the report's thumbnails)

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.files import created_atomically

TIMING = "<!-- timing -->"


@dataclass
class Block:
    kind: str  # "h1", "h2", "h3", "p", "list", "table", "img", "code", "banner", "caution", "thumbs", "toc"
    content: Any


@dataclass
class Thumb:
    """One cell of a thumbnail grid: its caption, the PNGs to show (each a link to itself) and links under them."""

    caption: str
    images: list[tuple[str, Path]]  # (what it is, PNG)
    links: list[tuple[str, Path]]


def cell_md(cell: Any) -> str:
    return "; ".join(cell) if isinstance(cell, (list, tuple)) else str(cell)


def link_md(text: str, path: Path, root: Path) -> str:
    return f"[{text}]({os.path.relpath(path, root)})"


def slug(text: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, markup and punctuation dropped, spaces as '-'."""
    plain = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", lambda m: m[1] or "", text).lower()
    return re.sub(r"[^\w\- ]", "", plain).replace(" ", "-")


def anchors(blocks: list[Block]) -> dict[int, str]:
    """Block index -> the unique anchor of each heading (a repeated one gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = {}
    for i, b in enumerate(blocks):
        if b.kind in ("h1", "h2", "h3"):
            base = slug(b.content)
            out[i] = base if base not in seen else f"{base}-{seen[base]}"
            seen[base] = seen.get(base, 0) + 1
    return out


def toc_items(blocks: list[Block]) -> list[str]:
    """'[Answer](#answer)' for each section (h2) after the toc block."""
    ids = anchors(blocks)
    return [f"[{b.content}](#{ids[i]})" for i, b in enumerate(blocks) if b.kind == "h2"]


def to_markdown(blocks: list[Block], root: Path) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind == "toc":
            out += ["**Contents**: " + " · ".join(toc_items(blocks)), ""]
        elif b.kind in ("h1", "h2", "h3"):
            out += ["#" * int(b.kind[1]) + " " + b.content, ""]
        elif b.kind in ("p", "banner"):
            out += [b.content, ""]
        elif b.kind == "caution":
            out += [f"> {b.content}", ""]
        elif b.kind == "list":
            out += [f"- {item}" for item in b.content] + [""]
        elif b.kind == "table":
            header, *rows = b.content
            out += ["| " + " | ".join(cell_md(c) for c in header) + " |", "|" + "---|" * len(header)]
            out += ["| " + " | ".join(cell_md(c) for c in r) + " |" for r in rows] + [""]
        elif b.kind == "img":
            path, alt = b.content
            out += [f"![{alt}]({os.path.relpath(path, root)})", ""]
        elif b.kind == "code":
            out += ["```", b.content, "```", ""]
        elif b.kind == "thumbs":
            out += [f"- {t.caption}: " + " · ".join(link_md(text, p, root) for text, p in t.images + t.links)
                    for t in b.content] + [""]
    return "\n".join(out)


def inline_html(text: str, root: Path | None = None) -> str:
    """**bold**, `code` and [text](relative path) of one line, escaped."""
    out = html.escape(text.replace(TIMING, "").rstrip(), quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', out)


def cell_html(cell: Any) -> str:
    """A cell's text; a cell of several parts, a line per part, none of them broken inside."""
    if isinstance(cell, (list, tuple)):
        return "<br>".join(f'<span class="nw">{inline_html(str(p))}</span>' for p in cell)
    return inline_html(str(cell))


def table_html(rows: list[list[Any]]) -> str:
    header, *body = rows
    return ('<div class="wide"><table><thead><tr>' + "".join(f"<th>{cell_html(h)}</th>" for h in header)
            + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{cell_html(c)}</td>" for c in r) + "</tr>" for r in body)
            + "</tbody></table></div>")


def thumbs_html(thumbs: list[Thumb], root: Path) -> str:
    cells = []
    for t in thumbs:
        images = "".join(f'<a href="{html.escape(os.path.relpath(p, root))}"><img alt="{html.escape(t.caption)}: '
                         f'{html.escape(what)}" src="data:image/png;base64,{png_data(p, THUMB_WIDTH)}"></a>'
                         for what, p in t.images)
        links = " · ".join(f'<a href="{html.escape(os.path.relpath(p, root))}">{html.escape(text)}</a>'
                           for text, p in t.links)
        cells.append(f'<figure><div class="pair">{images}</div>'
                     f"<figcaption>{inline_html(t.caption)}{'<br>' + links if links else ''}</figcaption></figure>")
    return '<div class="thumbs">' + "".join(cells) + "</div>"


STYLE = """
html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.45;color:#111;margin:0;padding:0 1.25rem}
main{max-width:72rem;margin:1.25rem auto 3rem}
h1{font-size:1.55rem;line-height:1.25}
h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.15rem}
h1,h2,h3{break-after:avoid;page-break-after:avoid}
.wide{overflow-x:auto;margin:.5rem 0 1.1rem}
table{border-collapse:collapse;font-size:.93rem}
th,td{border:1px solid #bbb;padding:.3rem .55rem;text-align:left;vertical-align:top}
thead th{background:#f1f1f1}
.nw{white-space:nowrap}
tr{break-inside:avoid;page-break-inside:avoid}
.banner{border:2px solid #b00000;background:#fff2f2;padding:.6rem .9rem;margin:1rem 0}
.caution{border-left:5px solid #c77700;background:#fff8e6;padding:.5rem .9rem;margin:1rem 0}
.lead{break-after:avoid;page-break-after:avoid}
.toc{margin:.8rem 0;font-size:.95rem}
img{max-width:100%;height:auto}
figure{margin:0;break-inside:avoid;page-break-inside:avoid}
figcaption{font-size:.85rem;margin-top:.2rem}
.thumbs{display:grid;grid-template-columns:repeat(auto-fill,minmax(22rem,1fr));gap:1.2rem;margin:1rem 0}
.pair{display:grid;grid-template-columns:3fr 2fr;gap:.4rem;align-items:center}
pre{background:#f4f4f4;padding:.8rem;overflow-x:auto;font-size:.85rem}
code{font-size:.92em}
@page{margin:14mm}
@media print{
 body{padding:0;font-size:10pt}
 main{max-width:none;margin:0}
 .wide{overflow:visible}
 table{font-size:8.5pt}
 thead{display:table-header-group}
 pre{white-space:pre-wrap;word-break:break-all}
 a{color:inherit}
 .thumbs{grid-template-columns:repeat(2,1fr)}
}
""".strip()


def to_html(blocks: list[Block], title: str, root: Path = Path(".")) -> str:
    body: list[str] = []
    ids = anchors(blocks)
    for i, b in enumerate(blocks):
        following = blocks[i + 1].kind if i + 1 < len(blocks) else ""
        if b.kind == "toc":
            body.append('<nav class="toc"><strong>Contents</strong>: '
                        + " · ".join(inline_html(item) for item in toc_items(blocks)) + "</nav>")
        elif b.kind in ("h1", "h2", "h3"):
            body.append(f'<{b.kind} id="{html.escape(ids[i])}">{inline_html(b.content)}</{b.kind}>')
        elif b.kind == "p":  # a paragraph right before a table or figure is its caption: kept with it in print
            lead = ' class="lead"' if following in ("table", "img", "thumbs") else ""
            body.append(f"<p{lead}>{inline_html(b.content)}</p>")
        elif b.kind in ("banner", "caution"):
            body.append(f'<div class="{b.kind}">{inline_html(b.content)}</div>')
        elif b.kind == "list":
            body.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            body.append(table_html(b.content))
        elif b.kind == "img":
            path, alt = b.content
            body.append(f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{png_data(path)}">'
                        "</figure>")
        elif b.kind == "code":
            body.append(f"<pre>{html.escape(b.content)}</pre>")
        elif b.kind == "thumbs":
            body.append(thumbs_html(b.content, root))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>\n"
            + "\n".join(body) + "\n</main></body></html>\n")


def write_blocks(blocks: list[Block], out: Path, title: str) -> tuple[Path, Path]:
    """out/report.md and out/report.html from the blocks, each renamed into place when whole."""
    md, page = out / "report.md", out / "report.html"
    with created_atomically(md) as tmp:
        tmp.write_text(to_markdown(blocks, out))
    with created_atomically(page) as tmp:
        tmp.write_text(to_html(blocks, title, out))
    return md, page


def without_timing(text: str) -> str:
    """The report minus its wall-clock lines: what two runs of one study must agree on."""
    return "\n".join(line for line in text.splitlines() if TIMING not in line)
