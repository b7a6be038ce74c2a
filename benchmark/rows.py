"""The building blocks of the report's documents (`benchmark.report`), shared by the kinds of table
(`benchmark.kinds`): grouping cells by profile, means over seeds, marks and significance, intervals,
the comparison with the paper, the header's legends, and how a value reads in a grid. What the
documents hold and how each format draws them is described in `benchmark.report`."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

import numpy as np

from benchmark.document import Document, Marked
from benchmark.stats import bootstrap_interval, compare_rows, query_means
from benchmark.store import Cell, training_record
from benchmark.tables import TableSpec

NOT_RUN = "not run"
SMOKE_LABEL = "smoke: pipeline check, models undertrained (never compare rows at this profile)"
CAP_MARK = "†"
CAP_LEGEND = f"{CAP_MARK} = stopped at the epoch cap, not at its plateau (a seed at least): not converged"
DELTA = "Δ vs paper"
DELTA_LEGEND = "Δ vs paper = (ours - paper) / paper, per column (ours: the mean over seeds)"
MARKS_LEGEND = (
    "Marks on our rows, per column within each dataset and evaluation: bold = best; underline = best baseline "
    "(every row but GAMER's)"
)
NO_TESTS_LEGEND = "; no GAMER row with per-query values, so no significance tests"
TESTS_LEGEND = (
    "; ▲ / ▼ = better / worse than that best baseline by both a paired t-test and a Wilcoxon signed-rank test "
    "over per-query values (each query's mean over seeds), both p < 0.05 after Holm over all row-metric "
    "comparisons of the dataset and evaluation"
)


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def is_baseline(model: str) -> bool:
    """Every row but GAMER's (``gamer_sid``, ``gamer_cid``, ``gamer_rank`` ...) is a baseline, as in the paper."""
    return not model.startswith("gamer")


def _row_key(entry: dict[str, Any]) -> str:
    return f"{entry['model']}@{entry['variant']}" if entry["variant"] else entry["model"]


def _three_digits(p: float) -> float:
    return float(f"{p:.3g}")


def _per_query_runs(results: list[dict], columns: tuple[str, ...]) -> list[dict] | None:
    """Each seed's stored per-query values of an evaluation, or None unless every seed has every column."""
    runs = [r.get("per_query") for r in results]
    return runs if all(run is not None and all(c in run for c in columns) for run in runs) else None


def _mark_block(columns: tuple[str, ...], block: list[tuple[dict[str, Any], list[dict] | None]]) -> bool:
    """Set ``entry["marks"]`` on the rows of one (dataset, evaluation) block; return whether any test ran.

    ``block`` pairs each row of ours that has values with its per-query runs (None without). Per
    column: bold = the highest mean (ties all bold); underline = the highest among baselines. Each
    GAMER row with per-query runs is tested against its column's best baseline (the first tied one
    with per-query runs) by `compare_rows`, whose family is then every comparison of the block.
    A block with fewer than two rows is left unmarked: a lone row is best against nothing.
    """
    if len(block) < 2:
        return False
    entries = [entry for entry, _ in block]
    values = np.array([[entry[c] for c in columns] for entry in entries], dtype=float)  # [rows, columns]
    baseline = np.array([is_baseline(entry["model"]) for entry in entries])
    best = np.fmax.reduce(values, axis=0)  # fmax: a NaN value is never best
    best_baseline = np.fmax.reduce(np.where(baseline[:, None], values, -np.inf), axis=0)
    bold, underline = values == best, baseline[:, None] & (values == best_baseline)
    for i, entry in enumerate(entries):
        entry["marks"] = {
            c: {"bold": bool(bold[i, j]), "underline": bool(underline[i, j])} for j, c in enumerate(columns)
        }
    has_runs = [runs is not None for _, runs in block]
    ours = [i for i in range(len(block)) if has_runs[i] and not baseline[i]]
    reference = {}
    for j, column in enumerate(columns):
        tied = [i for i in np.flatnonzero(underline[:, j]) if has_runs[i]]
        if tied:
            reference[column] = int(tied[0])
    if not ours or not reference:
        return False
    per_query = {i: block[i][1] for i in ours + list(reference.values())}
    for i, by_column in compare_rows(per_query, reference, list(reference), rows=ours).items():
        for column, test in by_column.items():
            entries[i]["marks"][column] |= {
                "vs_best_baseline": test["verdict"],
                "best_baseline": _row_key(entries[test["baseline"]]),
                "p_t": _three_digits(test["p_t"]),
                "p_wilcoxon": _three_digits(test["p_wilcoxon"]),
                "queries": test["n"],
                "dropped": test["dropped"],
            }
    return True


