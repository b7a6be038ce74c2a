"""Data-parallel training: two CPU processes (gloo) end with the same weights and validation loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import TINY_DECODER

from gamer.model import DecoderConfig, GenerativeDecoder
from gamer.sequences import Ragged, TokenLayout, encode
from gamer.training import TrainConfig, train_decoder

LAYOUT = TokenLayout(2, np.array([[3, 7], [4, 8], [5, 9], [6, 10]]))


def _data(seed: int) -> Ragged:
    rng = np.random.default_rng(seed)
    n_seq, length = 16, 6
    return Ragged(
        np.arange(0, n_seq * length + 1, length),
        rng.integers(0, 4, n_seq * length),
        rng.integers(0, 2, n_seq * length),
        np.arange(n_seq * length) // 2,
    )


def _train(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = GenerativeDecoder(
        DecoderConfig.gamer(
            11,
            2,
            2,
            **TINY_DECODER,
            dropout=0.0,
            attention_dropout=0.0,
        )
    )
    train_seqs, valid_seqs = _data(1), _data(2)
    valid_index = np.array_split(np.arange(len(valid_seqs)), world)[rank]
    valid = [encode(LAYOUT, valid_seqs.select(valid_index), session_wise=False, targets="last")]
    result = train_decoder(
        model,
        lambda index: encode(LAYOUT, train_seqs.select(index), session_wise=False),
        len(train_seqs),
        valid,
        TrainConfig(epochs=3, batch_size=8, micro_batch=2, lr=1e-2, patience=5, seed=0),
    )
    checksum = float(sum(p.double().sum() for p in model.parameters()))
    Path(out, f"rank{rank}.json").write_text(json.dumps({"loss": result.best_valid_loss, "checksum": checksum}))
    if world > 1:
        dist.destroy_process_group()


def test_two_processes_train_to_identical_weights(tmp_path):
    mp.spawn(_train, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]  # gradients were averaged every step and the validation loss all-reduced
    assert np.isfinite(ranks[0]["loss"])
