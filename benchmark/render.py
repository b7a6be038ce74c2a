"""Writes `Document`s out: Markdown (GitHub tables), LaTeX (booktabs, compiled in CI), CSV (plain values,
intervals and a ``marks`` column) and JSON. What the documents hold, and how the marks are drawn in
each format, is described in `benchmark.report`, which builds them."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from typing import Any

from tabulate import tabulate

from benchmark.document import SIGNIFICANCE, Document, Marked
from benchmark.escape import csv_safe, latex_escape, markdown_escape
from benchmark.report import CAP_MARK, DELTA, NOT_RUN, capped, paper_row, paper_value_key

FORMATS = ("markdown", "latex", "csv", "json")


def _relative_text(relative: float | None) -> str:
    return "-" if relative is None else f"{100 * relative:+.1f} %"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell_text(row: dict, column: str, ci: bool = False) -> str:
    value = row.get(column, "")
    if ci and column in row.get("ci", {}):
        low, high = row["ci"][column]
        text = f"{value:.4f} ± {(high - low) / 2:.4f}"
    elif column + " std" in row:
        text = f"{value:.4f} ± {row[column + ' std']:.4f}"
    else:
        text = _fmt(value)
    marks = row.get("marks", {}).get(column)
    if not marks:
        return text
    return Marked(text, marks["bold"], marks["underline"], marks.get("vs_best_baseline", ""))


def _label(doc: Document, row: dict[str, Any]) -> str:
    """A row's name, marked where it did not converge (at smoke no row does: the header says so once)."""
    return row["label"] + (CAP_MARK if doc.profile != "smoke" and capped(row) else "")


def _interval_columns(row: dict[str, Any], columns: tuple[str, ...]) -> list[str]:
    """CSV's extra fields: the number of queries, then each column's 95 % interval (low, high)."""
    ci = row.get("ci", {})
    bounds = [_fmt(x) for c in columns for x in ci.get(c, ("", ""))]
    return [str(row.get("queries", ""))] + bounds


def _grid(doc: Document, ci: bool = False, interval_columns: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and body lines, ours and the paper's beside each other. ``ci``: our values read
    ``value ± half-width`` of their bootstrap interval; ``interval_columns``: the queries and each
    interval get columns of their own (CSV)."""
    spec = doc.spec
    if spec.has_metric_rows:
        several = len(spec.evaluations) > 1
        headers = (["Evaluation"] if several else []) + ["Model", "Source"] + list(spec.columns)
        extra = ["queries"] + [f"{c} {b}" for c in spec.columns for b in ("CI95 low", "CI95 high")]
        headers += extra if interval_columns else []
        blank = [""] * len(extra) if interval_columns else []
        body = []
        for row in doc.rows:
            lead = [row.get("evaluation", "")] if several else []
            values = [_cell_text(row, c, ci) for c in spec.columns]
            intervals = _interval_columns(row, spec.columns) if interval_columns else []
            body.append(lead + [_label(doc, row), f"ours ({row['dataset']})"] + values + intervals)
            paper = row.get("vs_paper")
            if paper is None:
                published, paper_dataset = paper_row(spec, row)  # a row not run: the paper's line alone
                if published is None:
                    continue
                paper = {"dataset": paper_dataset, "values": published}
            lead = [""] if several else []
            paper_values = [_fmt(paper["values"][c]) for c in spec.columns]
            body.append(lead + ["", f"paper ({paper['dataset']})"] + paper_values + blank)
            if "relative" in paper:
                body.append(lead + ["", DELTA] + [_relative_text(paper["relative"][c]) for c in spec.columns] + blank)
        return headers, body
    if spec.kind == "training-cost":
        headers = ["Model", "Source", "#Parameters", "s / epoch", "epochs to best", "epochs run", "training time"]
        paper = {paper_value_key(p): p for p in spec.paper}
        body = []
        for row in doc.rows:
            if row.get("parameters") == NOT_RUN:
                body.append([row["label"], "ours"] + [NOT_RUN] * 5)
            else:
                body.append(
                    [_label(doc, row), f"ours ({row['dataset']})"]
                    + [f"{row['parameters'] / 1e6:.2f}M"]
                    + [f"{row['seconds per epoch']:.1f} s", str(row["epochs to best"]), str(row["epochs run"])]
                    + [f"{row['training s']:.0f} s"]
                )
            published = paper.get(paper_value_key(row))
            if published is not None:
                body.append(
                    ["", f"paper ({spec.paper_dataset})", f"{published['parameters'] / 1e6:.2f}M", "-"]
                    + [str(published["epochs"]), "-", f"~{published['hours']} h"]
                )
            if "vs_paper" in row:
                relative = row["vs_paper"]["relative"]
                body.append(
                    ["", DELTA, _relative_text(relative["parameters"]), "-", _relative_text(relative["epochs"])]
                    + ["-", "-"]
                )
        return headers, body
    if spec.kind == "leakage":
        headers = ["dataset", "variant"] + [f"k={k}" for k in sorted({r["k"] for r in doc.rows})]
        table: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        for r in doc.rows:
            table[(r["dataset"], r["variant"])][r["k"]] = r["ratio"]
        body = [[d, v] + [_fmt(ratios[k]) for k in sorted(ratios)] for (d, v), ratios in table.items()]
        return headers, body
    columns = list(doc.rows[0]) if doc.rows else list(spec.columns)
    headers = ["Source"] + columns
    body = [["ours"] + [_fmt(r.get(c, "")) for c in columns] for r in doc.rows]
    body += [["paper"] + [_fmt(p.get(c, "")) for c in columns] for p in spec.paper]
    return headers, body


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
    marks = doc.spec.has_metric_rows
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
