"""A gamer-bench plugin: the most popular items, as a row of Table 2 (and a small dataset).

``popular_entry`` is what the entry point ``gamer_bench.models: popular`` names; ``example_log`` is the
dataset ``gamer_bench.datasets: example-log``. Nothing here is imported until a run asks for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from baselines.registry import ModelEntry, profiles_from_toml
from protocols.catalog import DatasetSpec
from protocols.interactions import Interactions
from protocols.model import Ranking, Recommender
from protocols.queries import Queries


class MostPopular(Recommender):
    """The k items done most often in training (with the target behavior only, by default), the same
    list for every query: the floor any sequential model must clear."""

    def __init__(self, *, seed: int = 0, target_only: bool = True) -> None:
        super().__init__(seed=seed, target_only=target_only)
        self.target_only = target_only

    def fit(self, train: Interactions, valid: Queries) -> MostPopular:
        rows = train.behavior == train.schema.target_level if self.target_only else slice(None)
        counts = np.bincount(train.item[rows], minlength=train.n_items)
        self.ranking_ = np.argsort(-counts, kind="stable")  # ties: the smaller item index first
        return self

    def recommend(self, queries: Queries, k: int) -> Ranking:
        return [self.ranking_[:k].copy() for _ in range(len(queries))]

    def describe(self) -> dict:
        return {"name": "most popular", "parameters": 0, "target_only": self.target_only}


def popular_entry() -> ModelEntry:
    profiles = profiles_from_toml(Path(__file__).with_name("popular.toml"))
    return ModelEntry("popular", "MostPop (plugin)", MostPopular, profiles, tables=("table-2", "table-4"))


def _example_log(_: Path | None) -> Interactions:
    from protocols.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(n_users=60, n_items=300, seed=5))


example_log = DatasetSpec(
    name="example-log",
    description="a 60-user synthetic log shipped by the example plugin",
    locate=lambda: None,
    read=_example_log,
    definition=lambda: {"synthetic": {"n_users": 60, "n_items": 300, "seed": 5}},
)
