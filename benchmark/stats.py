"""Paired significance tests of one table row against a baseline row, over per-query metric values.

A query is identified by ``(user, behavior)`` within one evaluation: the same user asked for the
same behavior is the same test case for every model, so two rows are paired on those keys, not
on the order their runs stored them in. With several seeds, a query's value is its mean over the
row's seeds, and only queries present in every seed of both rows are paired; the others are
counted (``dropped``) rather than silently ignored.

Each comparison runs two two-sided tests, the paired t-test (mean difference) and the Wilcoxon
signed-rank test (signed ranks of the differences); `compare_rows` Holm-corrects each over the
family of comparisons it is given and calls a difference significant only when both agree.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

# One run's per-query values as `benchmark.runner` stores them: "user" and "behavior" identify the
# queries, every other key is a metric with one value per query. Without "user" and "behavior" the
# queries are identified by their position.
Run = Mapping[str, Sequence[Any] | np.ndarray]
Pair = tuple[Sequence[Run], Sequence[Run], str]  # (a row's runs, its baseline's runs, the metric)
# Differences spread over less than this are one constant up to float rounding (stored per-query
# values have six decimals, so real spreads are far larger).
_CONSTANT_SPREAD = 1e-12


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the order given.

    With the m p-values sorted ascending, p_(1) <= ... <= p_(m):

        p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))

    The running maximum makes the adjustment step-down and monotone: a hypothesis is rejected at
    level alpha exactly when ``p~ < alpha``, which controls the family-wise error rate at alpha.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"holm takes a flat sequence of p-values, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def paired_tests(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Two-sided paired t-test and Wilcoxon signed-rank test of ``a`` against ``b`` (aligned, ``[n]``).

    Returns ``n``, ``mean_difference`` (mean of a - b), ``t_statistic`` and ``p_t``
    (`scipy.stats.ttest_rel`), ``wilcoxon_statistic`` and ``p_wilcoxon`` (`scipy.stats.wilcoxon`,
    zero differences dropped as Wilcoxon proposed), and ``signed_rank_sum`` = W+ - W-, the sign of
    which says in which direction the signed-rank test leans (scipy's two-sided statistic,
    min(W+, W-), does not).

    Where a test has nothing to test its p-value is 1, never significant: when every difference is
    zero (both tests; statistics 0), and for the t-test with fewer than two pairs (statistic NaN).
    When the differences are one nonzero constant the t statistic is infinite and ``p_t`` is 0, the
    limit scipy gives; the Wilcoxon test still needs enough pairs to reject.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two flat arrays of one length, got shapes {a.shape} and {b.shape}")
    difference = a - b
    n = len(difference)
    result: dict[str, float | int] = {"n": n, "mean_difference": float(difference.mean()) if n else 0.0}
    nonzero = difference[difference != 0]
    if len(nonzero) == 0:
        return result | {
            "t_statistic": 0.0,
            "p_t": 1.0,
            "wilcoxon_statistic": 0.0,
            "p_wilcoxon": 1.0,
            "signed_rank_sum": 0.0,
        }
    if n < 2:
        result |= {"t_statistic": float("nan"), "p_t": 1.0}
    elif np.ptp(difference) <= _CONSTANT_SPREAD:  # scipy's limit, without its precision-loss warnings
        result |= {"t_statistic": float(np.sign(difference[0]) * np.inf), "p_t": 0.0}
    else:
        t = stats.ttest_rel(a, b)
        result |= {"t_statistic": float(t.statistic), "p_t": float(t.pvalue)}
    w = stats.wilcoxon(difference)
    signed_ranks = np.sign(nonzero) * stats.rankdata(np.abs(nonzero))
    return result | {
        "wilcoxon_statistic": float(w.statistic),
        "p_wilcoxon": float(w.pvalue),
        "signed_rank_sum": float(signed_ranks.sum()),
    }


def _query_keys(run: Run, metric: str) -> np.ndarray:
    """``[n, 2]`` query identifiers of a run: (user, behavior), or (position, 0) where it has neither."""
    n = len(run[metric])
    if "user" not in run or "behavior" not in run:
        return np.column_stack([np.arange(n), np.zeros(n, dtype=np.int64)])
    user, behavior = np.asarray(run["user"]), np.asarray(run["behavior"])
    if not len(user) == len(behavior) == n:
        raise ValueError(
            f"a run has {len(user)} users, {len(behavior)} behaviors and {n} values of {metric}; store one per query"
        )
    keys = np.column_stack([user, behavior])
    if len(np.unique(keys, axis=0)) != n:
        raise ValueError(
            "a run holds two queries with the same (user, behavior): per-query values cannot be paired; "
            "store one query per user and behavior in each evaluation"
        )
    return keys


def aligned_query_values(
    row_runs: Sequence[Run], baseline_runs: Sequence[Run], metric: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Paired per-query values of ``metric`` for a row and a baseline, each averaged over its runs (seeds).

    Returns ``(row, baseline, dropped)``: ``[n]`` arrays over the queries present in every run of
    both, ordered by (user, behavior), and how many other distinct queries some run had.
    """
    if not row_runs or not baseline_runs:
        raise ValueError("aligned_query_values needs at least one run of the row and one of the baseline")
    (row, baseline), dropped = aligned_groups([row_runs, baseline_runs], metric)
    return row, baseline, dropped


