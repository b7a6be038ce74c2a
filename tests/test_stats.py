"""Paired significance tests over per-query values, and the marks they put on report tables."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from helpers import store_cell, store_ranking_cell
from scipy import stats

from benchmark.render import render, to_csv, to_latex, to_markdown
from benchmark.report import documents_for
from benchmark.stats import aligned_query_values, compare_rows, holm, paired_tests
from benchmark.store import Cell
from benchmark.tables import SPECS, TABLE2_METRICS


def test_holm_adjusts_step_down_monotone_and_capped():
    # Sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06 (monotone).
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # 0.5 * 2 = 1.0 and 0.6 * 1 = 0.6 -> raised to 1.0; 0.7 * 2 = 1.4 is capped at 1.
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.7, 0.7]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.04]), [0.04])  # a family of one is not corrected
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])


def test_paired_tests_match_scipy_and_hand_computed_values():
    # Differences 1, 2, 3: mean 2, sample sd 1, t = 2 / (1 / sqrt(3)); every sign positive, so W- = 0 and
    # the exact two-sided p is 2 * (1 / 2**3): one of the 8 sign patterns is as extreme, on each side.
    result = paired_tests([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert result["n"] == 3 and result["mean_difference"] == 2.0
    assert result["t_statistic"] == pytest.approx(2 / (1 / math.sqrt(3)))
    assert result["wilcoxon_statistic"] == 0.0 and result["p_wilcoxon"] == pytest.approx(2 / 2**3)
    assert result["signed_rank_sum"] == 1 + 2 + 3
    a = np.array([0.9, 0.4, 0.7, 0.2, 0.8, 0.5, 0.65, 0.3])
    b = np.array([0.6, 0.5, 0.3, 0.1, 0.85, 0.2, 0.6, 0.05])
    result = paired_tests(a, b)
    t, w = stats.ttest_rel(a, b), stats.wilcoxon(a - b)
    assert result["t_statistic"] == pytest.approx(t.statistic) and result["p_t"] == pytest.approx(t.pvalue)
    assert result["wilcoxon_statistic"] == pytest.approx(w.statistic) and result["p_wilcoxon"] == pytest.approx(
        w.pvalue
    )
    assert result["mean_difference"] == pytest.approx((a - b).mean())


def test_paired_tests_on_equal_arrays_give_p_one_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_tests([0.0, 1.0, 0.5, 0.5], [0.0, 1.0, 0.5, 0.5])
        single = paired_tests([1.0], [0.0])  # one pair: the t-test is undefined, so never significant
    assert (result["p_t"], result["p_wilcoxon"], result["mean_difference"]) == (1.0, 1.0, 0.0)
    assert single["p_t"] == 1.0 and math.isnan(single["t_statistic"])
    with pytest.raises(ValueError, match="one length"):
        paired_tests([1.0, 2.0], [1.0])


def _run(values: np.ndarray, users: np.ndarray | None = None, metric: str = "N@10") -> dict:
    users = np.arange(len(values)) if users is None else users
    return {"user": users, "behavior": np.zeros(len(values), dtype=np.int64), metric: values}


def test_a_clear_gain_is_better_a_clear_loss_worse_and_a_tiny_difference_not_significant():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0.0, 0.6, 50)
    per_query = {
        "base": _run(baseline),
        "gain": _run(baseline + 0.2 + rng.normal(0, 0.05, 50)),
        "loss": _run(baseline - 0.2 + rng.normal(0, 0.05, 50)),
        "tiny": _run(baseline + 0.001 + rng.normal(0, 0.05, 50)),
    }
    result = compare_rows(per_query, "base", ["N@10"], rows=["gain", "loss", "tiny"])
    assert [result[r]["N@10"]["verdict"] for r in ("gain", "loss", "tiny")] == ["better", "worse", "n.s."]
    # The family is the three comparisons: each test's p-values are Holm-corrected together.
    raw_t = [result[r]["N@10"]["p_t_raw"] for r in ("gain", "loss", "tiny")]
    np.testing.assert_allclose([result[r]["N@10"]["p_t"] for r in ("gain", "loss", "tiny")], holm(raw_t))
    assert result["gain"]["N@10"]["n"] == 50 and result["gain"]["N@10"]["dropped"] == 0
    assert result["gain"]["N@10"]["mean_difference"] == pytest.approx(0.2, abs=0.03)
    # Without `rows`, every row but the baseline is compared.
    assert set(compare_rows(per_query, {"N@10": "base"}, ["N@10"])) == {"gain", "loss", "tiny"}
    # Runs without "user" and "behavior" are paired by position.
    by_position = {row: {"N@10": run["N@10"]} for row, run in per_query.items()}
    assert compare_rows(by_position, "base", ["N@10"], rows=["gain"])["gain"]["N@10"]["verdict"] == "better"


def test_significance_needs_both_tests():
    # Differences: 19 of +0.01 and one of -1: the signed ranks lean clearly positive (Wilcoxon p < 0.05),
    # while the mean difference is (19 * 0.01 - 1) / 20 = -0.0405, far from significant for the t-test.
    baseline = np.linspace(0.1, 0.9, 20)
    row = baseline + np.r_[np.full(19, 0.01), -1.0]
    raw = paired_tests(row, baseline)
    assert raw["p_wilcoxon"] < 0.05 < raw["p_t"]
    result = compare_rows({"base": _run(baseline), "row": _run(row)}, "base", ["N@10"])
    assert result["row"]["N@10"]["verdict"] == "n.s."


def test_queries_are_paired_by_user_and_behavior_and_averaged_over_seeds():
    # Row, seed 0: (user 1, behavior 0) = 0.5, (2, 0) = 1.0, (1, 1) = 0.0, (9, 0) = 1.0 (in no other run).
    row_seed0 = {"user": [1, 2, 1, 9], "behavior": [0, 0, 1, 0], "HR@10": [0.5, 1.0, 0.0, 1.0]}
    row_seed1 = {"user": [1, 1, 2], "behavior": [1, 0, 0], "HR@10": [1.0, 0.0, 1.0]}  # reordered
    baseline = {"user": [2, 1, 1], "behavior": [0, 1, 0], "HR@10": [0.0, 0.25, 0.75]}  # reordered
    row, base, dropped = aligned_query_values([row_seed0, row_seed1], [baseline], "HR@10")
    # Ordered by (user, behavior): (1, 0), (1, 1), (2, 0); the row's values are means over its two seeds.
    np.testing.assert_allclose(row, [(0.5 + 0.0) / 2, (0.0 + 1.0) / 2, (1.0 + 1.0) / 2])
    np.testing.assert_allclose(base, [0.75, 0.25, 0.0])
    assert dropped == 1  # (9, 0)
    with pytest.raises(ValueError, match="same \\(user, behavior\\)"):
        aligned_query_values([{"user": [1, 1], "behavior": [0, 0], "HR@10": [0.0, 1.0]}], [baseline], "HR@10")


# ---- end to end: stored cells -> marked report -------------------------------------------------------------


def _ours(line_label: str, text: str) -> str:
    return next(line for line in text.splitlines() if line_label in line and "ours (" in line)


def test_report_marks_best_best_baseline_and_significance(tmp_path):
    rng = np.random.default_rng(1)
    n = 40
    users = np.arange(n)
    baseline = {column: rng.uniform(0.0, 0.6, n) for column in TABLE2_METRICS}
    for seed in (0, 1):
        sasrec = {column: values + rng.normal(0, 0.01, n) for column, values in baseline.items()}
        # GAMER: clearly better on every column but R@1, where it is clearly worse.
        gamer = {c: v + (-0.2 if c == "R@1" else 0.2) + rng.normal(0, 0.02, n) for c, v in baseline.items()}
        keep = users if seed == 0 else users[1:]  # seed 1 lost user 0's query: it is dropped from the pairing
        store_ranking_cell(tmp_path, "sasrec", seed, sasrec, users)
        store_ranking_cell(tmp_path, "gamer_sid", seed, {c: v[keep] for c, v in gamer.items()}, keep)

    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    rows = {row["model"]: row for row in doc.rows}
    gamer_marks, sasrec_marks = rows["gamer_sid"]["marks"], rows["sasrec"]["marks"]
    assert gamer_marks["N@10"]["bold"] and not gamer_marks["N@10"]["underline"]
    assert gamer_marks["N@10"]["vs_best_baseline"] == "better" and gamer_marks["N@10"]["best_baseline"] == "sasrec"
    assert gamer_marks["N@10"]["queries"] == n - 1 and gamer_marks["N@10"]["dropped"] == 1
    assert gamer_marks["R@1"]["vs_best_baseline"] == "worse" and not gamer_marks["R@1"]["bold"]
    assert sasrec_marks["N@10"] == {"bold": False, "underline": True}
    assert sasrec_marks["R@1"] == {"bold": True, "underline": True}
    assert "marks" not in rows["rule_based"]  # not run

    def cell(row: dict, column: str) -> str:
        return f"{row[column]:.4f} ± {row[column + ' std']:.4f}"

    markdown = to_markdown(doc)
    assert any(line.startswith("- Marks on our rows") and "Holm" in line for line in markdown.splitlines())
    gamer_line, sasrec_line = _ours("GAMER (SID)", markdown), _ours("SASRec ", markdown)
    assert f"**{cell(rows['gamer_sid'], 'N@10')}**▲" in gamer_line
    assert f"{cell(rows['gamer_sid'], 'R@1')}▼" in gamer_line
    assert f"<u>{cell(rows['sasrec'], 'N@10')}</u>" in sasrec_line
    assert f"<u>**{cell(rows['sasrec'], 'R@1')}**</u>" in sasrec_line
    paper_lines = [line for line in markdown.splitlines() if "paper (" in line]
    assert paper_lines and not any(mark in line for line in paper_lines for mark in ("**", "<u>", "▲", "▼"))
    assert "**" not in _ours("Rule-Based", markdown)

    latex = to_latex(doc)
    assert latex.splitlines()[0] == r"% requires \usepackage{booktabs,amssymb}"
    assert r"\textbf{" + cell(rows["gamer_sid"], "N@10").replace("±", r"$\pm$") + r"}$^{\blacktriangle}$" in latex
    assert r"\underline{\textbf{" in latex and r"$^{\blacktriangledown}$" in latex
    assert "▲" not in latex and "▼" not in latex and "**" not in latex

    csv_lines = to_csv(doc).splitlines()
    assert csv_lines[0].endswith(",marks")
    gamer_csv = next(line for line in csv_lines if "GAMER (SID)" in line)
    assert "N@10=bold+better" in gamer_csv and "R@1=worse" in gamer_csv and "**" not in gamer_csv
    assert json.loads(render([doc], "json"))["rows"][-1]["marks"]["N@10"]["vs_best_baseline"] == "better"


def test_rows_without_per_query_values_get_bold_and_underline_only(tmp_path):
    for model, auroc in (("dlrm", 0.70), ("gamer_rank", 0.75)):
        evaluation = {"metrics": {"AUROC": auroc}, "queries": 10}
        result = {"dataset_name": "tiny", "metrics": evaluation["metrics"], "queries": 10}
        result["evaluations"] = {"conversion": evaluation}
        store_cell(tmp_path, Cell("table-10", "tiny", model, "smoke", 0), result)
    (doc,) = documents_for(SPECS["table-10"], tmp_path)
    rows = {row["model"]: row for row in doc.rows}
    assert rows["gamer_rank"]["marks"] == {"AUROC": {"bold": True, "underline": False}}
    assert rows["dlrm"]["marks"] == {"AUROC": {"bold": False, "underline": True}}
    assert doc.header[-1].endswith("no GAMER row with per-query values, so no significance tests")
    assert "**0.7500**" in to_markdown(doc) and r"\underline{0.7000}" in to_latex(doc)


def test_a_lone_row_is_left_unmarked(tmp_path):
    users = np.arange(5)
    store_ranking_cell(tmp_path, "sasrec", 0, {c: np.full(5, 0.5) for c in TABLE2_METRICS}, users)
    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    assert not any("marks" in row for row in doc.rows)
    assert not any(line.startswith("Marks") for line in doc.header)
