"""`gamer-bench claims`: each verdict on hand-made cells, the bootstrap interval, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import store_cell, store_ranking_cell

from benchmark import claims
from benchmark.claims import CONTRADICTED, HOLDS, INCONCLUSIVE, NOT_RUN, Cells, judge_all
from benchmark.cli import main
from benchmark.kinds.cost import TrainingCost
from benchmark.stats import bootstrap_interval
from benchmark.store import Cell

USERS = np.arange(200)


def hits(rate: float, seed: int) -> np.ndarray:
    """Per-query N@10-like values: 1 with probability ``rate``."""
    return (np.random.default_rng(seed).random(len(USERS)) < rate).astype(float)


def store(root, model: str, values: np.ndarray, **kwargs) -> None:
    store_ranking_cell(root, model, 0, {"N@10": values}, USERS, profile="cpu", **kwargs)


def only(judgements, table: str = "table-2"):
    (found,) = [j for j in judgements if j.table == table]
    return found


# ---- the verdicts of a two-pair claim (C7: SIDs beat CIDs), one per outcome ----------------------------------


@pytest.mark.parametrize(
    ("gamer_sid", "mbgen_sid", "verdict"),
    [
        (0.6, 0.6, HOLDS),  # both SID rows far above their CID rows (0.2)
        (0.6, 0.02, CONTRADICTED),  # MBGen's SID row far below its CID row
        (None, None, INCONCLUSIVE),  # SID rows are their CID rows plus noise that cancels
    ],
)
def test_sid_claim_on_hand_made_cells(tmp_path, gamer_sid, mbgen_sid, verdict) -> None:
    base = hits(0.2, 1)
    store(tmp_path, "gamer_cid", base)
    store(tmp_path, "mbgen_cid", hits(0.2, 2))
    if gamer_sid is None:  # the same hits in another order: no paired difference to find
        store(tmp_path, "gamer_sid", np.roll(base, 1))
        store(tmp_path, "mbgen_sid", np.roll(hits(0.2, 2), 1))
    else:
        store(tmp_path, "gamer_sid", hits(gamer_sid, 3))
        store(tmp_path, "mbgen_sid", hits(mbgen_sid, 4))
    judgement = only(claims.judge_c7(Cells(tmp_path, "cpu")))
    assert judgement.verdict == verdict
    assert [t["row"] for t in judgement.tests] == ["gamer_sid", "mbgen_sid"]
    assert all(t["n"] == len(USERS) for t in judgement.tests)
    assert {r.row: r.queries for r in judgement.rows} == dict.fromkeys(
        ["gamer_sid", "gamer_cid", "mbgen_sid", "mbgen_cid"], len(USERS)
    )


def test_a_missing_row_is_not_run_with_the_command_that_runs_it(tmp_path) -> None:
    store(tmp_path, "gamer_sid", hits(0.6, 3))
    store(tmp_path, "mbgen_sid", hits(0.6, 4))
    judgement = only(claims.judge_c7(Cells(tmp_path, "cpu")))
    assert judgement.verdict == NOT_RUN and "gamer_cid, mbgen_cid" in judgement.detail
    assert judgement.command == (
        f"gamer-bench run --table 2 --models gamer_cid,mbgen_cid --profile cpu --dataset synthetic "
        f"--results-dir {tmp_path}"
    )


@pytest.mark.parametrize(("gamer_sid", "verdict"), [(0.6, HOLDS), (0.02, CONTRADICTED)])
def test_the_comparisons_that_can_be_made_are_judged_and_the_rest_named(tmp_path, gamer_sid, verdict) -> None:
    """GAMER's pair stored, MBGen's CID row not: the verdict rests on GAMER's pair and says so."""
    store(tmp_path, "gamer_sid", hits(gamer_sid, 3))
    store(tmp_path, "gamer_cid", hits(0.2, 1))
    store(tmp_path, "mbgen_sid", hits(0.6, 4))
    judgement = only(claims.judge_c7(Cells(tmp_path, "cpu")))
    assert judgement.verdict == verdict
    assert [t["row"] for t in judgement.tests] == ["gamer_sid"]
    assert judgement.detail.endswith("judged on 1 of 2 comparisons (not run: mbgen_cid)")
    assert judgement.command == (
        f"gamer-bench run --table 2 --models mbgen_cid --profile cpu --dataset synthetic --results-dir {tmp_path}"
    )
    assert [r.row for r in judgement.rows] == ["gamer_sid", "gamer_cid", "mbgen_sid"]


