"""Maps a row of a paper table (``rule_based``, ``sasrec``, ``gamer_sid``, ...) to its model.

Each entry names its class and its hyperparameters per profile: ``smoke`` (seconds per cell on
two CPU cores: CI and tests), ``cpu`` (a laptop in hours) and ``paper`` (the paper's settings).
A table row whose model is not registered yet is reported as "not run", never as a number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from baselines.base import Recommender
from baselines.rule_based import RuleBased

PROFILES = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    label: str
    factory: Callable[..., Recommender]
    profiles: dict[str, dict[str, Any]] = field(default_factory=lambda: {p: {} for p in PROFILES})

    def hyperparameters(self, profile: str) -> dict[str, Any]:
        if profile not in self.profiles:
            raise ValueError(f"model {self.name!r} has no profile {profile!r}; profiles: {sorted(self.profiles)}")
        return dict(self.profiles[profile])

    def build(self, profile: str, seed: int) -> Recommender:
        return self.factory(seed=seed, **self.hyperparameters(profile))


MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in (ModelEntry("rule_based", "Rule-Based", RuleBased),)}


def get(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {sorted(MODELS)}") from None
