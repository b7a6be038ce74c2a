"""Recency rule of Table 10: a candidate scores by how often and how lately the user met it before.

Not a row of the paper. It plays in Table 10 the part Rule-Based plays in Table 2: a floor that
learns nothing, which tells whether a trained ranker does more than recall the history.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.conversion import ConversionQueries
from protocols.interactions import Interactions
from protocols.model import ConversionModel
from protocols.queries import ragged_rows


class RecencyRule(ConversionModel):
    """Scores candidate c of a query by ``s = sum over earlier interactions with c of 1 / (1 + age)``.

    ``age`` is the interaction's position counted from the newest of the history (0 = the newest),
    whatever its behavior; the probability given is ``s / (1 + s)``, so a candidate never met scores
    0 and AUROC sees only the order of ``s``. It learns nothing: ``fit`` returns at once, and every
    profile and seed scores the same.
    """

    def fit(self, train: Interactions, valid: ConversionQueries) -> RecencyRule:
        return self

    def score(self, queries: ConversionQueries) -> np.ndarray:
        history = queries.queries
        if len(history.item) == 0:
            return np.zeros(queries.n_candidates)
        rows = ragged_rows(history.offsets)
        age = history.offsets[rows + 1] - 1 - np.arange(len(rows))  # 0 for each history's newest interaction
        n_items = int(max(history.item.max(), queries.candidates.max(initial=0))) + 1
        # Sum the weights per (query, item) pair, then look each candidate's pair up.
        keys, inverse = np.unique(rows * n_items + history.item, return_inverse=True)
        sums = np.bincount(inverse, weights=1.0 / (1.0 + age), minlength=len(keys))
        wanted = queries.candidate_query * n_items + queries.candidates
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        s = np.where(keys[at] == wanted, sums[at], 0.0)
        return s / (1.0 + s)

    def describe(self) -> dict[str, Any]:
        return {"name": "recency rule", "parameters": 0, "rule": "sum of 1 / (1 + age) over earlier uses of the item"}
