"""The one interface every compared model implements (scikit-learn style).

A model is built from its hyperparameters and a seed (the constructor only stores them), fit once
per (dataset, task, variant, seed), and then answers queries:

- ``fit(train, valid)``: ``train`` is every interaction before each user's validation session;
  ``valid`` holds the validation queries of every behavior (filter with ``valid.for_behavior``).
  The model selects its own checkpoint (validation loss for generative models, validation NDCG@10
  of the target-behavior task for discriminative ones). Returns ``self``.
- ``recommend(queries, k)``: for each query, at most k distinct item indices, best first. A model
  that has fewer than k candidates for a query returns a shorter row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from protocols.interactions import Interactions
from protocols.queries import Queries

Ranking = Sequence[np.ndarray]


class Recommender(ABC):
    """Base class of every model row: hyperparameters in, fitted state ends in ``_``."""

    def __init__(self, *, seed: int = 0, **hyperparameters: Any) -> None:
        self.seed = seed
        self.hyperparameters = hyperparameters

    def get_params(self) -> dict[str, Any]:
        return {"seed": self.seed, **self.hyperparameters}

    @abstractmethod
    def fit(self, train: Interactions, valid: Queries) -> Recommender:
        """Train on ``train``; choose the checkpoint on ``valid``; return self."""

    @abstractmethod
    def recommend(self, queries: Queries, k: int) -> Ranking:
        """At most ``k`` distinct item indices per query, best first."""
