"""The paper's claims, each judged from stored cells: ``gamer-bench claims``.

A claim names the rows of a table it compares and what the paper showed for it. Judged on the cells
of one profile, per dataset, it gets one of four verdicts:

- **holds**: the stored cells support it, significantly where a test applies;
- **contradicted**: they show the opposite, significantly;
- **inconclusive**: the difference is not significant (or the claim's rows disagree);
- **not run**: a row it needs has no stored cell; the judgement carries the command that runs it.

Ranking claims compare N@10 (the paper's headline metric) on the rows' per-query values: the paired
t-test and Wilcoxon signed-rank test of `benchmark.stats.compare_pairs`, Holm-corrected over the
comparisons of one claim on one table and dataset, a difference significant only when both tests
agree. Seeds are averaged per query first. Each row's value comes with its number of queries and a
95 % percentile-bootstrap interval over queries (`benchmark.stats.bootstrap_interval`).

A claim over several comparisons (every architecture, both model families) holds when every one of
them holds, is contradicted when one is contradicted, and is inconclusive otherwise. C8 is a claim
of no effect: it is contradicted only when the session-wise layer is significantly better somewhere.
C6 is a ratio of two timings, with no interval: it holds when ours reaches the paper's 7.7x.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from benchmark.escape import latex_escape, markdown_escape
from benchmark.kinds import kind_of
from benchmark.kinds.cost import TrainingCost
from benchmark.stats import Run, aligned_groups, bootstrap_interval, compare_pairs, query_means
from benchmark.store import Cell, stored_cells
from benchmark.tables import SPECS

HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_RUN = "holds", "contradicted", "inconclusive", "not run"
VERDICTS = (HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_RUN)
METRIC = "N@10"
ALPHA = 0.05
CONFIDENCE = 0.95
# C1: "memorisation scores high" is read as: a rule that recalls the 5 most recent distinct items finds
# most leave-one-out targets (paper: over 90 % on Tmall).
MEMORISATION_THRESHOLD = 0.5
PAPER_TRAINING_RATIO = 100 / 13  # Table 6: MBGen about 100 h, GAMER 13 h, without augmentation

GENERATIVE = ("tiger", "tiger_mb", "mbgen_cid", "mbgen_sid", "gamer_cid", "gamer_sid")
DISCRIMINATIVE = (
    "gru4rec", "sasrec", "bert4rec", "mbgmn", "smbrec", "sasrec_b", "bert4rec_b", "pbat", "mbht", "mbstr",
)  # fmt: skip
# Rule-Based is neither: it learns nothing (Table 2 shows it as the memorisation floor).


@dataclass
class RowValue:
    """One row's headline value on one table and dataset."""

    row: str  # model@variant
    value: float
    queries: int
    low: float  # the 95 % interval
    high: float
    seeds: int


@dataclass
class Judgement:
    """A claim's verdict on one table and dataset, with what it rests on."""

    claim: str
    table: str
    dataset: str
    verdict: str
    detail: str
    rows: list[RowValue] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)  # one per comparison
    command: str = ""  # the run that fills the gap, for "not run"


