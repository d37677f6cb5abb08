"""A tiny document model rendered to Markdown and to one self-contained HTML page.

Building the report once as blocks keeps report.md and report.html saying the same thing.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    prose: tuple[int, ...] = ()  # columns of text that wraps in HTML, however short


@dataclass
class Image:
    path: Path  # the PNG on disk while rendering
    link: str  # relative path used by the Markdown
    caption: str


@dataclass
class Code:
    text: str
    language: str = ""


Block = Heading | Paragraph | Bullets | Table | Image | Code


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            lines = [
                "| " + " | ".join(_md_cell(h) for h in block.headers) + " |",
                "|" + "|".join("---" for _ in block.headers) + "|",
            ]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Image):
            out.append(f"![{block.caption}]({block.link})\n\n*{block.caption}*")
        else:
            fence = "````" if "```" in block.text else "```"
            out.append(f"{fence}{block.language}\n{block.text.rstrip()}\n{fence}")
    return "\n\n".join(out) + "\n"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
/* A wide table scrolls sideways in its own box; the page never does. Cells wrap between
   words (and after commas, see BREAK_AFTER_COMMA), never inside one: a cell is at least as
   wide as its longest word, so nothing is clipped or broken mid-letter. */
.table { overflow-x: auto; max-width: 100%; margin: .8em 0; }
table { border-collapse: collapse; font-size: .8em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top;
         overflow-wrap: normal; word-break: normal; hyphens: none; }
th { white-space: normal; min-width: 3.5em; }
td { white-space: nowrap; background: #fff; }
td:first-child { white-space: normal; }
td.text { white-space: normal; min-width: 12em; }
/* the first column (a model, a python) stays in view while a wide table scrolls */
.table td:first-child, .table th:first-child { position: sticky; left: 0; z-index: 1; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-style: italic; color: #555; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
"""


BREAK_AFTER_COMMA = ",\u200b"


def _td(text: str, prose: bool = False) -> str:
    # prose (messages, notes, configure args) wraps between words; numbers and short labels
    # stay on one line
    kind = ' class="text"' if prose or (len(text) > 40 and " " in text.strip()) else ""
    # a zero-width space after each comma lets long config labels wrap there
    return f"<td{kind}>{html.escape(text).replace(',', BREAK_AFTER_COMMA)}</td>"


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        body = "".join(
            "<tr>" + "".join(_td(c, n in block.prose) for n, c in enumerate(row)) + "</tr>"
            for row in block.rows
        )
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        return f'<div class="table">{table}</div>'
    if isinstance(block, Image):
        # embedded, so the page stands alone: no file or network reference to follow
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        caption = html.escape(block.caption)
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return f"<pre><code>{html.escape(block.text)}</code></pre>"


def to_html(blocks: list[Block], title: str) -> str:
    body = "\n".join(_html_block(block) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
