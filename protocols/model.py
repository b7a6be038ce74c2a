"""The one interface every compared model implements (scikit-learn style).

A model is built from its hyperparameters and a seed (the constructor only stores them), fit once
per (dataset, task, variant, seed), and then answers queries:

- ``fit(train, valid)``: ``train`` is every interaction before each user's validation session;
  ``valid`` holds the validation queries of every behavior (filter with ``valid.for_behavior``).
  The model selects its own checkpoint (validation loss for generative models, validation NDCG@10
  of the target-behavior task for discriminative ones). Returns ``self``.
- ``recommend(queries, k)``: for each query, at most k distinct item indices, best first. A model
  that has fewer than k candidates for a query returns a shorter row.

The conversion models of Appendix D (`ConversionModel`) are fit the same way but answer ``score``: the
probability that each exposed candidate of a query converts (``protocols.conversion``).

Once fitted, every model can say what it learned: ``describe()`` (what the stored result's provenance
records: parameters, tokenizer, the training record) and ``save_artifacts(folder)`` (files kept beside
the result, e.g. an item tokenizer); both default to nothing. The contract sits here, under every
model and the benchmark, so that models and the runner depend on it and never on each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protocols.conversion import ConversionQueries
from protocols.interactions import Interactions
from protocols.queries import Queries

Ranking = Sequence[np.ndarray]


class Estimator:
    """Hyperparameters and a seed in (the constructor only stores them); fitted state ends in ``_``."""

    def __init__(self, *, seed: int = 0, **hyperparameters: Any) -> None:
        self.seed = seed
        self.hyperparameters = hyperparameters

    def describe(self) -> dict[str, Any]:
        """What the stored result records about the fitted model (JSON values); nothing by default.
        A model that trains puts its `gamer.training.TrainingRecord` under ``"training"``."""
        return {}

    def save_artifacts(self, folder: Path) -> None:
        """Write what the fitted model learned into ``folder``, beside the stored result (no pickle);
        nothing by default."""


class Recommender(Estimator, ABC):
    """Base class of every row of the retrieval tables (2-8)."""

    @abstractmethod
    def fit(self, train: Interactions, valid: Queries) -> Recommender:
        """Train on ``train``; choose the checkpoint on ``valid``; return self."""

    @abstractmethod
    def recommend(self, queries: Queries, k: int) -> Ranking:
        """At most ``k`` distinct item indices per query, best first."""


class ConversionModel(Estimator, ABC):
    """Base class of the rows of Table 10: conversion probabilities of exposed candidates (Appendix D)."""

    @abstractmethod
    def fit(self, train: Interactions, valid: ConversionQueries) -> ConversionModel:
        """Train on the sessions of ``train`` (`protocols.conversion.training_queries`); keep the checkpoint
        with the best AUROC on ``valid``; return self."""

    @abstractmethod
    def score(self, queries: ConversionQueries) -> np.ndarray:
        """``[queries.n_candidates]`` probabilities in [0, 1], aligned with ``queries.candidates``."""
