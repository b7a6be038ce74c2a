"""Hyperparameters of the decoder-only rows per profile (beside the model, as RecBole keeps them).

- ``paper``: Section 4.1.4 and the authors' configs: width 256, inner 512, 8 layers, 6 query and 3
  key/value heads of 64, batch 4096, lr 5e-4, 200 epochs, patience 20, loss temperature 0.7,
  history 100, 4x augmentation, dropout 0.2 (GAMER) / 0.1 attention only (Qwen3).
- ``cpu``: the same shapes at a quarter of the width, for a laptop in hours.
- ``smoke``: seconds on two CPU cores (CI): tiny widths, few epochs, short histories, and at least
  128 optimiser steps, so that a row without augmentation (a fifth of the sequences, so a fifth of
  the steps per epoch) is not compared undertrained: at 4 epochs GAMER without augmentation reached
  a validation loss of 3.23 and HR@10 = 0 on `synthetic`; at 16 epochs, 1.88 and 0.19.
"""

from __future__ import annotations

from typing import Any

MODEL_SIZES = {
    "smoke": {
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 2,
        "n_kv_heads": 1,
        "head_dim": 16,
        "d_ff": 64,
        "behavior_dim": 16,
        "dropout": 0.1,
        "attention_dropout": 0.0,  # on CPU, dropout inside attention takes torch's slow unfused path
    },
    "cpu": {
        "d_model": 64,
        "n_layers": 4,
        "n_heads": 4,
        "n_kv_heads": 2,
        "head_dim": 16,
        "d_ff": 128,
        "behavior_dim": 16,
        "dropout": 0.1,
        "attention_dropout": 0.0,
    },
    "paper": {
        "d_model": 256,
        "n_layers": 8,
        "n_heads": 6,
        "n_kv_heads": 3,
        "head_dim": 64,
        "d_ff": 512,
        "behavior_dim": 64,
    },
}
_TRAINING = {
    "smoke": {
        "epochs": 4,
        "min_steps": 128,
        "batch_size": 128,
        "micro_batch": 128,
        "lr": 2e-3,
        "patience": 2,
        "temperature": 0.7,
    },
    # cpu: an epoch is every user-level sequence (~4,800 with 4x augmentation on synthetic), in steps of 128
    # so that an epoch moves the model (at 512 it made ~10 steps); patience 5; the cap is far beyond the plateau.
    "cpu": {"epochs": 100, "batch_size": 128, "micro_batch": 64, "lr": 1e-3, "patience": 5, "temperature": 0.7},
    "paper": {"epochs": 200, "batch_size": 4096, "micro_batch": 128, "lr": 5e-4, "patience": 20, "temperature": 0.7},
}
_TOKENIZER = {
    # RQ-VAE for data without released semantic IDs (the paper: 4 x 8192 on ShortVideoAD). A profile sets the
    # levels and a floor and ceiling on the codes per level; the size itself follows the item count
    # (`gamer.tokenizers.rqvae_codebook_size`: RetailRocket gets 3 x 128 at smoke and cpu, 4 x 256 at paper).
    # A fixed 3 x 16 left 97 % of RetailRocket's items colliding. `rqvae_codebook = C` pins the size instead.
    "smoke": {"rqvae_levels": 3, "rqvae_codebook_min": 16, "rqvae_codebook_max": 256, "rqvae_epochs": 20},
    "cpu": {"rqvae_levels": 3, "rqvae_codebook_min": 64, "rqvae_codebook_max": 1024, "rqvae_epochs": 100},
    "paper": {"rqvae_levels": 4, "rqvae_codebook_min": 256, "rqvae_codebook_max": 8192, "rqvae_epochs": 500},
}
_HISTORY = {"smoke": 20, "cpu": 50, "paper": 100}


def decoder_profiles(
    architecture: str, ids: str, *, session_wise: bool = False, augment_times: int = 4
) -> dict[str, dict[str, Any]]:
    """Hyperparameters of one decoder-only row for every profile."""
    profiles = {}
    for profile in ("smoke", "cpu", "paper"):
        model = dict(MODEL_SIZES[profile])
        if architecture == "qwen3" and profile == "paper":
            model |= {"dropout": 0.0, "attention_dropout": 0.1}  # the authors' Qwen3-Light config
        profiles[profile] = {
            "architecture": architecture,
            "session_wise": session_wise,
            "ids": ids,
            "tokenizer": dict(_TOKENIZER[profile]) if ids != "cid" else {},
            "model": model,
            "training": dict(_TRAINING[profile]),
            "augment_times": augment_times,
            "max_history": _HISTORY[profile],
        }
    return profiles


# The ranking variant (Appendix D, `gamer.ranking`): the paper gives no hyperparameters for it, so the
# backbone keeps GAMER's sizes per profile; a row is a user (history + candidate blocks), so batches
# count users, and the checkpoint is chosen on validation AUROC.
_RANKING_TRAINING = {
    "smoke": {"epochs": 8, "batch_size": 64, "micro_batch": 64, "lr": 2e-3, "patience": 3, "temperature": 0.7},
    "cpu": {"epochs": 40, "batch_size": 256, "micro_batch": 64, "lr": 1e-3, "patience": 5, "temperature": 0.7},
    "paper": {"epochs": 100, "batch_size": 1024, "micro_batch": 64, "lr": 5e-4, "patience": 10, "temperature": 0.7},
}
_RANKING_HISTORY = {"smoke": 30, "cpu": 50, "paper": 100}


def ranking_profiles() -> dict[str, dict[str, Any]]:
    """Hyperparameters of ``gamer_rank`` for every profile."""
    return {
        profile: {
            "architecture": "gamer",
            "ids": "sid",
            "tokenizer": dict(_TOKENIZER[profile]),
            "model": dict(MODEL_SIZES[profile]),
            "training": dict(_RANKING_TRAINING[profile]),
            "max_history": _RANKING_HISTORY[profile],
            "behavior_weight": 1.0,
        }
        for profile in ("smoke", "cpu", "paper")
    }
