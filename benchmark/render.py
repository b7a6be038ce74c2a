"""Writes `Document`s out: Markdown (GitHub tables), LaTeX (booktabs, compiled in CI), CSV (plain values,
intervals and a ``marks`` column) and JSON. Each table's kind lays out its grid (`benchmark.kinds`);
what the documents hold, and how the marks are drawn in each format, is described in
`benchmark.report`, which builds them."""

from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

from benchmark.document import SIGNIFICANCE, Document, Marked
from benchmark.escape import csv_safe, latex_escape, markdown_escape
from benchmark.kinds import kind_of
from benchmark.kinds.base import Grid

FORMATS = ("markdown", "latex", "csv", "json")


def _grid(doc: Document, ci: bool = False, interval_columns: bool = False) -> Grid:
    return kind_of(doc.spec).grid(doc, ci, interval_columns)


def _title(doc: Document) -> str:
    name = doc.spec.id.replace("-", " ").capitalize()
    return f"{name}: {doc.spec.title}" + (f" [profile: {doc.profile}]" if doc.profile else "")


def _markdown_cell(cell: str) -> str:
    if not isinstance(cell, Marked):
        return markdown_escape(cell)
    text = markdown_escape(str(cell))
    text = f"**{text}**" if cell.bold else text
    text = f"<u>{text}</u>" if cell.underline else text
    return text + SIGNIFICANCE.get(cell.verdict, "")


CI_LEGEND = "± = half the width of the 95 % bootstrap interval over queries (each query's mean over seeds)"


def _header(doc: Document, ci: bool) -> list[str]:
    with_ci = ci and any("ci" in row for row in doc.rows)
    return doc.header + ([CI_LEGEND] if with_ci else [])


def to_markdown(doc: Document, ci: bool = False) -> str:
    headers, grid = _grid(doc, ci)
    body = [[_markdown_cell(cell) for cell in line] for line in grid]
    lines = [f"### {markdown_escape(_title(doc))}", ""] + [f"- {markdown_escape(h)}" for h in _header(doc, ci)]
    if doc.spec.note:
        lines.append(f"- Note: {markdown_escape(doc.spec.note)}")
    headers = [markdown_escape(h) for h in headers]
    lines += ["", tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines)


def _latex_cell(cell: str) -> str:
    text = latex_escape(cell)
    if not isinstance(cell, Marked):
        return text
    text = r"\textbf{" + text + "}" if cell.bold else text
    text = r"\underline{" + text + "}" if cell.underline else text
    return text + latex_escape(SIGNIFICANCE.get(cell.verdict, ""))


def to_latex(doc: Document, ci: bool = False) -> str:
    """A booktabs table that compiles as is (needs \\usepackage{booktabs,amssymb}, as its first line says)."""
    headers, body = _grid(doc, ci)
    align = "ll" + "r" * (len(headers) - 2)
    lines = [
        r"% requires \usepackage{booktabs,amssymb}",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + latex_escape(_title(doc)) + " " + latex_escape("; ".join(_header(doc, ci))) + "}",
        r"\label{tab:" + doc.spec.id + (f"-{doc.profile}" if doc.profile else "") + "}",
        r"\begin{tabular}{" + align + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_cell(cell) for cell in line) + r" \\" for line in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _csv_marks(headers: list[str], line: list[str]) -> str:
    """``HR@10=bold+better; N@10=underline``: the marks of one line, by column."""
    marked = zip(headers, line, strict=True)
    return "; ".join(f"{h}={'+'.join(c.words)}" for h, c in marked if isinstance(c, Marked) and c.words)


def to_csv(doc: Document) -> str:
    """Plain values; tables of metric rows add the number of queries and each value's 95 % bootstrap
    interval (two columns per metric, empty without per-query values), then a last column ``marks``
    (see the module docstring)."""
    headers, body = _grid(doc, interval_columns=True)
    marks = kind_of(doc.spec).metric_rows
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "profile"] + headers + (["marks"] if marks else []))
    for line in body:
        fields = [doc.spec.id, doc.profile or ""] + line + ([_csv_marks(headers, line)] if marks else [])
        writer.writerow([csv_safe(str(field)) for field in fields])
    return buffer.getvalue()


def render(documents: list[Document], fmt: str, ci: bool = False) -> str:
    """``ci``: Markdown and LaTeX show ``value ± half-width`` of the bootstrap interval; JSON (``ci``
    per row) and CSV (columns) always carry the intervals."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "json":
        payload = [d.as_json() for d in documents]
        return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n"
    if fmt == "csv":
        return "\n".join(to_csv(d) for d in documents)
    renderer = to_markdown if fmt == "markdown" else to_latex
    return "\n".join(renderer(d, ci) for d in documents)
