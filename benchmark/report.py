"""Renders stored cells as tables (Markdown, LaTeX, CSV, JSON) with the paper's numbers beside ours.

A document is one table at one profile: the report never mixes profiles. Data-only tables
(Table 1, Figure 2) have no profile. A ranking row whose model has no stored result reads
"not run"; with several seeds a value reads "mean ± std" over seeds.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.store import stored_cells
from benchmark.tables import SPECS, TableSpec
from protocols.ranking import PROTOCOL as CONVERSION_PROTOCOL

NOT_RUN = "not run"
FORMATS = ("markdown", "latex", "csv", "json")


@dataclass
class Document:
    """One rendered unit: a table spec, a profile, our rows and the paper's rows."""

    spec: TableSpec
    profile: str | None
    rows: list[dict[str, Any]]
    header: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        paper = [{k: v for k, v in row.items() if k != "model"} for row in self.spec.paper]
        return {
            "id": self.spec.id,
            "title": self.spec.title,
            "profile": self.profile,
            "rows": self.rows,
            "paper": paper,
        }


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def _ranking_documents(spec: TableSpec, cells: list[dict]) -> list[Document]:
    by_profile: dict[str, list[dict]] = defaultdict(list)
    for cell in cells:
        by_profile[cell["cell"]["profile"]].append(cell)
    documents = []
    several = len(spec.evaluations) > 1
    for profile in sorted(by_profile):
        grouped: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        datasets = []
        for cell in by_profile[profile]:
            dataset = cell["result"].get("dataset_name", cell["cell"]["dataset"])
            grouped[(dataset, cell["cell"]["model"], cell["cell"].get("variant", ""))].append(cell)
            if dataset not in datasets:
                datasets.append(dataset)
        rows, seeds = [], set()
        for dataset in datasets:
            for evaluation in spec.evaluations:
                for row in spec.rows:
                    found = grouped.get((dataset, row.model, row.variant), [])
                    entry: dict[str, Any] = {"dataset": dataset, "model": row.model, "variant": row.variant}
                    entry |= {"label": row.label} | ({"evaluation": evaluation.key} if several else {})
                    results = [c["result"].get("evaluations", {}).get(evaluation.key) for c in found]
                    results = [r for r in results if r is not None]
                    if not results:
                        rows.append(entry | {c: NOT_RUN for c in spec.columns})
                        continue
                    for column in spec.columns:
                        mean, std = _mean_std([r["metrics"][column] for r in results])
                        entry[column] = round(mean, 6)
                        if len(results) > 1:
                            entry[column + " std"] = round(std, 6)
                    entry["seeds"] = sorted(c["cell"]["seed"] for c in found)
                    entry["queries"] = results[0]["queries"]
                    seeds.update(entry["seeds"])
                    rows.append(entry)
        tasks = sorted({e.task.value for e in spec.evaluations})
        if spec.kind == "conversion":
            protocol = f"Task: conversion prediction (Appendix D); protocol: {CONVERSION_PROTOCOL}"
        else:
            protocol = f"Task: {', '.join(tasks)} item prediction; protocol: session-wise leave-one-out, full ranking"
        header = [
            f"Datasets: {', '.join(datasets)} (paper: {spec.paper_dataset})",
            protocol,
            f"Profile: {profile}; seeds: {', '.join(map(str, sorted(seeds))) or '-'}",
        ]
        documents.append(Document(spec, profile, rows, header))
    return documents


def paper_value_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """How a paper row and one of ours are matched: model, variant, evaluation."""
    return row["model"], row.get("variant", ""), row.get("evaluation", "")