def metric_documents(spec: TableSpec, cells: list[dict], protocol: str) -> list[Document]:
    """Per profile: each row's mean (± std over seeds) per dataset and evaluation, its queries, interval,
    marks and difference from the paper. ``protocol``: the header line naming the task and protocol."""
    by_profile: dict[str, list[dict]] = defaultdict(list)
    for cell in cells:
        by_profile[cell["cell"]["profile"]].append(cell)
    documents = []
    several = len(spec.evaluations) > 1
    for profile in sorted(by_profile):
        grouped: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        datasets = []
        for cell in by_profile[profile]:
            dataset = dataset_name(cell)
            grouped[(dataset, cell["cell"]["model"], cell["cell"].get("variant", ""))].append(cell)
            if dataset not in datasets:
                datasets.append(dataset)
        rows, seeds = [], set()
        marked = tested = False
        for dataset in datasets:
            for evaluation in spec.evaluations:
                block = []
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
                    entry |= stopped_by(found)
                    entry |= vs_paper(spec, entry, {c: c for c in spec.columns})
                    runs = _per_query_runs(results, spec.columns)
                    if runs is not None:
                        entry["ci"] = _intervals(runs, spec.columns)
                    seeds.update(entry["seeds"])
                    rows.append(entry)
                    block.append((entry, runs))
                tested |= _mark_block(spec.columns, block)
                marked |= len(block) > 1
        header = [
            f"Datasets: {', '.join(datasets)} (paper: {spec.paper_dataset})",
            protocol,
            f"Profile: {profile}; seeds: {', '.join(map(str, sorted(seeds))) or '-'}",
        ]
        header += seeds_line(rows) + training_legend(profile, rows)
        header += _cid_fallbacks(by_profile[profile]) + trained_elsewhere_line(by_profile[profile])
        header += code_versions_line(by_profile[profile])
        if any("vs_paper" in row for row in rows):
            header.append(DELTA_LEGEND)
        if marked:
            header.append(MARKS_LEGEND + (TESTS_LEGEND if tested else NO_TESTS_LEGEND))
        documents.append(Document(spec, profile, rows, header))
    return documents


def _intervals(runs: list[dict], columns: tuple[str, ...]) -> dict[str, list[float]]:
    """Each column's 95 % bootstrap interval over queries (each query's mean over the seeds)."""
    return {c: [round(x, 6) for x in bootstrap_interval(query_means(runs, c))] for c in columns}


def stopped_by(cells: list[dict]) -> dict[str, Any]:
    """``{"stopped_by": {seed: reason}}`` for rows that train (see `benchmark.store.training_record`)."""
    records = {c["cell"]["seed"]: training_record(c["result"]) for c in cells}
    reasons = {str(seed): r["stop_reason"] for seed, r in sorted(records.items()) if r is not None}
    return {"stopped_by": reasons} if reasons else {}


def _cid_fallbacks(cells: list[dict]) -> list[str]:
    """A line per SID row whose semantic IDs collided too much and were replaced by chunked IDs."""
    lines = []
    for cell in cells:
        reason = cell["result"].get("model", {}).get("tokenizer", {}).get("cid_fallback")
        if reason:
            where = f"{cell['cell']['model']} ({cell['result'].get('dataset_name', cell['cell']['dataset'])}, "
            lines.append(f"{where}seed {cell['cell']['seed']}) ran on chunked IDs, not SIDs: {reason}")
    return lines


def capped(row: dict[str, Any]) -> bool:
    """A row at least one of whose seeds stopped at the epoch cap, not at its plateau."""
    return "epoch cap" in row.get("stopped_by", {}).values()


def training_legend(profile: str | None, rows: list[dict[str, Any]]) -> list[str]:
    """The smoke label, or outside smoke the mark of rows that did not converge."""
    if profile == "smoke":
        return [SMOKE_LABEL]
    return [CAP_LEGEND] if any(capped(row) for row in rows) else []


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


