"""Hyperparameters of the decoder-only rows and of GAMER's conversion variant per profile, read from the
TOML files beside the model (``gamer/gamer.toml``, ``gamer/conversion.toml``), as every baseline's are
(``baselines/<name>.toml``): the files say what each profile is and why.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PROFILES = ("smoke", "cpu", "paper")


def read_profiles(path: Path | str) -> dict[str, dict[str, Any]]:
    """Hyperparameters per profile from a TOML file with exactly the tables ``[smoke]``, ``[cpu]`` and
    ``[paper]``, each a table: GAMER's files here, every baseline's beside its code, a plugin's."""
    path = Path(path)
    try:
        tables = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    if sorted(tables) != sorted(PROFILES):
        raise ValueError(f"{path}: needs exactly the tables {list(PROFILES)}, found {sorted(tables)}")
    for profile, values in tables.items():
        if not isinstance(values, dict):
            raise ValueError(f"{path}: [{profile}] must be a table of hyperparameters, found {values!r}")
    return tables


_DECODER = read_profiles(Path(__file__).with_name("gamer.toml"))
_CONVERSION = read_profiles(Path(__file__).with_name("conversion.toml"))
MODEL_SIZES = {profile: dict(_DECODER[profile]["model"]) for profile in PROFILES}


def decoder_profiles(
    architecture: str, ids: str, *, session_wise: bool = False, augment_times: int = 4
) -> dict[str, dict[str, Any]]:
    """Hyperparameters of one decoder-only row for every profile."""
    profiles = {}
    for profile in PROFILES:
        table = _DECODER[profile]
        model = dict(table["model"]) | table.get(architecture, {}).get("model", {})
        profiles[profile] = {
            "architecture": architecture,
            "session_wise": session_wise,
            "ids": ids,
            "tokenizer": dict(table["tokenizer"]) if ids != "cid" else {},
            "model": model,
            "training": dict(table["training"]),
            "augment_times": augment_times,
            "max_history": table["max_history"],
        }
    return profiles


def conversion_profiles() -> dict[str, dict[str, Any]]:
    """Hyperparameters of ``gamer_rank`` for every profile."""
    return {
        profile: {
            "architecture": "gamer",
            "ids": "sid",
            "tokenizer": dict(_DECODER[profile]["tokenizer"]),
            "model": dict(_DECODER[profile]["model"]),
            "training": dict(_CONVERSION[profile]["training"]),
            "max_history": _CONVERSION[profile]["max_history"],
            "behavior_weight": _CONVERSION[profile]["behavior_weight"],
        }
        for profile in PROFILES
    }