def paper_row(spec: TableSpec, row: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The paper's row beside one of ours, and the paper's dataset it reports on.

    Where the table names stand-ins (Table 3: our RetailRocket for the paper's Tmall), only the
    paper row of the dataset ours stands in for matches; a dataset without a stand-in has none."""
    stand_ins = dict(spec.stand_ins)
    wanted = stand_ins.get(row.get("dataset", "")) if stand_ins else None
    if stand_ins and wanted is None:
        return None, ""
    for published in spec.paper:
        if paper_value_key(published) == paper_value_key(row) and published.get("dataset") == wanted:
            return published, wanted or spec.paper_dataset
    return None, ""


def _training_cost_documents(spec: TableSpec, cells: list[dict]) -> list[Document]:
    """Table 6 per profile: each row's size and training cost, and the MBGen / GAMER time ratio."""
    by_profile: dict[str, list[dict]] = defaultdict(list)
    for cell in cells:
        by_profile[cell["cell"]["profile"]].append(cell)
    documents = []
    for profile, group in sorted(by_profile.items()):
        found = {(c["cell"]["model"], c["cell"].get("variant", "")): c for c in group}
        rows, datasets = [], []
        for row in spec.rows:
            entry = {"model": row.model, "variant": row.variant, "label": row.label}
            cell = found.get((row.model, row.variant))
            if cell is None:
                rows.append(entry | {c: NOT_RUN for c in spec.columns})
                continue
            dataset = cell["result"].get("dataset_name", cell["cell"]["dataset"])
            datasets += [dataset] if dataset not in datasets else []
            rows.append(entry | {"dataset": dataset} | cell["result"]["row"])
        header = [
            f"Datasets: {', '.join(datasets) or '-'} (paper: {spec.paper_dataset})",
            f"Profile: {profile}; cells run one at a time on one machine; training s includes each epoch's validation",
            training_time_ratio(rows),
        ]
        documents.append(Document(spec, profile, rows, header))
    return documents


def training_time_ratio(rows: list[dict[str, Any]]) -> str:
    """The claim of Table 6: MBGen's training time over GAMER's, ours beside the paper's (100 h / 13 h)."""

    def seconds(model: str) -> float | None:
        for row in rows:
            if row["model"] == model and row["variant"] == "aug0" and isinstance(row.get("training s"), float):
                return row["training s"]
        return None

    mbgen, gamer = seconds("mbgen_sid"), seconds("gamer_sid")
    ours = f"{mbgen / gamer:.1f}x" if mbgen and gamer else NOT_RUN
    return f"MBGen / GAMER training time without augmentation: ours {ours}; paper about {100 / 13:.1f}x (100 h / 13 h)"


def documents_for(spec: TableSpec, root: Path) -> list[Document]:
    cells = stored_cells(root, spec.id)
    if spec.has_metric_rows:
        return _ranking_documents(spec, cells)
    if spec.kind == "training-cost":
        return _training_cost_documents(spec, cells)
    if spec.kind == "online":  # Table 11: nothing can run offline; the paper's numbers and the reason
        return [Document(spec, None, [], [spec.note])]
    if not cells:
        return []
    if spec.kind == "dataset-stats":
        rows = [
            c["result"]["row"] | {"users removed (< 3 sessions)": c["result"]["filter"]["users_removed"]} for c in cells
        ]
        header = ["Users with fewer than three sessions removed; items = distinct items interacted after the filter"]
    else:
        rows = [row for c in cells for row in c["result"]["rows"]]
        header = [
            "Classic leave-one-out on the whole dataset (no session filter); target = last target-behavior interaction"
        ]
    return [Document(spec, None, rows, header)]


# -- rendering -------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell_text(row: dict, column: str) -> str:
    value = row.get(column, "")
    if column + " std" in row:
        return f"{value:.4f} ± {row[column + ' std']:.4f}"
    return _fmt(value)


def _grid(doc: Document) -> tuple[list[str], list[list[str]]]:
    """Headers and body lines, ours and the paper's beside each other."""
    spec = doc.spec
    if spec.has_metric_rows:
        several = len(spec.evaluations) > 1
        headers = (["Evaluation"] if several else []) + ["Model", "Source"] + list(spec.columns)
        body = []
        for row in doc.rows:
            lead = [row.get("evaluation", "")] if several else []
            body.append(lead + [row["label"], f"ours ({row['dataset']})"] + [_cell_text(row, c) for c in spec.columns])
            published, paper_dataset = paper_row(spec, row)
            if published is not None:
                body.append(
                    ([""] if several else [])
                    + ["", f"paper ({paper_dataset})"]
                    + [_fmt(published[c]) for c in spec.columns]
                )
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
                    [row["label"], f"ours ({row['dataset']})", f"{row['parameters'] / 1e6:.2f}M"]
                    + [f"{row['seconds per epoch']:.1f} s", str(row["epochs to best"]), str(row["epochs run"])]
                    + [f"{row['training s']:.0f} s"]
                )
            published = paper.get(paper_value_key(row))
            if published is not None:
                body.append(
                    ["", f"paper ({spec.paper_dataset})", f"{published['parameters'] / 1e6:.2f}M", "-"]
                    + [str(published["epochs"]), "-", f"~{published['hours']} h"]
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


def to_markdown(doc: Document) -> str:
    headers, body = _grid(doc)
    lines = [f"### {_title(doc)}", ""] + [f"- {h}" for h in doc.header]
    if doc.spec.note:
        lines.append(f"- Note: {doc.spec.note}")
    lines += ["", tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines)


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(doc: Document) -> str:
    """A booktabs table that compiles as is (needs \\usepackage{booktabs})."""
    headers, body = _grid(doc)
    align = "ll" + "r" * (len(headers) - 2)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + latex_escape(_title(doc)) + " " + latex_escape("; ".join(doc.header)) + "}",
        r"\label{tab:" + doc.spec.id + (f"-{doc.profile}" if doc.profile else "") + "}",
        r"\begin{tabular}{" + align + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(cell) for cell in line) + r" \\" for line in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def to_csv(doc: Document) -> str:
    headers, body = _grid(doc)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "profile"] + headers)
    writer.writerows([doc.spec.id, doc.profile or ""] + line for line in body)
    return buffer.getvalue()


def render(documents: list[Document], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "json":
        payload = [d.as_json() for d in documents]
        return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n"
    renderer = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}[fmt]
    return "\n".join(renderer(d) for d in documents)


def all_documents(root: Path, ids: list[str] | None = None) -> list[Document]:
    """Documents of the given table ids (every registered one by default), in registry order."""
    chosen = ids or list(SPECS)
    return [doc for table_id in chosen for doc in documents_for(SPECS[table_id], root)]