class Cells:
    """The stored cells of one results folder and profile, grouped by table, dataset and row."""

    def __init__(self, root: Path, profile: str) -> None:
        self.root, self.profile = root, profile
        self._tables: dict[str, dict[str, dict[str, list[dict]]]] = {}

    def table(self, table: str) -> dict[str, dict[str, list[dict]]]:
        """``{dataset: {row: [cells, one per seed]}}``; data-only tables (no profile) keep every cell."""
        if table not in self._tables:
            grouped: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
            for cell in stored_cells(self.root, table):
                key = cell["cell"]
                if key.get("model") and key.get("profile") != self.profile:
                    continue
                grouped[key["dataset"]][Cell(**key).row_key].append(cell)
            self._tables[table] = grouped
        return self._tables[table]

    def datasets(self, table: str) -> list[str]:
        """The table's own datasets (a claim is "not run" there until they have cells), then any other
        dataset with cells of ``table``."""
        own = list(SPECS[table].datasets)
        return own + sorted(set(self.table(table)) - set(own))

    def runs(self, table: str, dataset: str, row: str, evaluation: str | None = None) -> list[Run] | None:
        """Each seed's per-query values of ``row`` (default: the table's first evaluation), or None."""
        cells = self.table(table).get(dataset, {}).get(row)
        if not cells:
            return None
        key = evaluation or SPECS[table].evaluations[0].key
        runs = [cell["result"].get("evaluations", {}).get(key, {}).get("per_query") for cell in cells]
        return runs if all(run is not None and METRIC in run for run in runs) else None

    def command(self, table: str, dataset: str, rows: Iterable[str]) -> str:
        """The ``gamer-bench run`` that computes ``rows`` (``model@variant`` runs that variant alone)."""
        number = table.split("-")[1]
        kind = "--figure" if table.startswith("figure") else "--table"
        rows = list(dict.fromkeys(rows))
        variants: dict[str, set[str]] = defaultdict(set)  # model -> the table's row keys of it
        for row in SPECS[table].rows:
            variants[row.model].add(row.key)
        # A model all of whose variants are needed is named alone (it runs them all).
        models = ",".join(dict.fromkeys(r.split("@")[0] if variants[r.split("@")[0]] <= set(rows) else r for r in rows))
        parts = [f"gamer-bench run {kind} {number}"]
        if kind_of(SPECS[table]).trains:
            parts += [f"--models {models}", f"--profile {self.profile}"]
        return " ".join(parts + [f"--dataset {dataset}", f"--results-dir {self.root}"])


def not_run(cells: Cells, claim: str, table: str, dataset: str, missing: list[str], **kwargs: Any) -> Judgement:
    """The judgement of a claim whose ``missing`` rows have no stored cell, with the run that fills them."""
    detail = f"no stored {cells.profile} cell for {', '.join(missing)}"
    return Judgement(claim, table, dataset, NOT_RUN, detail, command=cells.command(table, dataset, missing), **kwargs)


def row_value(row: str, runs: list[Run]) -> RowValue:
    values = query_means(runs, METRIC)
    low, high = bootstrap_interval(values, CONFIDENCE)
    return RowValue(row, float(values.mean()), len(values), low, high, len(runs))


def _combined(verdicts: list[str]) -> str:
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return HOLDS if verdicts and all(v == HOLDS for v in verdicts) else INCONCLUSIVE


_FROM_TEST = {"better": HOLDS, "worse": CONTRADICTED, "n.s.": INCONCLUSIVE}


def judge_pairs(
    cells: Cells,
    claim: str,
    table: str,
    dataset: str,
    pairs: list[tuple[str, str]],
    combine: Callable[[list[str]], str] = _combined,
    from_test: dict[str, str] | None = None,
) -> Judgement:
    """``(row, rival)`` comparisons, each claiming that ``row`` scores higher, as one Holm family.

    The comparisons whose two rows are stored are judged; the others are named in the detail with the
    command that runs them ("not run" only when no comparison can be made)."""
    needed = list(dict.fromkeys(r for pair in pairs for r in pair))
    runs = {r: cells.runs(table, dataset, r) for r in needed}
    missing = [r for r in needed if runs[r] is None]
    stored = [r for r in needed if runs[r] is not None]
    complete = [(a, b) for a, b in pairs if runs[a] is not None and runs[b] is not None]
    if not complete:
        return not_run(cells, claim, table, dataset, missing, rows=[row_value(r, runs[r]) for r in stored])
    tests = compare_pairs([(runs[a], runs[b], METRIC) for a, b in complete], ALPHA)
    mapping = from_test or _FROM_TEST
    records = []
    for (a, b), test in zip(complete, tests, strict=True):
        records.append(
            {"row": a, "rival": b, "verdict": mapping[test["verdict"]], "test": test["verdict"]}
            | {k: test[k] for k in ("n", "dropped", "mean_difference", "p_t", "p_wilcoxon")}
        )
    verdict = combine([r["verdict"] for r in records])
    detail = "; ".join(
        f"{r['row']} vs {r['rival']}: {r['mean_difference']:+.4f} {METRIC} ({r['test']}, p_t {r['p_t']:.3g}, "
        f"p_W {r['p_wilcoxon']:.3g}, {r['n']} queries)"
        for r in records
    )
    judgement = Judgement(claim, table, dataset, verdict, detail, [row_value(r, runs[r]) for r in stored], records)
    if missing:
        judgement.detail += f"; judged on {len(complete)} of {len(pairs)} comparisons (not run: {', '.join(missing)})"
        judgement.command = cells.command(table, dataset, missing)
    return judgement