def test_cells_of_another_profile_are_not_judged(tmp_path) -> None:
    store_ranking_cell(tmp_path, "gamer_sid", 0, {"N@10": hits(0.6, 3)}, USERS, profile="smoke")
    store_ranking_cell(tmp_path, "gamer_cid", 0, {"N@10": hits(0.2, 1)}, USERS, profile="smoke")
    assert all(j.verdict == NOT_RUN for j in claims.judge_c7(Cells(tmp_path, "cpu")))


def test_generative_against_discriminative_takes_the_best_of_each_family(tmp_path) -> None:
    store(tmp_path, "rule_based", hits(0.9, 0))  # neither family: never the discriminative champion
    store(tmp_path, "sasrec", hits(0.3, 1))
    store(tmp_path, "gru4rec", hits(0.1, 2))
    store(tmp_path, "tiger", hits(0.05, 3))
    store(tmp_path, "gamer_sid", hits(0.1, 4))
    judgement = only(claims.judge_c2(Cells(tmp_path, "cpu")))
    assert judgement.verdict == CONTRADICTED
    assert (judgement.tests[0]["row"], judgement.tests[0]["rival"]) == ("gamer_sid", "sasrec")
    assert "not run: " in judgement.detail and "--models " in judgement.command  # the other rows


def test_session_wise_is_a_claim_of_no_gain(tmp_path) -> None:
    """C8 is contradicted only by a significant gain of the session-wise layer; no difference holds."""
    for x in (0, 4):
        for arch in ("qwen3", "gamer"):
            plain = hits(0.3, x + len(arch))
            store(tmp_path, f"{arch}_sid", plain, table="table-8", variant=f"aug{x}")
            store(tmp_path, f"{arch}_session_sid", np.roll(plain, 1), table="table-8", variant=f"aug{x}")
    assert only(claims.judge_c8(Cells(tmp_path, "cpu")), "table-8").verdict == HOLDS
    store(tmp_path, "gamer_session_sid", hits(0.9, 9), table="table-8", variant="aug4")
    assert only(claims.judge_c8(Cells(tmp_path, "cpu")), "table-8").verdict == CONTRADICTED


# ---- C1 (a proportion), C5 (relative drops), C6 (a ratio of timings) -----------------------------------------


@pytest.mark.parametrize(("ratio", "verdict"), [(0.8, HOLDS), (0.3, CONTRADICTED), (0.5, INCONCLUSIVE)])
def test_memorisation_claim_reads_the_top5_ratio_with_a_wilson_interval(tmp_path, ratio, verdict) -> None:
    rows = [{"dataset": "synthetic", "variant": v, "k": 5, "ratio": ratio} for v in ("original", "processed")]
    store_cell(tmp_path, Cell("figure-2", "synthetic"), {"rows": rows, "targets": 100, "processed_removed": 3})
    (judgement,) = [j for j in claims.judge_c1(Cells(tmp_path, "cpu")) if j.dataset == "synthetic"]
    assert judgement.verdict == verdict
    low, high = judgement.rows[0].low, judgement.rows[0].high
    assert low < ratio < high and high - low < 0.2  # Wilson, n = 100: about +-0.09


def store_table7(root, drops: dict[str, float]) -> None:
    """Table 7 cells in which each row loses ``drops[row]`` of its hits under every perturbation."""
    spec = claims.SPECS["table-7"]
    clean, perturbations = spec.evaluations[0].key, [e.key for e in spec.evaluations[1:]]
    for i, (model, drop) in enumerate(drops.items()):
        values = hits(0.5, i)
        kept = values * (np.random.default_rng(10 + i).random(len(USERS)) >= drop)
        more = {key: {"N@10": kept} for key in perturbations}
        store(root, model, values, table="table-7", evaluation=clean, more=more)


@pytest.mark.parametrize(
    ("gamer", "verdict"), [(0.05, HOLDS), (0.9, CONTRADICTED), (0.5, INCONCLUSIVE)]
)  # the others lose 50 % and 60 %
def test_robustness_claim_compares_relative_drops(tmp_path, gamer, verdict) -> None:
    store_table7(tmp_path, {"tiger_mb": 0.6, "mbgen_sid": 0.5, "gamer_sid": gamer})
    (judgement,) = claims.judge_c5(Cells(tmp_path, "cpu"))
    assert judgement.verdict == verdict
    assert len(judgement.tests) == len(claims.SPECS["table-7"].evaluations) - 1


def test_relative_drop_by_hand() -> None:
    clean, perturbed = np.array([[1.0, 0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0, 0.0]])
    assert claims.relative_drops(clean, perturbed).tolist() == [0.5]  # 0.5 -> 0.25


