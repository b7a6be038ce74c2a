"""Maps a row of a paper table (``rule_based``, ``sasrec``, ``gamer_sid``, ...) to its model.

Each entry names its class and its hyperparameters per profile: ``smoke`` (seconds per cell on
two CPU cores: CI and tests), ``cpu`` (a laptop in hours) and ``paper`` (the paper's settings).
A table row whose model is not registered yet is reported as "not run", never as a number.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from baselines.recency import RecencyRule
from baselines.rule_based import RuleBased
from gamer.profiles import decoder_profiles, ranking_profiles
from protocols.model import Estimator

PROFILES = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    label: str
    factory: Callable[..., Estimator] | str  # a class, or "module:Class" imported on first use
    profiles: dict[str, dict[str, Any]] = field(default_factory=lambda: {p: {} for p in PROFILES})

    def hyperparameters(self, profile: str) -> dict[str, Any]:
        if profile not in self.profiles:
            raise ValueError(f"model {self.name!r} has no profile {profile!r}; profiles: {sorted(self.profiles)}")
        return dict(self.profiles[profile])

    def factory_class(self) -> Callable[..., Estimator]:
        if isinstance(self.factory, str):
            # Import heavy model code (torch) only when a row is actually run.
            module, _, name = self.factory.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.factory

    def build(self, hyperparameters: str | dict[str, Any], seed: int) -> Estimator:
        """The model of this row under ``seed``, with a profile's hyperparameters (``hyperparameters`` names
        the profile) or with ``hyperparameters`` as given (a profile's with a table's overrides): the one
        place a row's model is constructed."""
        if isinstance(hyperparameters, str):
            hyperparameters = self.hyperparameters(hyperparameters)
        return self.factory_class()(seed=seed, **hyperparameters)


_DECODER = "gamer.recommender:GenerativeRecommender"
_SEQUENTIAL = "baselines.discriminative:SequentialRecommender"
_SEQ2SEQ = "baselines.seq2seq:Seq2SeqRecommender"


def file_profiles(name: str, **fixed: Any) -> dict[str, dict[str, Any]]:
    """A model's hyperparameters per profile, from ``baselines/<name>.toml`` (beside its code),
    with ``fixed`` keys (its architecture, its variant) added to every profile."""
    path = Path(__file__).with_name(f"{name}.toml")
    profiles = tomllib.loads(path.read_text())
    if sorted(profiles) != sorted(PROFILES):
        raise ValueError(f"{path}: needs exactly the tables {list(PROFILES)}, found {sorted(profiles)}")
    return {profile: values | fixed for profile, values in profiles.items()}


def _sequential_rows() -> list[ModelEntry]:
    """Discriminative sequence models; ``_b`` = one token per (behavior, item) pair (Section 4.1.2)."""
    rows = []
    for name, label, architecture, has_b in (
        ("gru4rec", "GRU4Rec", "baselines.recbole_models:GRU4Rec", True),
        ("sasrec", "SASRec", "baselines.recbole_models:SASRec", True),
        ("bert4rec", "BERT4Rec", "baselines.recbole_models:BERT4Rec", True),
        ("pbat", "PBAT", "baselines.pbat:PBAT", False),
        ("mbht", "MBHT", "baselines.mbht:MBHT", False),
        ("mbstr", "MB-STR", "baselines.mbstr:MBSTR", False),
    ):
        rows.append(ModelEntry(name, label, _SEQUENTIAL, file_profiles(name, architecture=architecture)))
        if has_b:
            profiles = file_profiles(name, architecture=architecture, behavior_as_token=True)
            rows.append(ModelEntry(f"{name}_b", f"{label}_B", _SEQUENTIAL, profiles))
    return rows


def _decoder_rows() -> list[ModelEntry]:
    rows = []
    for ids in ("sid", "cid"):
        tag = ids.upper()
        for arch, label, session in (
            ("gamer", "GAMER", False),
            ("qwen3", "Qwen3", False),
            ("gamer", "GAMER w/ session-wise", True),
            ("qwen3", "Qwen3 w/ session-wise", True),
        ):
            name = f"{arch}{'_session' if session else ''}_{ids}"
            rows.append(
                ModelEntry(name, f"{label} ({tag})", _DECODER, decoder_profiles(arch, ids, session_wise=session))
            )
    return rows


def _graph_rows() -> list[ModelEntry]:
    """Multi-behavior graph models on user x item graphs of the training split (written here: SSLRec
    is not on the package index)."""
    return [
        ModelEntry("mbgmn", "MB-GMN", "baselines.graph:MBGMN", file_profiles("mbgmn")),
        ModelEntry("smbrec", "S-MBRec", "baselines.graph:SMBRec", file_profiles("smbrec")),
    ]


def _seq2seq_rows() -> list[ModelEntry]:
    """Encoder-decoder generative rows, trained at interaction level, decoded by GAMER's beam search."""
    tiger, mbgen = "baselines.tiger:T5EncoderDecoder", "baselines.mbgen:PBATransformer"
    return [
        ModelEntry("tiger", "TIGER", _SEQ2SEQ, file_profiles("tiger", architecture=tiger, behavior_tokens=False)),
        ModelEntry("tiger_mb", "TIGER_MB (SID)", _SEQ2SEQ, file_profiles("tiger", architecture=tiger)),
        ModelEntry("mbgen_sid", "MBGen (SID)", _SEQ2SEQ, file_profiles("mbgen", architecture=mbgen, ids="sid")),
        ModelEntry("mbgen_cid", "MBGen (CID)", _SEQ2SEQ, file_profiles("mbgen", architecture=mbgen, ids="cid")),
    ]


def _conversion_rows() -> list[ModelEntry]:
    """Table 10 (Appendix D): models that score exposed candidates instead of ranking the catalogue."""
    return [
        ModelEntry("recency_rule", "Recency rule", RecencyRule),
        ModelEntry("dlrm", "DLRM", "baselines.dlrm:DLRM", file_profiles("dlrm")),
        ModelEntry("gamer_rank", "GAMER", "gamer.ranking:GamerRank", ranking_profiles()),
    ]


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("rule_based", "Rule-Based", RuleBased),
        *_sequential_rows(),
        *_graph_rows(),
        *_seq2seq_rows(),
        *_decoder_rows(),
        *_conversion_rows(),
    )
}


def get(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {sorted(MODELS)}") from None