# ---- the claims ---------------------------------------------------------------------------------------------


def judge_c1(cells: Cells) -> list[Judgement]:
    """Figure 2: the memorisation rule's top-5 ratio under leave-one-out, with a Wilson interval."""
    out = []
    for dataset in cells.datasets("figure-2"):
        found = cells.table("figure-2").get(dataset, {}).get("_")
        if not found:
            out.append(
                Judgement("C1", "figure-2", dataset, NOT_RUN, "no stored Figure 2 cell",
                          command=cells.command("figure-2", dataset, []))
            )  # fmt: skip
            continue
        result = found[0]["result"]
        n = int(result["targets"])
        ratios = {(r["variant"], r["k"]): r["ratio"] for r in result["rows"]}
        ratio = ratios[("original", 5)]
        ci = scipy_stats.binomtest(round(ratio * n), n).proportion_ci(CONFIDENCE, method="wilson")
        low, high = float(ci.low), float(ci.high)
        verdict = HOLDS if low > MEMORISATION_THRESHOLD else CONTRADICTED if high < MEMORISATION_THRESHOLD else None
        detail = (
            f"leave-one-out top-5 ratio {ratio:.4f} (95 % Wilson [{low:.4f}, {high:.4f}], {n} targets) against "
            f"{MEMORISATION_THRESHOLD}; processed: {ratios.get(('processed', 5), float('nan')):.4f}"
        )
        rows = [RowValue("rule_based (leave-one-out, k = 5)", ratio, n, low, high, 1)]
        out.append(Judgement("C1", "figure-2", dataset, verdict or INCONCLUSIVE, detail, rows))
    return out