@pytest.mark.parametrize(("mbgen_s", "verdict"), [(800.0, HOLDS), (300.0, CONTRADICTED)])
def test_training_time_claim_is_the_ratio_against_the_papers(tmp_path, mbgen_s, verdict) -> None:
    for model, seconds in (("mbgen_sid", mbgen_s), ("gamer_sid", 100.0)):
        cell = Cell("table-6", "synthetic", model, "cpu", 0, "aug0")
        row = TrainingCost(
            parameters=10, seconds_per_epoch=seconds / 4, epochs_to_best=3, epochs_run=4, training_s=seconds
        )
        store_cell(tmp_path, cell, {"row": row.as_stored()})
    (judgement,) = claims.judge_c6(Cells(tmp_path, "cpu"))
    assert judgement.verdict == verdict and judgement.tests[0]["ratio"] == mbgen_s / 100.0


# ---- the interval, the renderings, the CLI -------------------------------------------------------------------


def test_bootstrap_interval_equals_a_direct_computation() -> None:
    values = np.random.default_rng(5).random(50)
    index = np.random.default_rng(7).integers(0, 50, size=(300, 50))
    means = sorted(float(np.mean([values[i] for i in row])) for row in index)  # one resample at a time
    # numpy's default percentile interpolates linearly between order statistics
    position = 0.025 * (len(means) - 1)
    low = means[int(position)] + (position % 1) * (means[int(position) + 1] - means[int(position)])
    got = bootstrap_interval(values, 0.95, resamples=300, seed=7)
    assert got[0] == pytest.approx(low, abs=1e-12)
    assert got[0] < values.mean() < got[1]
    assert bootstrap_interval(np.full(9, 0.25)) == (0.25, 0.25)
    big = (np.random.default_rng(1).random(4000) < 0.3).astype(float)  # close to the normal approximation
    half = 1.96 * np.sqrt(big.mean() * (1 - big.mean()) / len(big))
    assert np.allclose(bootstrap_interval(big), (big.mean() - half, big.mean() + half), atol=0.004)


def test_every_claim_is_judged_and_says_not_run_with_a_command_on_an_empty_folder(tmp_path) -> None:
    judgements = judge_all(tmp_path, "cpu")
    assert {j.claim for j in judgements} == {c.id for c in claims.CLAIMS}
    assert all(j.verdict == NOT_RUN and j.command.startswith("gamer-bench run ") for j in judgements)


def test_cli_renders_markdown_json_and_latex(tmp_path, capsys) -> None:
    store(tmp_path, "gamer_sid", hits(0.6, 3))
    store(tmp_path, "gamer_cid", hits(0.2, 1))
    assert main(["claims", "--results-dir", str(tmp_path), "--claims", "C7", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"]["C7"] == {HOLDS: 1, CONTRADICTED: 0, INCONCLUSIVE: 0, NOT_RUN: 1}  # Table 4: no row
    assert main(["claims", "--results-dir", str(tmp_path), "--claims", "C7"]) == 0
    text = capsys.readouterr().out
    assert "## C7: SIDs beat CIDs" in text and "**not run**" in text and "gamer\\_sid 0.6" in text
    assert "judged on 1 of 2 comparisons (not run: mbgen\\_sid, mbgen\\_cid)" in text
    assert main(["claims", "--results-dir", str(tmp_path), "--claims", "C9"]) == 2
    assert "unknown claim(s) C9" in capsys.readouterr().err


def test_claims_latex_compiles(tmp_path, compile_latex) -> None:
    store(tmp_path, "gamer_sid", hits(0.6, 3))
    store(tmp_path, "gamer_cid", hits(0.2, 1))
    compile_latex(claims.render(judge_all(tmp_path, "cpu"), "latex", "cpu"), "longtable")


def test_robustness_claim_is_inconclusive_when_a_row_scores_zero_without_dropout(tmp_path) -> None:
    spec = claims.SPECS["table-7"]
    for model in ("tiger_mb", "mbgen_sid", "gamer_sid"):
        values = np.zeros(len(USERS)) if model == "tiger_mb" else hits(0.5, 1)
        more = {e.key: {"N@10": values} for e in spec.evaluations[1:]}
        store(tmp_path, model, values, table="table-7", evaluation=spec.evaluations[0].key, more=more)
    (judgement,) = claims.judge_c5(Cells(tmp_path, "cpu"))
    assert judgement.verdict == INCONCLUSIVE and judgement.detail.startswith("tiger_mb score 0")
