"""The encoder-decoder generative rows (TIGER, TIGER_MB, MBGen) as Recommenders (Sections 2.1, 4.1.2).

Trained at interaction level, as the authors trained them (reference notes §4.5, §6): every
training interaction outside its user's first session is a sample whose history is the user's
earlier sessions (`protocols.samples.InteractionSamples`, the most recent ``max_history``
interactions). The token layout (`Seq2SeqLayout`) is shared with GAMER's tokenizer and beam search::

    encoder   <b> id_1 .. id_L   <b> id_1 .. id_L  ...  </s>      history, oldest first (TIGER: no <b>)
    decoder   <start> <b> id_1 .. id_L                            <start> = padding id 0, as T5
    labels    <b> id_1 .. id_L </s>                               the behavior token and EOS are trained too

At test the decoder is primed with ``<start> <b>`` of the queried behavior (TIGER: ``<start>``) and
the item's L ID tokens come from the shared trie-constrained beam search (beam 20, top 10). The
training loop, schedule, early stopping on validation loss and DDP are GAMER's
(`gamer.training.train_decoder`); the validation loss is over each validation query's positives
given the history before the validation session.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gamer.estimator import GenerativeEstimator, TrainingData
from gamer.training import TrainConfig
from protocols.interactions import Interactions
from protocols.queries import Queries, gather_ranges, ragged_rows
from protocols.samples import InteractionSamples

PAD = 0  # padding, and the decoder's start token (T5)


@dataclass
class Seq2SeqBatch:
    """Encoder ``[U, S]`` and decoder ``[B, T]`` tensors; padding has token 0, level and slot -1.

    The U encoder rows are the batch's distinct histories and decoder row b reads history
    ``memory_index[b]``: the targets of one session share their history (the earlier sessions),
    so each history is encoded once per batch rather than once per target.
    """

    enc_tokens: Tensor
    enc_levels: Tensor
    enc_slots: Tensor
    memory_index: Tensor  # [B] encoder row of each decoder row
    dec_tokens: Tensor
    dec_levels: Tensor
    dec_slots: Tensor
    labels: Tensor
    label_mask: Tensor

    def to(self, device: torch.device | str) -> Seq2SeqBatch:
        return Seq2SeqBatch(**{k: v.to(device) for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return self.labels.shape[0]

    def loss_inputs(self) -> tuple[Tensor, ...]:
        """What `Seq2SeqLoss.forward` takes, in its order."""
        return (
            self.enc_tokens,
            self.enc_levels,
            self.enc_slots,
            self.memory_index,
            self.dec_tokens,
            self.dec_levels,
            self.dec_slots,
            self.labels,
            self.label_mask,
        )

    @property
    def n_targets(self) -> int:
        return int(self.label_mask.sum())


class Seq2SeqLoss(nn.Module):
    """Summed cross-entropy of the labels on logits / temperature (the authors' 0.7)."""

    def __init__(self, model: nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(
        self, enc_tokens, enc_levels, enc_slots, memory_index, dec_tokens, dec_levels, dec_slots, labels, label_mask
    ):
        memory, memory_mask = self.model.encode(enc_tokens, enc_levels, enc_slots)
        logits, _ = self.model.decode(memory, memory_mask, dec_tokens, dec_levels, dec_slots, memory_index=memory_index)
        return F.cross_entropy(logits[label_mask] / self.temperature, labels[label_mask], reduction="sum")


@dataclass(frozen=True)
class Seq2SeqLayout:
    """Token ids: 0 pad/start, ``1 + level`` behavior tokens, ``item_tokens[i]`` item i's L ID tokens
    (GAMER's `TokenLayout` numbering), and EOS = ``vocab_size - 1``, one past the ID tokens."""

    item_tokens: np.ndarray  # [n_items, L] global token ids
    vocab_size: int  # including EOS
    behavior_tokens: bool  # TIGER_MB / MBGen: a behavior token before each item; TIGER: none

    @property
    def eos(self) -> int:
        return self.vocab_size - 1

    @property
    def id_levels(self) -> int:
        return self.item_tokens.shape[1]

    def _interaction_tokens(self, item: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[n, w]`` tokens and slots of n interactions (w = L, or L + 1 with a behavior token)."""
        ids = self.item_tokens[item]
        slots = np.broadcast_to(np.arange(1, self.id_levels + 1), ids.shape)
        if not self.behavior_tokens:
            return ids, slots
        return np.concatenate([level[:, None] + 1, ids], axis=1), np.concatenate([np.zeros_like(ids[:, :1]), slots], 1)

    def encoder(self, offsets: np.ndarray, item: np.ndarray, level: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """Right-padded ``[B, S]`` tokens, levels and slots of ragged histories, each ending in EOS."""
        tokens, slots = self._interaction_tokens(item, level)
        width = tokens.shape[1]
        lengths = np.diff(offsets) * width + 1
        n, s = len(lengths), int(lengths.max(initial=1))
        out_tokens = np.zeros((n, s), dtype=np.int64)
        out_levels = np.full((n, s), -1, dtype=np.int64)
        out_slots = np.full((n, s), -1, dtype=np.int64)
        rows = ragged_rows(offsets)
        columns = ((np.arange(len(item)) - offsets[rows])[:, None] * width + np.arange(width)).reshape(-1)
        flat_rows = np.repeat(rows, width)
        out_tokens[flat_rows, columns] = tokens.reshape(-1)
        out_levels[flat_rows, columns] = np.repeat(level, width)
        out_slots[flat_rows, columns] = slots.reshape(-1)
        out_tokens[np.arange(n), lengths - 1] = self.eos
        return torch.from_numpy(out_tokens), torch.from_numpy(out_levels), torch.from_numpy(out_slots)

    def prompt(self, level: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, 1 or 2]`` decoder prompt: ``<start>`` and, with behavior tokens, the queried ``<b>``."""
        n = len(level)
        start = np.zeros((n, 1), dtype=np.int64), np.full((n, 1), -1), np.full((n, 1), -1)
        if not self.behavior_tokens:
            return tuple(torch.from_numpy(np.asarray(a, dtype=np.int64)) for a in start)
        level = np.asarray(level, dtype=np.int64)[:, None]
        tokens = np.concatenate([start[0], level + 1], axis=1)
        levels = np.concatenate([start[1], level], axis=1)
        slots = np.concatenate([start[2], np.zeros_like(level)], axis=1)
        return tuple(torch.from_numpy(a.astype(np.int64)) for a in (tokens, levels, slots))

    def batch(
        self,
        offsets: np.ndarray,
        item: np.ndarray,
        level: np.ndarray,
        target: np.ndarray,
        target_level: np.ndarray,
        memory_index: np.ndarray | None = None,
    ) -> Seq2SeqBatch:
        """Teacher-forced training or validation batch: ragged histories, then each target interaction,
        whose history is ``memory_index[b]`` (default: target b has history b)."""
        enc = self.encoder(offsets, item, level)
        if memory_index is None:
            memory_index = np.arange(len(target))
        tokens, slots = self._interaction_tokens(target, target_level)
        n = len(target)
        start = np.zeros((n, 1), dtype=np.int64)
        dec_tokens = np.concatenate([start, tokens], axis=1)
        dec_slots = np.concatenate([start - 1, slots], axis=1)
        dec_levels = np.concatenate([start - 1, np.repeat(target_level[:, None], tokens.shape[1], axis=1)], axis=1)
        labels = np.concatenate([tokens, np.full((n, 1), self.eos)], axis=1)
        as_tensor = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for a in (dec_tokens, dec_levels)]
        return Seq2SeqBatch(
            *enc,
            torch.from_numpy(np.asarray(memory_index, dtype=np.int64)),
            *as_tensor,
            torch.from_numpy(np.ascontiguousarray(dec_slots, dtype=np.int64)),
            torch.from_numpy(labels.astype(np.int64)),
            torch.ones(labels.shape, dtype=torch.bool),
        )


class Seq2SeqStepDecoder:
    """Drives an encoder-decoder through beam search's step protocol: the encoder runs once, the
    decoder extends its cached self-attention state one ID token at a time."""

    def __init__(self, model: nn.Module, encoder: tuple[Tensor, Tensor, Tensor], prompt: tuple[Tensor, ...], level):
        self.model, self.encoder_inputs, self.prompt = model, encoder, prompt
        self.level = level  # [B] queried behavior: the level of every generated ID token
        self.generated = 0
        self.memory = self.memory_mask = self.past = None

    def prefill(self) -> Tensor:
        self.memory, self.memory_mask = self.model.encode(*self.encoder_inputs)
        logits, self.past = self.model.decode(self.memory, self.memory_mask, *self.prompt)
        return logits[:, -1]

    def _rows(self, take) -> None:
        self.memory, self.memory_mask, self.level = take(self.memory), take(self.memory_mask), take(self.level)
        self.past = [tuple(take(t) for t in layer) for layer in self.past]

    def expand(self, n: int) -> None:
        self._rows(lambda t: t.repeat_interleave(n, dim=0))

    def reorder(self, index: Tensor) -> None:
        self._rows(lambda t: t.index_select(0, index))

    def step(self, tokens: Tensor) -> Tensor:
        self.generated += 1
        slots = torch.full_like(tokens, self.generated)
        logits, self.past = self.model.decode(
            self.memory, self.memory_mask, tokens[:, None], self.level[:, None], slots[:, None], self.past
        )
        return logits[:, -1]


@dataclass(kw_only=True, eq=False)
class Seq2SeqRecommender(GenerativeEstimator):
    """An encoder-decoder generative recommender: ``architecture`` names its module as ``"module:Class"``
    (`baselines.tiger:T5EncoderDecoder`, `baselines.mbgen:PBATransformer`); hyperparameters per profile
    live in the TOML beside the module. Trains at interaction level (one example per target, its history
    encoded once per session); ``max_samples`` > 0 trains on a fixed subset of that many (smoke)."""

    architecture: str
    behavior_tokens: bool = True
    max_samples: int = 0

    def module_class(self) -> type[nn.Module]:
        module, _, name = self.architecture.partition(":")
        return getattr(importlib.import_module(module), name)

    def _layout(self, n_behaviors: int) -> Seq2SeqLayout:
        tokenizer = self.tokenizer_
        return Seq2SeqLayout(
            tokenizer.token_ids(n_behaviors), tokenizer.vocab_size(n_behaviors) + 1, self.behavior_tokens
        )

    def _network(self, n_behaviors: int) -> nn.Module:
        return self.module_class()(
            vocab_size=self.layout_.vocab_size,
            n_behaviors=n_behaviors,
            id_levels=self.layout_.id_levels,
            **(self.model or {}),
        )

    def _training_data(
        self, augmented: Interactions, valid: Queries, config: TrainConfig, rank: int, world: int
    ) -> TrainingData:
        samples = InteractionSamples.from_train(augmented, self.max_history)
        if len(samples) == 0:
            raise ValueError("no training sample: every user has a single training session")
        if self.max_samples and len(samples) > self.max_samples:  # smoke: a fixed subset, drawn once from the seed
            keep = np.sort(np.random.default_rng([self.seed, 7]).choice(len(samples), self.max_samples, replace=False))
            samples = InteractionSamples(samples.target[keep], samples.history_start[keep], samples.history_end[keep])
        self.n_samples_ = len(samples)

        def make_batch(index: np.ndarray) -> Seq2SeqBatch:
            # A session's targets share one history, which ends where the session starts.
            _, first, memory_index = np.unique(samples.history_end[index], return_index=True, return_inverse=True)
            histories = index[first]
            rows, offsets = gather_ranges(samples.history_start[histories], samples.history_end[histories])
            target = samples.target[index]
            return self.layout_.batch(
                offsets,
                augmented.item[rows],
                augmented.behavior[rows].astype(np.int64),
                augmented.item[target],
                augmented.behavior[target].astype(np.int64),
                memory_index.reshape(-1),
            )

        valid_batches = self._validation_batches(valid, config.micro_batch, rank, world)
        options = {
            "criterion": Seq2SeqLoss(self.model_, config.temperature),
            "groups": samples.history_end,  # one group per session: its samples are drawn together
        }
        return TrainingData(make_batch, len(samples), valid_batches, options)

    def _validation_batches(self, valid: Queries, size: int, rank: int, world: int) -> list[Seq2SeqBatch]:
        """One sample per (validation query, positive): the history before the validation session,
        then that item with the query's behavior (GAMER's validation loss, at interaction level)."""
        cut = valid.last(self.max_history)
        query_of = ragged_rows(cut.pos_offsets)
        chunks = np.array_split(np.arange(len(query_of)), max(world, len(query_of) // max(size, 1)))
        batches = []
        for chunk in chunks[rank::world]:
            q = query_of[chunk]
            distinct, memory_index = np.unique(q, return_inverse=True)  # a query's positives share its history
            rows, offsets = gather_ranges(cut.offsets[distinct], cut.offsets[distinct + 1])
            level = cut.behavior[q].astype(np.int64)
            history_level = cut.hist_behavior[rows].astype(np.int64)
            batch = self.layout_.batch(
                offsets, cut.item[rows], history_level, cut.positives[chunk], level, memory_index.reshape(-1)
            )
            batches.append(batch)
        return batches

    def _step_decoder(self, queries: Queries, index: np.ndarray, prepared: Queries) -> Seq2SeqStepDecoder:
        rows, offsets = gather_ranges(prepared.offsets[index], prepared.offsets[index + 1])
        encoder = self.layout_.encoder(offsets, prepared.item[rows], prepared.hist_behavior[rows].astype(np.int64))
        level = prepared.behavior[index].astype(np.int64)
        return Seq2SeqStepDecoder(
            self.model_,
            tuple(t.to(self.device) for t in encoder),
            tuple(t.to(self.device) for t in self.layout_.prompt(level)),
            torch.from_numpy(level).to(self.device),
        )

    def _described(self) -> dict[str, Any]:
        return {"training_samples": self.n_samples_}