def relative_difference(ours: Any, paper: Any) -> float | None:
    """``(ours - paper) / paper``, or None where it means nothing (a paper value of 0, a value not a number)."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (ours, paper))
    if not numbers or paper == 0 or math.isnan(ours) or math.isnan(paper):
        return None
    return (ours - paper) / abs(paper)


def vs_paper(spec: TableSpec, row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """``{"vs_paper": {...}}`` for a row of ours that the paper reports too, else ``{}``.

    ``columns`` maps a paper column to ours (Table 6: the paper's ``epochs`` are our ``epochs to
    best``). The result holds the paper's dataset, its values and, per paper column, the relative
    difference of ours (a mean over seeds) from the paper's, rounded to four decimals (-0.4531 =
    45.31 % below).
    """
    published, paper_dataset = paper_row(spec, row)
    if published is None:
        return {}
    values = {c: published[c] for c in columns if c in published}
    relative = {c: relative_difference(row.get(columns[c]), v) for c, v in values.items()}
    rounded = {c: None if r is None else round(r, 4) for c, r in relative.items()}
    return {"vs_paper": {"dataset": paper_dataset, "values": values, "relative": rounded}}


def _dataset_fingerprint(cell: dict) -> str:
    identity = cell["provenance"]["config"].get("dataset", {})
    return json.dumps({k: identity.get(k) for k in ("origin", "definition", "files")}, sort_keys=True)


def dataset_name(cell: dict) -> str:
    """The name the report shows a cell's dataset under, saying so when it is a user sample ([sample])."""
    result = cell["result"]
    row = result.get("row")
    identity = cell["provenance"]["config"].get("dataset", {})
    if "dataset_name" in result:
        name = str(result["dataset_name"])
    elif isinstance(row, dict) and "dataset" in row:
        name = str(row["dataset"])
    else:
        name = str(identity.get("name", cell["cell"]["dataset"]))
    definition = identity.get("definition")
    sample = definition.get("toml", {}).get("sample") if isinstance(definition, dict) else None
    if isinstance(sample, dict) and "users" in sample:
        name += f" (sample: {sample['users']} users, seed {sample.get('seed', 0)})"
    return name


def check_one_dataset_per_name(spec: TableSpec, cells: list[dict]) -> None:
    """Refuse a table whose cells hold two different datasets under one name (two TOML files naming
    their data alike, or one whose data changed between cells): the report groups rows by name, and
    would average them as if they were seeds."""
    first: dict[str, dict] = {}
    for cell in cells:
        name = dataset_name(cell)
        seen = first.setdefault(name, cell)
        if _dataset_fingerprint(seen) == _dataset_fingerprint(cell):
            continue
        where = [c["provenance"]["config"].get("dataset", {}).get("origin", c["cell"]["dataset"]) for c in (seen, cell)]
        cells_text = " and ".join(Cell(**c["cell"]).describe() for c in (seen, cell))
        if where[0] != where[1]:
            raise ValueError(
                f"{spec.id}: two different datasets are both named {name!r}: {where[0]} and {where[1]} "
                f"({cells_text}); give one of them another `name` in its TOML"
            )
        raise ValueError(
            f"{spec.id}: the data of {name!r} ({where[0]}) changed between its stored cells ({cells_text}); "
            "`gamer-bench run` recomputes the stale ones"
        )


def trained_elsewhere_line(cells: list[dict]) -> list[str]:
    """A header line naming the cells whose model was trained for another table's cell: stored from it
    (``adopted_from``) or trained on from its kept checkpoint (``checkpoint_from``)."""

    def row_key(cell: dict) -> str:
        return cell["model"] + (f"@{cell['variant']}" if cell.get("variant") else "")

    found = []
    for cell in cells:
        for key, how in (("adopted_from", "stored from"), ("checkpoint_from", "trained on from the checkpoint of")):
            source = cell["provenance"].get(key)
            if source:
                found.append(f"{row_key(cell['cell'])} ({how} {source['table']} {row_key(source)})")
    return [f"Trained for another table: {'; '.join(sorted(found))}"] if found else []


