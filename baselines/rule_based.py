"""Rule-Based: the k most recent distinct history items, most recent first (Section 4.1.2)."""

from __future__ import annotations

import numpy as np

from protocols.interactions import Interactions
from protocols.model import Ranking, Recommender
from protocols.queries import Queries, ragged_rows


class RuleBased(Recommender):
    """Recommends the user's k most recently interacted distinct items, whatever their behavior.

    It learns nothing, so ``fit`` only checks its input. It scores the same under every profile and
    seed; it is the floor that shows whether a model does more than recall the history.
    """

    def fit(self, train: Interactions, valid: Queries) -> RuleBased:
        return self

    def recommend(self, queries: Queries, k: int) -> Ranking:
        rows = ragged_rows(queries.offsets)
        # Walk each history newest first; the first time an item is met is its most recent use.
        newest_first = np.lexsort((-np.arange(len(rows)), rows))
        n_items = int(queries.item.max()) + 1 if len(queries.item) else 1
        keys = rows[newest_first] * n_items + queries.item[newest_first]
        _, first = np.unique(keys, return_index=True)
        chosen = newest_first[np.sort(first)]  # newest-first order within each query is kept
        chosen_rows = rows[chosen]
        starts = np.searchsorted(chosen_rows, np.arange(len(queries)))
        rank = np.arange(len(chosen)) - starts[chosen_rows]
        chosen = chosen[rank < k]
        counts = np.bincount(rows[chosen], minlength=len(queries))
        return np.split(queries.item[chosen], np.cumsum(counts)[:-1])
