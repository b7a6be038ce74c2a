"""One adapter per compared model, all behind `protocols.model.Recommender`, named in `registry`."""

from baselines.registry import MODELS, ModelEntry, get
from protocols.model import Ranking, Recommender

__all__ = ["MODELS", "ModelEntry", "Ranking", "Recommender", "get"]