def seeds_line(rows: list[dict[str, Any]]) -> list[str]:
    """A header line per dataset whose rows did not all run the same seeds, saying which rows ran which: a
    row's value (and its interval) is then a mean over a different number of trainings than its neighbours'."""
    by_dataset: dict[str, dict[tuple[int, ...], list[str]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("seeds"):
            names = by_dataset[row["dataset"]][tuple(row["seeds"])]
            if row["label"] not in names:  # a row appears once per evaluation
                names.append(row["label"])
    lines = []
    for dataset, by_seeds in by_dataset.items():
        if len(by_seeds) > 1:
            ordered = sorted(by_seeds.items())
            groups = "; ".join(f"{', '.join(map(str, seeds))}: {', '.join(names)}" for seeds, names in ordered)
            lines.append(f"Seeds differ by row on {dataset}: {groups}")
    return lines


def code_versions_line(cells: list[dict]) -> list[str]:
    """A header line when a table mixes cells computed by different versions of the code."""
    versions = sorted({c["provenance"]["code_version"] for c in cells})
    if len(versions) < 2:
        return []
    return [f"Mixed code versions: these cells were computed by {len(versions)} versions ({', '.join(versions)})"]


def relative_text(relative: float | None) -> str:
    return "-" if relative is None else f"{100 * relative:+.1f} %"


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def cell_text(row: dict, column: str, ci: bool = False) -> str:
    value = row.get(column, "")
    if ci and column in row.get("ci", {}):
        low, high = row["ci"][column]
        text = f"{value:.4f} ± {(high - low) / 2:.4f}"
    elif column + " std" in row:
        text = f"{value:.4f} ± {row[column + ' std']:.4f}"
    else:
        text = fmt(value)
    marks = row.get("marks", {}).get(column)
    if not marks:
        return text
    return Marked(text, marks["bold"], marks["underline"], marks.get("vs_best_baseline", ""))


def label(doc: Document, row: dict[str, Any]) -> str:
    """A row's name, marked where it did not converge (at smoke no row does: the header says so once)."""
    return row["label"] + (CAP_MARK if doc.profile != "smoke" and capped(row) else "")


def interval_fields(row: dict[str, Any], columns: tuple[str, ...]) -> list[str]:
    """CSV's extra fields: the number of queries, then each column's 95 % interval (low, high)."""
    ci = row.get("ci", {})
    bounds = [fmt(x) for c in columns for x in ci.get(c, ("", ""))]
    return [str(row.get("queries", ""))] + bounds


def metric_grid(doc: Document, ci: bool = False, interval_columns: bool = False) -> tuple[list[str], list[list[str]]]:
    """The grid of a metric table (retrieval and conversion): per evaluation, each row of ours, the paper's
    line under it and their difference. ``ci``: our values read ``value ± half-width`` of their bootstrap
    interval; ``interval_columns``: the queries and each interval get columns of their own (CSV)."""
    spec = doc.spec
    several = len(spec.evaluations) > 1
    headers = (["Evaluation"] if several else []) + ["Model", "Source"] + list(spec.columns)
    extra = ["queries"] + [f"{c} {b}" for c in spec.columns for b in ("CI95 low", "CI95 high")]
    headers += extra if interval_columns else []
    blank = [""] * len(extra) if interval_columns else []
    body = []
    for row in doc.rows:
        lead = [row.get("evaluation", "")] if several else []
        values = [cell_text(row, c, ci) for c in spec.columns]
        intervals = interval_fields(row, spec.columns) if interval_columns else []
        body.append(lead + [label(doc, row), f"ours ({row['dataset']})"] + values + intervals)
        paper = row.get("vs_paper")
        if paper is None:
            published, paper_dataset = paper_row(spec, row)  # a row not run: the paper's line alone
            if published is None:
                continue
            paper = {"dataset": paper_dataset, "values": published}
        lead = [""] if several else []
        paper_values = [fmt(paper["values"][c]) for c in spec.columns]
        body.append(lead + ["", f"paper ({paper['dataset']})"] + paper_values + blank)
        if "relative" in paper:
            body.append(lead + ["", DELTA] + [relative_text(paper["relative"][c]) for c in spec.columns] + blank)
    return headers, body


def data_grid(doc: Document) -> tuple[list[str], list[list[str]]]:
    """The grid of a data table: our rows, then the paper's, column by column."""
    spec = doc.spec
    columns = list(doc.rows[0]) if doc.rows else list(spec.columns)
    headers = ["Source"] + columns
    body = [["ours"] + [fmt(r.get(c, "")) for c in columns] for r in doc.rows]
    body += [["paper"] + [fmt(p.get(c, "")) for c in columns] for p in spec.paper]
    return headers, body