def _best(cells: Cells, table: str, dataset: str, family: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """The family's row with the highest mean N@10 among those stored, and the family's rows not stored."""
    present = {r: cells.runs(table, dataset, r) for r in family}
    values = {r: query_means(runs, METRIC).mean() for r, runs in present.items() if runs is not None}
    missing = [r for r in family if present[r] is None and r in {row.key for row in SPECS[table].rows}]
    return (max(values, key=values.get) if values else None), missing


def judge_c2(cells: Cells) -> list[Judgement]:
    """Tables 2-4: the best generative row against the best discriminative row."""
    out = []
    for table in ("table-2", "table-3", "table-4"):
        for dataset in cells.datasets(table):
            generative, missing_g = _best(cells, table, dataset, GENERATIVE)
            discriminative, missing_d = _best(cells, table, dataset, DISCRIMINATIVE)
            if generative is None or discriminative is None:
                missing = missing_g if generative is None else missing_d
                out.append(
                    Judgement("C2", table, dataset, NOT_RUN, "no stored row of a family: " + ", ".join(missing),
                              command=cells.command(table, dataset, missing))
                )  # fmt: skip
                continue
            judgement = judge_pairs(cells, "C2", table, dataset, [(generative, discriminative)])
            if missing_g or missing_d:
                judgement.detail += f"; best of the rows stored (not run: {', '.join(missing_g + missing_d)})"
                judgement.command = cells.command(table, dataset, missing_g + missing_d)
            out.append(judgement)
    return out


def judge_c3(cells: Cells) -> list[Judgement]:
    pairs = [("gamer_sid@aug0", "qwen3_sid@aug0"), ("gamer_sid@aug4", "qwen3_sid@aug4")]
    return [judge_pairs(cells, "C3", "table-5", d, pairs) for d in cells.datasets("table-5")]


def judge_c4(cells: Cells) -> list[Judgement]:
    pairs = [
        ("qwen3_sid@aug4", "qwen3_sid@aug0"),
        ("gamer_sid@aug4", "gamer_sid@aug0"),
        ("mbgen_sid@aug1", "mbgen_sid@aug0"),
    ]
    return [judge_pairs(cells, "C4", "table-5", d, pairs) for d in cells.datasets("table-5")]


def relative_drops(clean: np.ndarray, perturbed: np.ndarray) -> np.ndarray:
    """``1 - mean(perturbed) / mean(clean)`` along the last axis: how much of a row's N@10 a test-time
    perturbation takes away (``[..., n] -> [...]``)."""
    return 1.0 - perturbed.mean(-1) / clean.mean(-1)


def judge_c5(cells: Cells, resamples: int = 2000) -> list[Judgement]:
    """Table 7: GAMER's relative drop against the smallest of the other rows', per perturbation, with a
    bootstrap interval over queries (the same queries under every perturbation, resampled jointly)."""
    table, gamer = "table-7", "gamer_sid"
    spec = SPECS[table]
    rows = [row.key for row in spec.rows]
    clean, perturbations = spec.evaluations[0].key, [e.key for e in spec.evaluations[1:]]
    out = []
    for dataset in cells.datasets(table):
        runs = {(r, e): cells.runs(table, dataset, r, e) for r in rows for e in [clean, *perturbations]}
        missing = sorted({r for (r, _), v in runs.items() if v is None})
        if missing:
            out.append(not_run(cells, "C5", table, dataset, missing))
            continue
        # One matrix [row, evaluation, query] over the queries every run has.
        evaluations = [clean, *perturbations]
        flat, _ = aligned_groups([runs[(r, e)] for r in rows for e in evaluations], METRIC)
        values = flat.reshape(len(rows), len(evaluations), -1)
        n = values.shape[-1]
        index = np.random.default_rng(0).integers(0, n, size=(resamples, n))
        g, others = rows.index(gamer), [i for i, r in enumerate(rows) if r != gamer]
        if not values[:, 0].mean(-1).all():
            zero = [r for r, v in zip(rows, values[:, 0].mean(-1), strict=True) if v == 0]
            detail = f"{', '.join(zero)} score 0 without dropout: no relative drop to compare"
            out.append(
                Judgement("C5", table, dataset, INCONCLUSIVE, detail, [row_value(r, runs[(r, clean)]) for r in rows])
            )
            continue
        records = []
        for j, perturbation in enumerate(perturbations, start=1):
            drops = relative_drops(values[:, 0], values[:, j])  # [rows]
            sampled = relative_drops(values[:, 0][:, index], values[:, j][:, index])  # [rows, resamples]
            gap = sampled[g] - sampled[others].min(axis=0)
            low, high = np.percentile(gap, [2.5, 97.5])
            verdict = HOLDS if high < 0 else CONTRADICTED if low > 0 else INCONCLUSIVE
            records.append(
                {"perturbation": perturbation, "verdict": verdict, "n": n, "low": float(low),
                 "high": float(high)} | {f"drop {r}": float(d) for r, d in zip(rows, drops, strict=True)}
            )  # fmt: skip
        detail = "; ".join(
            f"{r['perturbation'].split('/')[-1]}: GAMER {r['drop gamer_sid']:.1%} vs best other "
            f"{min(r[f'drop {x}'] for x in rows if x != gamer):.1%} (gap 95 % [{r['low']:+.3f}, {r['high']:+.3f}])"
            for r in records
        )
        judged = [row_value(r, runs[(r, clean)]) for r in rows]
        out.append(Judgement("C5", table, dataset, _combined([r["verdict"] for r in records]), detail, judged, records))
    return out


def judge_c6(cells: Cells) -> list[Judgement]:
    """Table 6: MBGen's training time over GAMER's, without augmentation."""
    table, rows = "table-6", ("mbgen_sid@aug0", "gamer_sid@aug0")
    out = []
    for dataset in cells.datasets(table):
        found = {r: cells.table(table).get(dataset, {}).get(r) for r in rows}
        missing = [r for r, c in found.items() if not c]
        if missing:
            out.append(not_run(cells, "C6", table, dataset, missing))
            continue
        timed = {r: [TrainingCost.stored(c["result"]["row"]).training_s for c in found[r]] for r in rows}
        seconds = {r: float(np.mean(values)) for r, values in timed.items()}
        ratio = seconds["mbgen_sid@aug0"] / seconds["gamer_sid@aug0"]
        verdict = HOLDS if ratio >= PAPER_TRAINING_RATIO else CONTRADICTED
        detail = (
            f"MBGen {seconds['mbgen_sid@aug0']:.0f} s / GAMER {seconds['gamer_sid@aug0']:.0f} s of training = "
            f"{ratio:.1f}x (paper {PAPER_TRAINING_RATIO:.1f}x); one timing per seed, no interval"
        )
        out.append(Judgement("C6", table, dataset, verdict, detail, tests=[{"ratio": ratio} | seconds]))
    return out


def judge_c7(cells: Cells) -> list[Judgement]:
    pairs = [("gamer_sid", "gamer_cid"), ("mbgen_sid", "mbgen_cid")]
    return [judge_pairs(cells, "C7", t, d, pairs) for t in ("table-2", "table-4") for d in cells.datasets(t)]


def _no_gain(verdicts: list[str]) -> str:
    return CONTRADICTED if CONTRADICTED in verdicts else HOLDS


def judge_c8(cells: Cells) -> list[Judgement]:
    """Table 8: each architecture with the session-wise layer against without; a claim of no gain."""
    pairs = [(f"{arch}_session_sid@aug{x}", f"{arch}_sid@aug{x}") for x in (0, 4) for arch in ("qwen3", "gamer")]
    # The row claimed higher is the session-wise one: "better" contradicts, anything else is no gain.
    mapping = {"better": CONTRADICTED, "worse": HOLDS, "n.s.": HOLDS}
    return [judge_pairs(cells, "C8", "table-8", d, pairs, _no_gain, mapping) for d in cells.datasets("table-8")]


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    paper: str  # the paper's evidence, as it printed it
    judge: Callable[[Cells], list[Judgement]]
    tables: tuple[str, ...]  # where its evidence lies: `report` prints its verdict under these


CLAIMS = (
    Claim(
        "C1", "Leave-one-out lets memorisation score high", "Figure 2: top-5 ratio over 0.9 on Tmall", judge_c1,
        ("figure-2",),
    ),
    Claim(
        "C2", "Generative beats discriminative", "Tables 2-4: every generative row above every discriminative one",
        judge_c2, ("table-2", "table-3", "table-4"),
    ),
    Claim(
        "C3", "GAMER beats Qwen3 (cross-level behavior modeling)",
        "Table 5: N@10 0.0782 vs 0.0689 without augmentation, 0.0856 vs 0.0714 with 4x", judge_c3, ("table-5",),
    ),
    Claim(
        "C4", "Augmentation helps every architecture",
        "Table 5: Qwen3 0.0689 -> 0.0714, GAMER 0.0782 -> 0.0856, PBATrans. 0.0673 -> 0.0730 (N@10)", judge_c4,
        ("table-5",),
    ),
    Claim(
        "C5", "GAMER degrades least under test-time dropout",
        "Table 7: GAMER's relative drop is the smallest at every dropout rate", judge_c5, ("table-7",),
    ),
    Claim(
        "C6", "User-level GAMER trains >= 7.7x faster than interaction-level MBGen",
        "Table 6: about 100 h (MBGen) against 13 h (GAMER) on 8 A800 GPUs", judge_c6, ("table-6",),
    ),
    Claim(
        "C7", "SIDs beat CIDs", "Tables 2 and 4: GAMER and MBGen both higher with SIDs", judge_c7,
        ("table-2", "table-4"),
    ),
    Claim(
        "C8", "Session-wise causal attention does not help",
        "Table 8: N@10 lower with the session-wise layer for both architectures but Qwen3 + 4x", judge_c8,
        ("table-8",),
    ),
)  # fmt: skip


def judge_all(root: Path, profile: str = "cpu", claims: Iterable[str] | None = None) -> list[Judgement]:
    cells = Cells(root, profile)
    wanted = set(claims) if claims else None
    return [j for claim in CLAIMS if wanted is None or claim.id in wanted for j in claim.judge(cells)]


def claim_lines(table: str, root: Path, profile: str) -> list[str]:
    """One line per verdict resting on ``table``, for the report's header of that table."""
    cells = Cells(root, profile)
    lines = []
    for claim in CLAIMS:
        if table in claim.tables:
            for j in claim.judge(cells):
                if j.table == table:
                    lines.append(f"Claim {claim.id} ({claim.statement}), {j.dataset}: {j.verdict} (gamer-bench claims)")
    return lines


# ---- rendering ----------------------------------------------------------------------------------------------

_STATEMENTS = {c.id: c for c in CLAIMS}


def _rows_text(judgement: Judgement) -> str:
    return "; ".join(
        f"{r.row} {r.value:.4f} [{r.low:.4f}, {r.high:.4f}] (n={r.queries}"
        + (f", {r.seeds} seeds)" if r.seeds > 1 else ")")
        for r in judgement.rows
    )


def _preamble(profile: str) -> str:
    return (
        f"Judged on the `{profile}` cells. Metric {METRIC}; rows as value [{CONFIDENCE:.0%} bootstrap interval over "
        f"queries] (queries); paired t-test and Wilcoxon signed-rank test, Holm-corrected within a claim's table "
        f"and dataset, significant at {ALPHA} when both agree."
    )


def to_markdown(judgements: list[Judgement], profile: str) -> str:

    def cell(text: str) -> str:
        return markdown_escape(text).replace("\n", " ")

    lines = ["# The paper's claims", "", _preamble(profile), ""]
    by_claim: dict[str, list[Judgement]] = defaultdict(list)
    for j in judgements:
        by_claim[j.claim].append(j)
    for claim_id, group in by_claim.items():
        claim = _STATEMENTS[claim_id]
        lines += [f"## {claim.id}: {cell(claim.statement)}", "", f"Paper: {cell(claim.paper)}", ""]
        lines += ["| Table / dataset | Verdict | Rows | Evidence |", "|---|---|---|---|"]
        for j in group:
            evidence = cell(j.detail) + (f". Run: `{j.command.replace('|', chr(92) + '|')}`" if j.command else "")
            where = f"{cell(j.table)} / {cell(j.dataset)}"
            lines.append(f"| {where} | **{j.verdict}** | {cell(_rows_text(j))} | {evidence} |")
        lines.append("")
    return "\n".join(lines)


def summary(judgements: list[Judgement]) -> dict[str, dict[str, int]]:
    """Per claim, how many (table, dataset) judgements got each verdict."""
    counts: dict[str, dict[str, int]] = {}
    for j in judgements:
        counts.setdefault(j.claim, dict.fromkeys(VERDICTS, 0))[j.verdict] += 1
    return counts


def render(judgements: list[Judgement], fmt: str, profile: str) -> str:
    if fmt == "json":
        payload = {"profile": profile, "metric": METRIC, "alpha": ALPHA, "confidence": CONFIDENCE}
        payload |= {
            "claims": [{"id": c.id, "statement": c.statement, "paper": c.paper, "tables": c.tables} for c in CLAIMS]
        }
        payload |= {"summary": summary(judgements), "judgements": [asdict(j) for j in judgements]}
        return json.dumps(payload, indent=2) + "\n"
    if fmt == "latex":
        return _latex(judgements, profile)
    if fmt == "markdown":
        return to_markdown(judgements, profile)
    raise ValueError(f"unknown format {fmt!r}; use markdown, latex or json")


def _latex(judgements: list[Judgement], profile: str) -> str:

    body = []
    for j in judgements:
        evidence = j.detail + (f". Run: {j.command}" if j.command else "")
        cells = [j.claim, _STATEMENTS[j.claim].statement, f"{j.table} / {j.dataset}", j.verdict, evidence]
        body.append(" & ".join(latex_escape(c) for c in cells) + r" \\")
    return "\n".join(
        [
            r"\begin{longtable}{l p{3.2cm} p{2.4cm} l p{7.5cm}}",
            rf"\caption{{The paper's claims, judged on the {latex_escape(profile)} cells ({latex_escape(METRIC)}).}}\\",
            r"\hline",
            r"Claim & Statement & Table / dataset & Verdict & Evidence \\",
            r"\hline",
            r"\endhead",
            *body,
            r"\hline",
            r"\end{longtable}",
            "",
        ]
    )
