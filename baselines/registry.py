"""Maps a row of a paper table (``rule_based``, ``sasrec``, ``gamer_sid``, ...) to its model.

Each entry names its class and its hyperparameters per profile: ``smoke`` (seconds per cell on
two CPU cores: CI and tests), ``cpu`` (a laptop in hours) and ``paper`` (the paper's settings).
A table row whose model is not registered yet is reported as "not run", never as a number.

Plugins add rows without editing this package: an installed distribution declares entry points in
the group ``gamer_bench.models`` (each names a `ModelEntry`, or a function returning one), loaded
only when a run asks for that name, so a broken plugin breaks only the runs that ask for it; a
built-in name always wins over a plugin's, with a warning. ``gamer-bench ... --plugins module``
registers the entries of unpublished code (`benchmark.plugins`). docs/adding-a-model.md walks through it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from baselines.recency import RecencyRule
from baselines.rule_based import RuleBased
from gamer.profiles import PROFILES, conversion_profiles, decoder_profiles, read_profiles
from protocols import entry_points
from protocols.model import Estimator


@dataclass(frozen=True)
class ModelEntry:
    """A row's model: its registry ``name``, the ``label`` tables print, its class, and its hyperparameters
    per profile. A plugin's entry also names the ``tables`` it can fill (e.g. ``("table-2",)``), the
    ``group`` its rows are listed under, and ``source``: where it came from, part of its cells'
    configuration, so a new plugin version never reuses its old results."""

    name: str
    label: str
    factory: Callable[..., Estimator] | str  # a class, or "module:Class" imported on first use
    profiles: dict[str, dict[str, Any]] = field(default_factory=lambda: {p: {} for p in PROFILES})
    tables: tuple[str, ...] = ()
    group: str = ""
    source: str = "built-in"

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


def profiles_from_toml(path: Path | str, **fixed: Any) -> dict[str, dict[str, Any]]:
    """Hyperparameters per profile from a TOML file with exactly the tables ``[smoke]``, ``[cpu]`` and
    ``[paper]`` (`gamer.profiles.read_profiles`), with ``fixed`` keys (an architecture, a variant) added
    to every profile. A plugin's profiles take this shape too."""
    return {profile: values | fixed for profile, values in read_profiles(path).items()}


def file_profiles(name: str, **fixed: Any) -> dict[str, dict[str, Any]]:
    """A built-in model's profiles, from ``baselines/<name>.toml`` beside its code (`profiles_from_toml`)."""
    return profiles_from_toml(Path(__file__).with_name(f"{name}.toml"), **fixed)


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
        ModelEntry("mbgmn", "MB-GMN", "baselines.mbgmn:MBGMN", file_profiles("mbgmn")),
        ModelEntry("smbrec", "S-MBRec", "baselines.smbrec:SMBRec", file_profiles("smbrec")),
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
        ModelEntry("gamer_rank", "GAMER", "gamer.conversion:GamerConversion", conversion_profiles()),
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


BUILTIN_MODELS = frozenset(MODELS)
ENTRY_POINTS = "gamer_bench.models"


@cache
def plugin_entry_points() -> dict[str, EntryPoint]:
    """The installed plugins' model entry points by name, none of them imported (read once a process).
    One that reuses a built-in name is never loaded; a warning says so once."""
    found = entry_points.installed(ENTRY_POINTS)
    for name in sorted(set(found) & BUILTIN_MODELS):
        warnings.warn(
            f"installed plugin model {name!r} ({found[name].value}) is ignored: {name!r} is a built-in row",
            stacklevel=2,
        )
    return found


def register(entry: ModelEntry) -> bool:
    """Add a plugin's model; False, with a warning, where the name is taken (built-in names win, and
    a name registered first stays). An entry without the three profiles is an error naming its source."""
    if not isinstance(entry, ModelEntry):
        raise TypeError(f"a plugin must give a baselines.registry.ModelEntry, got {type(entry).__name__}: {entry!r}")
    missing = [p for p in PROFILES if p not in entry.profiles]
    if missing:
        raise ValueError(
            f"plugin model {entry.name!r} ({entry.source}): no profile {missing}; it needs {list(PROFILES)}"
        )
    taken = MODELS.get(entry.name)
    if taken is not None:
        if taken != entry:
            owner = "a built-in row" if entry.name in BUILTIN_MODELS else taken.source
            warnings.warn(
                f"plugin model {entry.name!r} ({entry.source}) is ignored: the name belongs to {owner}", stacklevel=2
            )
        return False
    MODELS[entry.name] = entry
    return True


def load_plugin(name: str) -> ModelEntry | None:
    """The installed plugin model ``name``, imported and registered now; None where no plugin has that
    name. Whatever goes wrong inside the plugin is raised naming the plugin and its distribution."""
    ep = plugin_entry_points().get(name)
    if ep is None:
        return None
    entry = entry_points.load(ep, ModelEntry, "model")
    source = f"plugin {entry_points.distribution(ep)}"
    register(entry if entry.source != "built-in" else replace(entry, source=source))
    return MODELS[name]


def get(name: str) -> ModelEntry:
    """The model of a row: a built-in, a plugin registered this run, or an installed plugin (loaded now)."""
    entry = MODELS.get(name) or load_plugin(name)
    if name in BUILTIN_MODELS:
        plugin_entry_points()  # warns of an installed plugin that uses a built-in name
    if entry is None:
        plugins = sorted(set(plugin_entry_points()) - set(MODELS))
        more = f"; installed plugins: {plugins}" if plugins else ""
        raise ValueError(f"unknown model {name!r}; registered models: {sorted(MODELS)}{more}")
    return entry
