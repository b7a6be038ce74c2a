"""The evaluation tasks of Section 4.1.3 and the test-time perturbations of Table 7 (Appendix B).

- *target-behavior item prediction* (Tables 2, 3, 5, 7, 8): users whose last session holds the
  target behavior; positives = the items done with the target behavior in that session.
- *behavior-specific item prediction* (Table 4): for each behavior b, users whose last session
  holds b; positives = the items done with b there. The merged row is the mean over all these
  queries, which is the per-behavior average weighted by the number of evaluated users, as the
  authors' code reports it.
- *conversion prediction* (Table 10, Appendix D): on a conversion log (exposure < conversion), the
  probability that each item exposed in the user's last session converts there; scored by AUROC
  (`protocols.conversion`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from protocols.conversion import ConversionQueries, conversion_queries
from protocols.queries import Queries, ragged_rows
from protocols.splits import Part, SessionSplit


class Task(str, Enum):
    TARGET_BEHAVIOR = "target-behavior"
    BEHAVIOR_SPECIFIC = "behavior-specific"
    CONVERSION = "conversion"

    def levels(self, split: SessionSplit) -> list[int]:
        schema = split.interactions.schema
        if self is Task.BEHAVIOR_SPECIFIC:
            return list(range(len(schema.behaviors)))
        return [schema.target_level]

    def queries(self, split: SessionSplit, part: Part) -> Queries | ConversionQueries:
        """The task's queries on ``part``: item-prediction `Queries`, or `ConversionQueries` for conversion."""
        if self is Task.CONVERSION:
            return conversion_queries(split, part)
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


def lower_behavior_drop_mask(
    groups: np.ndarray, levels: np.ndarray, rate: float, *, target_level: int, rng: np.random.Generator
) -> np.ndarray:
    """Which rows to drop so that, inside each group, behavior b of level L_b (lowest = 1) loses
    floor(n_b * rate / L_b) of its rows, drawn at random; the target behavior never loses any.

    The one thinning rule behind both the training-time augmentation of Section 3.3 (a group is a
    user's sequence) and the test-time dropout of Table 7 (a group is a query's history). floor(),
    as in the authors' code: with rate 1 every lowest-level row goes and half of level 2.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop rate must be in [0, 1], got {rate}")
    level = levels.astype(np.int64)
    order = np.lexsort((rng.random(len(groups)), level, groups))  # random order inside each (group, behavior)
    key = groups[order] * (target_level + 1) + level[order]
    starts = np.flatnonzero(np.diff(key, prepend=-1) != 0)
    sizes = np.diff(np.append(starts, len(key)))
    rank = np.arange(len(key)) - np.repeat(starts, sizes)
    sorted_level = level[order]
    quota = np.floor(np.repeat(sizes, sizes) * rate / (sorted_level + 1)).astype(np.int64)
    drop = np.zeros(len(groups), dtype=bool)
    drop[order] = (rank < quota) & (sorted_level < target_level)
    return drop


def drop_lower_behaviors(
    queries: Queries, rate: float, *, target_level: int, seed: int
) -> tuple[Queries, PerturbationReport]:
    """Test-time dropout of Table 7 on each query's history (`lower_behavior_drop_mask`), seeded."""
    rng = np.random.default_rng(seed)
    drop = lower_behavior_drop_mask(
        ragged_rows(queries.offsets), queries.hist_behavior, rate, target_level=target_level, rng=rng
    )
    return queries.drop_history(drop), PerturbationReport(f"drop rate {rate:g}", int(drop.sum()), 0)


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
