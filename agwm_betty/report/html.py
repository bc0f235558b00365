"""One page for a person: a report's tables.md as a single self-contained HTML file, every table
an HTML table and every plot embedded as a data URI, so it opens in a browser offline and can be
mailed as one file.

Reads only the markdown that `render.render_report` writes: headings, paragraphs with `code`,
pipe tables (`tables.to_markdown`) and image lines `![alt](file.png)` naming files beside it.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 110em; padding: 0 1em; color: #222; }
h1, h2, h3, h4 { margin-top: 1.4em; }
p { max-width: 60em; line-height: 1.4; }
code { background: #f2f2f2; padding: 0 0.2em; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; white-space: nowrap; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; height: auto; }
"""
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)")
HEADING = re.compile(r"(?P<level>#{1,6})\s+(?P<text>.*)")
PIPE = re.compile(r"(?<!\\)\|")
NUM = ' class="num"'


def _inline(text: str) -> str:
    """Escape text for HTML and render `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row, with `to_markdown`'s escaped pipes restored."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip().replace("\\|", "|") for cell in PIPE.split(inner)]


def _table(lines: list[str]) -> str:
    """A pipe table (header, separator, rows) as an HTML table; right-aligned columns stay so."""
    header, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    align = [cell.endswith(":") for cell in _cells(lines[1])] if len(lines) > 1 else []
    head = "".join(f"<th>{_inline(c)}</th>" for c in header)
    body = []
    for row in rows:
        tds = "".join(f"<td{NUM if i < len(align) and align[i] else ''}>{_inline(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{tds}</tr>")
    return (f'<div class="table"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _image(alt: str, src: str, folder: Path) -> str:
    """An <img> whose source is the PNG itself, base64-encoded (no file or network needed to show it)."""
    path = folder / src
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the report names this plot, but it is not there")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def markdown_to_html(markdown: str, folder: str | Path, title: str = "agwm-betty results") -> str:
    """The whole page for a report's markdown; images are read from `folder`."""
    folder = Path(folder)
    parts: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
        elif line.startswith("|"):
            start = i
            while i < len(lines) and lines[i].strip().startswith("|"):
                i += 1
            parts.append(_table(lines[start:i]))
        elif IMAGE.fullmatch(line):
            match = IMAGE.fullmatch(line)
            parts.append(_image(match["alt"], match["src"], folder))
            i += 1
        elif HEADING.fullmatch(line):
            match = HEADING.fullmatch(line)
            level = len(match["level"])
            parts.append(f"<h{level}>{_inline(match['text'])}</h{level}>")
            i += 1
        else:
            start, i = i, i + 1
            while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(("|", "#", "![")):
                i += 1
            parts.append(f"<p>{_inline(' '.join(s.strip() for s in lines[start:i]))}</p>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def write_html(tables_md: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.html` beside `tables_md` (or to `out`) from it and the plots it names; return the path."""
    tables_md = Path(tables_md)
    out = Path(out) if out is not None else tables_md.with_name("report.html")
    out.write_text(markdown_to_html(tables_md.read_text(encoding="utf-8"), tables_md.parent), encoding="utf-8")
    return out
