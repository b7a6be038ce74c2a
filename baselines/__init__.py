"""One adapter per compared model, all behind `baselines.base.Recommender`, named in `registry`."""

from baselines.base import Ranking, Recommender
from baselines.registry import MODELS, ModelEntry, get

__all__ = ["MODELS", "ModelEntry", "Ranking", "Recommender", "get"]
