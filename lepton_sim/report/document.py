"""A report as plain data (sections of figures, tables and text) and its two renderings.

`render_html` embeds every figure as a base64 PNG, so report.html is one file that opens offline;
`render_markdown` refers to the same PNGs written beside report.md. The page fits a 1,280 px window
without sideways scrolling: headers wrap (at the dots and slashes of key paths too), numbers do not.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from lepton_sim.fileio import atomic_write


@dataclass(frozen=True)
class Figure:
    name: str  # file stem of the PNG beside report.md
    title: str
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Text:
    text: str


Block = Figure | Table | Text


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    sections: tuple[Section, ...]
    facts: tuple[tuple[str, str], ...] = field(default=())  # key figures shown under the title


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path
    figures: tuple[Path, ...]


def figures(report: Report) -> list[Figure]:
    return [b for s in report.sections for b in s.blocks if isinstance(b, Figure)]


def write(report: Report, out_dir: Path) -> ReportPaths:
    """Write report.html, report.md and one PNG per figure into `out_dir` (each file atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = []
    for fig in figures(report):
        path = out_dir / f"{fig.name}.png"
        atomic_write(path, fig.png)
        pngs.append(path)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    atomic_write(html_path, render_html(report).encode())
    atomic_write(md_path, render_markdown(report).encode())
    return ReportPaths(html_path, md_path, tuple(pngs))


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1120px;
     padding:1.5rem;color:#1d2733;background:#fff;line-height:1.45}
h1{margin-bottom:.2rem} .sub{color:#5b6b7c;margin-top:0}
h2{border-bottom:2px solid #e3e8ee;padding-bottom:.25rem;margin-top:2.2rem}
figure{margin:1rem 0} figure img{max-width:100%;height:auto;box-sizing:border-box;border:1px solid #e3e8ee;
     border-radius:4px}
figcaption{color:#5b6b7c;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #d5dde6;padding:.25rem .5rem;text-align:left;white-space:nowrap}
th{background:#f3f6f9;white-space:normal;overflow-wrap:break-word;vertical-align:bottom}
.num{text-align:right} .scroll{overflow-x:auto} td.wrap{white-space:normal;min-width:16rem}
table.wide{font-size:.8rem} table.wide th,table.wide td{padding:.2rem .35rem}
.facts{display:flex;flex-wrap:wrap;gap:.6rem;margin:1rem 0}
.fact{background:#f3f6f9;border-radius:6px;padding:.45rem .8rem}
.fact b{display:block;font-size:1.15rem} .note{color:#5b6b7c;font-size:.85rem}
"""


def render_html(report: Report) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(report.title)}</h1>", f'<p class="sub">{e(report.subtitle)}</p>']
    if report.facts:
        parts.append('<div class="facts">' + "".join(
            f'<div class="fact"><b>{e(v)}</b>{e(k)}</div>' for k, v in report.facts) + "</div>")
    for section in report.sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        for block in section.blocks:
            parts.append(_html_block(block))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_block(block: Block) -> str:
    e = html.escape
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        caption = f"<figcaption>{e(block.caption)}</figcaption>" if block.caption else ""
        return (f'<figure id="{e(block.name)}"><img alt="{e(block.title)}" '
                f'src="data:image/png;base64,{data}">{caption}</figure>')
    if isinstance(block, Table):
        num = numeric_columns(block)
        head = "".join(f"<th{_cls(n)}>{_breakable(h)}</th>" for h, n in zip(block.header, num))
        body = "".join("<tr>" + "".join(_td(c, n) for c, n in zip(row, num)) + "</tr>" for row in block.rows)
        title = f"<h3>{e(block.title)}</h3>" if block.title else ""
        note = f'<p class="note">{e(block.note)}</p>' if block.note else ""
        wide = ' class="wide"' if len(block.header) > WIDE else ""
        table = f"<table{wide}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        return f'{title}<div class="scroll">{table}</div>{note}'
    return f"<p>{e(block.text)}</p>"


WIDE = 12  # columns beyond which a table is set smaller
_NUMBER = re.compile(r"[-+]?\$?[-+]?(\d[\d,]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?( ?(%|ms|s|GB|Wh|kWh|rps))?")


def numeric_columns(table: Table) -> list[bool]:
    """Which columns hold only numbers (a "-" or nothing where there is none): those are right-aligned."""
    cols = list(zip(*table.rows)) if table.rows else [() for _ in table.header]
    return [any(c not in ("", "-") for c in col) and all(c in ("", "-") or _NUMBER.fullmatch(c) for c in col)
            for col in cols]


def _cls(numeric: bool) -> str:
    return ' class="num"' if numeric else ""


def _breakable(text: str) -> str:
    """Header text that may also break after the dots, slashes, @, hyphens and underscores of a key path."""
    return re.sub(r"([./@_-])(?=\w)", r"\1<wbr>", html.escape(text))


def _td(text: str, numeric: bool = False) -> str:
    """A table cell; long text (a note, an error) wraps instead of widening the table."""
    cls = ' class="num"' if numeric else ' class="wrap"' if len(text) > 40 else ""
    return f"<td{cls}>{html.escape(text)}</td>"


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", report.subtitle, ""]
    if report.facts:
        lines += [f"- **{v}** {k}" for k, v in report.facts] + [""]
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _md_block(block) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Figure):
        out = [f"![{block.title}]({block.name}.png)"]
        return out + ["", f"*{block.caption}*"] if block.caption else out
    if isinstance(block, Table):
        out = [f"### {block.title}", ""] if block.title else []
        out.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
        out.append("|" + "|".join("---:" if n else "---" for n in numeric_columns(block)) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return out + (["", block.note] if block.note else [])
    return [block.text]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