def aligned_groups(groups: Sequence[Sequence[Run]], metric: str) -> tuple[np.ndarray, int]:
    """``[len(groups), n]``: each group's per-query values of ``metric`` averaged over its runs, over the
    queries present in every run of every group, ordered by (user, behavior); and how many other
    distinct queries some run had. A group is a row's runs (its seeds), or one evaluation of a row."""
    runs = [run for group in groups for run in group]
    if len({"user" in run and "behavior" in run for run in runs}) > 1:
        raise ValueError("some runs identify queries by (user, behavior) and some by position: store both keys in all")
    keys = [_query_keys(run, metric) for run in runs]
    lengths = [len(k) for k in keys]
    _, code = np.unique(np.concatenate(keys), axis=0, return_inverse=True)
    code = code.reshape(-1)
    n_distinct = int(code.max()) + 1 if len(code) else 0
    run_of = np.repeat(np.arange(len(runs)), lengths)
    present = np.zeros((len(runs), n_distinct), dtype=bool)
    present[run_of, code] = True
    values = np.zeros((len(runs), n_distinct))
    values[run_of, code] = np.concatenate([np.asarray(run[metric], dtype=float) for run in runs])
    common = present.all(axis=0)
    bounds = np.cumsum([0] + [len(group) for group in groups])
    means = np.stack([values[a:b, common].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    return means, n_distinct - int(common.sum())


def _as_runs(value: Run | Sequence[Run]) -> list[Run]:
    return [value] if isinstance(value, Mapping) else list(value)


def compare_rows(
    per_query: Mapping[Hashable, Run | Sequence[Run]],
    baseline_key: Hashable | Mapping[str, Hashable],
    metrics: Iterable[str],
    alpha: float = 0.05,
    rows: Iterable[Hashable] | None = None,
) -> dict[Hashable, dict[str, dict[str, Any]]]:
    """Each row against a baseline on each metric, with Holm-corrected paired tests.

    ``per_query`` maps a row key to its per-query values: one run (``{"user": [...], "behavior":
    [...], "HR@10": [...], ...}``) or a list of runs, one per seed (see `aligned_query_values`).
    ``baseline_key`` names the baseline row, one for every metric or one per metric
    (``{"HR@10": key, ...}``, e.g. the best baseline of each column). ``rows`` are the rows compared
    (default: every row but the metric's baseline).

    The family is every (row, metric) comparison of this call: the t-test p-values are
    Holm-corrected together over it, and so are the Wilcoxon ones. The verdict is "better" or
    "worse" only when both corrected p-values are below ``alpha`` and both tests lean the same way
    (mean difference and W+ - W-), else "n.s." Requiring both tests is the conservative choice
    (ranx lets one pick one test): the t-test's normality is doubtful on 0/1 hit values, and the
    signed-rank test ignores how large the differences are.

    Returns ``{row: {metric: {...}}}`` with ``baseline``, ``n`` (paired queries), ``dropped``,
    ``mean_difference`` (row - baseline), the statistics, raw ``p_t_raw`` / ``p_wilcoxon_raw``,
    corrected ``p_t`` / ``p_wilcoxon`` and ``verdict``.
    """
    metrics = list(metrics)
    baselines = dict(baseline_key) if isinstance(baseline_key, Mapping) else dict.fromkeys(metrics, baseline_key)
    missing = [m for m in metrics if baselines.get(m) not in per_query]
    if missing:
        raise ValueError(f"no per-query values for the baseline of {missing}; baselines given: {baselines}")
    chosen = list(per_query) if rows is None else list(rows)
    unknown = [r for r in chosen if r not in per_query]
    if unknown:
        raise ValueError(f"rows {unknown} have no per-query values; rows with some: {list(per_query)}")
    keys: list[tuple[Hashable, str]] = []
    pairs: list[Pair] = []
    for row in chosen:
        for metric in metrics:
            if row == baselines[metric]:
                continue
            keys.append((row, metric))
            pairs.append((_as_runs(per_query[row]), _as_runs(per_query[baselines[metric]]), metric))
    result: dict[Hashable, dict[str, dict[str, Any]]] = {}
    for (row, metric), c in zip(keys, compare_pairs(pairs, alpha), strict=True):
        result.setdefault(row, {})[metric] = {"baseline": baselines[metric]} | c
    return result


def compare_pairs(pairs: Sequence[Pair], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Paired tests of ``(row runs, baseline runs, metric)`` comparisons, Holm-corrected as one family.

    Each result has ``n``, ``dropped``, ``mean_difference`` (row - baseline), the statistics of
    `paired_tests`, raw ``p_t_raw`` / ``p_wilcoxon_raw``, corrected ``p_t`` / ``p_wilcoxon`` (each test
    corrected over the family) and ``verdict``: "better" or "worse" only when both corrected p-values
    are below ``alpha`` and both tests lean the same way, else "n.s." (see `compare_rows`).
    """
    comparisons = []
    for row_runs, baseline_runs, metric in pairs:
        a, b, dropped = aligned_query_values(row_runs, baseline_runs, metric)
        comparisons.append({"dropped": dropped} | paired_tests(a, b))
    p_t = holm([c["p_t"] for c in comparisons])
    p_wilcoxon = holm([c["p_wilcoxon"] for c in comparisons])
    for c, corrected_t, corrected_w in zip(comparisons, p_t, p_wilcoxon, strict=True):
        c["p_t_raw"], c["p_wilcoxon_raw"] = c["p_t"], c["p_wilcoxon"]
        c["p_t"], c["p_wilcoxon"] = float(corrected_t), float(corrected_w)
        significant = c["p_t"] < alpha and c["p_wilcoxon"] < alpha
        direction = np.sign(c["mean_difference"])
        agree = direction == np.sign(c["signed_rank_sum"]) and direction != 0
        c["verdict"] = ("better" if direction > 0 else "worse") if significant and agree else "n.s."
    return comparisons


def query_means(runs: Sequence[Run], metric: str) -> np.ndarray:
    """``[n]`` per-query values of ``metric`` averaged over a row's runs (seeds), over the queries every
    run has, ordered by (user, behavior): the values a row's mean and interval are computed from."""
    return aligned_groups([runs], metric)[0][0]


def bootstrap_interval(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one per query).

    ``resamples`` samples of n queries are drawn with replacement (numpy's PCG64 under ``seed``, so an
    interval is reproducible), and the interval is the (1 - confidence) / 2 and (1 + confidence) / 2
    percentiles of their means (Efron & Tibshirani 1993, ch. 13). The queries are the unit resampled:
    they are the independent draws; seeds are averaged per query before (`query_means`).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"bootstrap_interval takes a non-empty flat sequence of values, got shape {x.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    index = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    means = x[index].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
