"""``gamer-bench validate-row NAME``: the contract a retrieval row's model meets before its numbers can
stand beside the paper's. A plugin author runs it on their row; every built-in row passes it.

On a small embedded log (or ``--dataset``), at a profile (``smoke`` by default) and a seed, it checks:

1. the registry builds a `protocols.model.Recommender` from the row's profile;
2. ``fit(train, valid)`` returns the model;
3. ``recommend(test, k)`` gives one ranking per query, each at most k distinct catalogue items;
4. the same queries rank the same when asked twice, and the answers never reach the ranking: the test
   queries with other positives rank the same (a model that reads ``queries.positives`` peeks at the
   held-out session);
5. ``describe()`` is JSON, as the stored result's provenance needs;
6. a second fit under the same seed ranks the same (results are reproducible on the CPU).

Each check prints what failed and why; the exit status is 1 when any failed.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from baselines import registry
from protocols.catalog import resolve
from protocols.model import Recommender
from protocols.queries import Queries
from protocols.splits import SessionSplit
from protocols.synthetic import SyntheticConfig, generate

K = 10


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


def _rankings_problem(ranked: Any, queries: Queries, n_items: int, k: int) -> str:
    """Why ``ranked`` is not one ranking per query of at most ``k`` distinct valid items; "" if it is."""
    if len(ranked) != len(queries):
        return f"{len(ranked)} rankings for {len(queries)} queries"
    for q, row in enumerate(ranked):
        row = np.asarray(row)
        if row.ndim != 1 or not np.issubdtype(row.dtype, np.integer):
            return f"query {q}: a ranking must be a 1-D integer array, got dtype {row.dtype} and shape {row.shape}"
        if len(row) > k:
            return f"query {q}: {len(row)} items for k = {k}"
        if len(np.unique(row)) != len(row):
            return f"query {q}: repeats an item: {row.tolist()}"
        if len(row) and (row.min() < 0 or row.max() >= n_items):
            return f"query {q}: item indices must lie in [0, {n_items}), got {row.tolist()}"
    return ""


def _other_positives(queries: Queries, n_items: int, seed: int) -> Queries:
    """``queries`` with each query's positives replaced by as many other items (sorted, unique)."""
    rng = np.random.default_rng(seed)
    counts = np.diff(queries.pos_offsets)
    rows = []
    for q, count in enumerate(counts):
        mine = queries.positives[queries.pos_offsets[q] : queries.pos_offsets[q + 1]]
        others = np.setdiff1d(np.arange(n_items), mine)
        rows.append(np.sort(rng.choice(others, size=min(int(count), len(others)), replace=False)))
    return replace(queries, positives=np.concatenate(rows).astype(queries.positives.dtype))


def _same(a: Any, b: Any) -> str:
    """ "" where two lists of rankings are equal, else the first query where they differ."""
    for q, (x, y) in enumerate(zip(a, b, strict=True)):
        if not np.array_equal(np.asarray(x), np.asarray(y)):
            return f"query {q}: {np.asarray(x).tolist()} vs {np.asarray(y).tolist()}"
    return ""


def validate_row(name: str, profile: str = "smoke", seed: int = 0, dataset: str | None = None) -> list[Check]:
    """Run the contract's checks on row ``name``; a failing check stops the ones that need its result."""
    entry = registry.get(name)
    inter = resolve(dataset).load() if dataset else generate(SyntheticConfig(n_users=60, n_items=300, seed=5))
    split = SessionSplit.from_interactions(inter)
    valid, test = split.queries("valid"), split.queries("test")
    n_items = split.interactions.n_items
    checks: list[Check] = []

    def attempt(check: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        try:
            return True, fn()
        except Exception as error:  # reported as the check's failure, with where it came from
            where = traceback.extract_tb(error.__traceback__)[-1]
            checks.append(Check(check, False, f"{type(error).__name__}: {error} ({where.filename}:{where.lineno})"))
            return False, None

    ok, model = attempt("builds from its profile", lambda: entry.build(profile, seed))
    if not ok:
        return checks
    if not isinstance(model, Recommender):
        kind = type(model).__name__
        checks.append(Check("builds from its profile", False, f"{kind} is not a protocols.model.Recommender"))
        return checks
    checks.append(Check("builds from its profile", True, f"{type(model).__name__}, profile {profile}, seed {seed}"))
    ok, fitted = attempt("fit returns the model", lambda: model.fit(split.train, valid))
    if not ok:
        return checks
    checks.append(Check("fit returns the model", fitted is model, "" if fitted is model else f"returned {fitted!r}"))
    ok, ranked = attempt("rankings: one per query, distinct valid items", lambda: model.recommend(test, K))
    if not ok:
        return checks
    problem = _rankings_problem(ranked, test, n_items, K)
    checks.append(
        Check(
            "rankings: one per query, distinct valid items",
            not problem,
            problem or f"{len(test)} test queries, k = {K}, {n_items} items",
        )
    )
    if problem:
        return checks

    def ranks_as_before(check: str, fn: Callable[[], Any], differ: str, same: str = "") -> bool:
        """The check that ``fn``'s rankings equal the first ones; ``differ`` leads the first difference."""
        ok, other = attempt(check, fn)
        differs = _same(ranked, other) if ok else ""
        if ok:
            checks.append(Check(check, not differs, f"{differ}{differs}" if differs else same))
        return ok and not differs

    # A ranking that changes when asked again says nothing about the answers: check those after it.
    if ranks_as_before("the same queries rank the same twice", lambda: model.recommend(test, K), "again: "):
        other = _other_positives(test, n_items, seed)
        ranks_as_before(
            "the answers never reach the ranking",
            lambda: model.recommend(other, K),
            "with other positives, ",
            "the same rankings with other positives",
        )
    ok, described = attempt("describe() is JSON", lambda: json.dumps(model.describe()))
    if ok:
        checks.append(Check("describe() is JSON", True, f"{len(described)} characters"))
    ranks_as_before(
        "the same seed ranks the same",
        lambda: entry.build(profile, seed).fit(split.train, valid).recommend(test, K),
        "a second fit: ",
    )
    return checks


def main(name: str, profile: str = "smoke", seed: int = 0, dataset: str | None = None) -> int:
    from tabulate import tabulate

    checks = validate_row(name, profile, seed, dataset)
    rows = [["pass" if c.passed else "FAIL", c.name, c.detail] for c in checks]
    print(tabulate(rows, headers=["", "check", "detail"], tablefmt="github"))
    failed = [c for c in checks if not c.passed]
    where = dataset or "a 60-user embedded log"
    if failed:
        print(f"{name}: {len(failed)} of {len(checks)} check(s) failed on {where}")
        return 1
    print(f"{name}: the row meets the contract on {where} ({len(checks)} checks)")
    return 0
