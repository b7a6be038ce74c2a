"""The evaluation tasks of Section 4.1.3 and the test-time perturbations of Table 7 (Appendix B).

- *target-behavior item prediction* (Tables 2, 3, 5, 7, 8): users whose last session holds the
  target behavior; positives = the items done with the target behavior in that session.
- *behavior-specific item prediction* (Table 4): for each behavior b, users whose last session
  holds b; positives = the items done with b there. The merged row is the mean over all these
  queries, which is the per-behavior average weighted by the number of evaluated users, as the
  authors' code reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from protocols.queries import Queries, ragged_rows
from protocols.splits import Part, SessionSplit


class Task(str, Enum):
    TARGET_BEHAVIOR = "target-behavior"
    BEHAVIOR_SPECIFIC = "behavior-specific"

    def levels(self, split: SessionSplit) -> list[int]:
        schema = split.interactions.schema
        if self is Task.TARGET_BEHAVIOR:
            return [schema.target_level]
        return list(range(len(schema.behaviors)))

    def queries(self, split: SessionSplit, part: Part) -> Queries:
        return split.queries(part, self.levels(split))


@dataclass(frozen=True)
class PerturbationReport:
    """What a test-time perturbation removed: histories are thinned, queries may be skipped."""

    name: str
    history_removed: int
    queries_skipped: int

    def __str__(self) -> str:
        return (
            f"{self.name}: removed {self.history_removed} history interactions, "
            f"skipped {self.queries_skipped} queries left with an empty history"
        )


def drop_lower_behaviors(
    queries: Queries, rate: float, *, target_level: int, seed: int
) -> tuple[Queries, PerturbationReport]:
    """Test-time dropout of Table 7: behavior b of level L_b (lowest = 1) loses floor(n_b * r / L_b).

    n_b counts query q's history interactions with behavior b; which ones go is drawn from ``seed``.
    The target behavior never loses anything. With r = 1 every lowest-level interaction goes and
    half of level 2, as in the authors' code (their "dropout 1.0"). floor(), as in that code.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop rate must be in [0, 1], got {rate}")
    rows = ragged_rows(queries.offsets)
    level = queries.hist_behavior.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(rows)), level, rows))  # random order inside each (query, behavior)
    group = rows[order] * (target_level + 1) + level[order]
    starts = np.flatnonzero(np.diff(group, prepend=-1) != 0)
    sizes = np.diff(np.append(starts, len(group)))
    rank = np.arange(len(group)) - np.repeat(starts, sizes)
    lvl = level[order]
    quota = np.floor(np.repeat(sizes, sizes) * rate / (lvl + 1)).astype(np.int64)
    drop_sorted = (rank < quota) & (lvl < target_level)
    drop = np.zeros(len(rows), dtype=bool)
    drop[order] = drop_sorted
    thinned = queries.drop_history(drop)
    return thinned, PerturbationReport(f"drop rate {rate:g}", int(drop.sum()), 0)


def drop_session_items(
    split: SessionSplit, queries: Queries, part: Part = "test"
) -> tuple[Queries, PerturbationReport]:
    """The ``gt`` row of Table 7: history interactions on any item of the evaluated session go,
    except target-behavior ones. Queries whose whole history goes are skipped (and counted).
    """
    inter = split.interactions
    rows = split.session_rows(part)
    session_keys = np.unique(inter.user[rows] * inter.n_items + inter.item[rows])
    hist_user = queries.user[ragged_rows(queries.offsets)]
    hit = np.isin(hist_user * inter.n_items + queries.item, session_keys)
    drop = hit & (queries.hist_behavior != inter.schema.target_level)
    thinned = queries.drop_history(drop)
    nonempty = thinned.history_lengths > 0
    kept = thinned.select(nonempty)
    return kept, PerturbationReport("gt", int(drop.sum()), int((~nonempty).sum()))
