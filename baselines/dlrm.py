"""DLRM: the production ranking model GAMER is compared with in the conversion scenario (paper Appendix D, Table 10).

What the paper says
-------------------
"A production-grade discriminative model currently deployed on leading short-video platforms", called DLRM, that
"employs a 4-layer Transformer architecture: two encoder layers process the user's historical behavior sequence,
while two decoder layers handle the candidate item for CTR estimation". It is scored by AUROC on conversion
(Table 10: 0.7975, GAMER 0.8353). Nothing else is given: no widths, no features, no loss, no optimiser.

What we chose
-------------
- **History encoder.** Each history interaction is its item embedding + its behavior embedding (exposure or
  conversion) + a learned *recency* embedding, recency 0 being the most recent interaction, so where the padding
  sits never changes a position. A learned "no history" token is always the first memory entry (never masked): an
  empty history still has one key to attend to, and every row of the softmax stays finite. Two pre-LayerNorm
  ``nn.TransformerEncoderLayer`` (bidirectional, key-padding mask) encode the sequence.
- **Candidate decoder.** A candidate enters as its item embedding (the same table as the history's) + a learned
  "candidate" type vector, then two ``nn.TransformerDecoderLayer``. Their self-attention is masked to the diagonal:
  a candidate sees only itself, so its score never depends on which other items its query holds (scoring is
  per candidate, as a served ranker scores each ad alone). Their cross-attention reads the encoded history.
- **Head and loss.** An MLP gives one logit per candidate; the loss is binary cross-entropy with logits on the
  candidate's label. The data has only exposures and conversions (`protocols.conversion`), so this "CTR estimation"
  head is in fact a CVR head: P(conversion | exposure, history). The output bias starts at the logit of the
  training conversion rate, so the first steps are not spent learning the base rate.
- **Initialisation.** Embeddings keep torch's N(0, 1) (not the 0.02 of GPT-style models), so that two untrained
  pre-LayerNorm encoder layers do not wash out which item a history token is; the decoder's cross-attention starts
  with its query projection equal to its key projection, so a candidate attends to its own past occurrences from
  the first step (target attention as a starting point, free to move). Both were needed for the planted
  "converts iff converted before" signal of tests/test_dlrm.py to be learned in a few epochs.
- **Training.** GAMER's loop (`gamer.training.train_decoder`: AdamW, warm-up + cosine decay, micro-batches,
  gradient clipping); a training example is a training session after the user's first
  (`protocols.conversion.training_queries`); the checkpoint kept is the one with the best validation AUROC.

Shapes: ``B`` queries, ``H`` history positions (+ 1 memory slot for the "no history" token), ``C`` candidates per
query (right-padded), ``d`` = ``d_model``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gamer.training import TrainConfig, TrainResult, resolve_device, train_decoder
from protocols.conversion import CONVERSION_BEHAVIORS, ConversionQueries, check_conversion_log, training_queries
from protocols.interactions import Interactions
from protocols.metrics import auroc
from protocols.model import ConversionModel
from protocols.queries import gather_ranges, ragged_rows

MODEL_DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "n_heads": 2,
    "d_ff": 256,
    "n_encoder_layers": 2,  # the paper's two encoder layers
    "n_decoder_layers": 2,  # the paper's two decoder layers
    "dropout": 0.1,
}
# TrainConfig fields the estimator sets itself: its own seed and device; `temperature` scales softmax logits,
# which a BCE head does not have.
_RESERVED_TRAINING_KEYS = ("seed", "device", "temperature")


# ---- batches -------------------------------------------------------------------------------------------------


def _right_padded(
    starts: np.ndarray, ends: np.ndarray, *columns: tuple[np.ndarray, int]
) -> tuple[list[np.ndarray], np.ndarray]:
    """For each ``(values, shift)``: rows ``starts[b]:ends[b]`` of the flat ``values`` plus ``shift``, as a ``[B, W]``
    int64 matrix right-padded with 0; and the lengths ``[B]``. ``W`` is the longest row, at least 1, so an empty row
    is one padding column. Only the gathered rows are touched, never the whole flat array."""
    rows, offsets = gather_ranges(starts, ends)
    lengths = np.diff(offsets)
    row_of = ragged_rows(offsets)
    column = np.arange(len(rows)) - offsets[row_of]
    width = max(int(lengths.max(initial=0)), 1)
    out = []
    for values, shift in columns:
        matrix = np.zeros((len(starts), width), dtype=np.int64)
        matrix[row_of, column] = values[rows].astype(np.int64) + shift
        out.append(matrix)
    return out, lengths


@dataclass(frozen=True)
class ConversionBatch:
    """A batch of conversion queries as padded tensors.

    - ``history_item`` ``[B, H]``: item index + 1, oldest first, right-padded with 0.
    - ``history_behavior`` ``[B, H]``: behavior level + 1 (1 exposure, 2 conversion), 0 on padding.
    - ``history_length`` ``[B]``: real history positions (0 for an empty history).
    - ``candidate`` ``[B, C]``: candidate item index + 1, in the query's order, right-padded with 0.
    - ``label`` ``[B, C]`` float: 1 where the candidate converted; ``candidate_mask`` ``[B, C]``: real candidates.
    """

    history_item: Tensor
    history_behavior: Tensor
    history_length: Tensor
    candidate: Tensor
    label: Tensor
    candidate_mask: Tensor

    @classmethod
    def of(cls, queries: ConversionQueries, index: np.ndarray, max_history: int) -> ConversionBatch:
        """The queries at ``index``, each history cut to its most recent ``max_history`` interactions."""
        index = np.asarray(index, dtype=np.int64)
        q = queries.queries
        end = q.offsets[index + 1]
        start = np.maximum(q.offsets[index], end - max_history)
        (item, behavior), length = _right_padded(start, end, (q.item, 1), (q.hist_behavior, 1))
        (candidate, label), n_candidates = _right_padded(
            queries.cand_offsets[index], queries.cand_offsets[index + 1], (queries.candidates, 1), (queries.labels, 0)
        )
        mask = np.arange(candidate.shape[1])[None, :] < n_candidates[:, None]
        return cls(
            torch.from_numpy(item),
            torch.from_numpy(behavior),
            torch.from_numpy(length),
            torch.from_numpy(candidate),
            torch.from_numpy(label.astype(np.float32)),
            torch.from_numpy(mask),
        )

    def to(self, device: torch.device | str) -> ConversionBatch:
        return ConversionBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return self.history_item.shape[0]

    def model_inputs(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """What `DLRMNet.forward` takes."""
        return self.history_item, self.history_behavior, self.history_length, self.candidate

    def loss_inputs(self) -> tuple[Tensor, ...]:
        """What `ConversionLoss.forward` takes."""
        return (*self.model_inputs(), self.label, self.candidate_mask)

    @property
    def n_targets(self) -> int:
        """Loss terms: the real candidates."""
        return int(self.candidate_mask.sum())


# ---- the network ---------------------------------------------------------------------------------------------


class DLRMNet(nn.Module):
    """Two encoder layers over the history, two candidate-wise decoder layers, an MLP head (module docstring).

    ``n_items`` items have embedding rows 1..n_items (row 0 = padding); ``max_history`` bounds the recency table.
    ``prior`` is the conversion probability the untrained head outputs (its bias starts at ``logit(prior)``).
    """

    def __init__(
        self,
        *,
        n_items: int,
        max_history: int,
        n_behaviors: int = len(CONVERSION_BEHAVIORS),
        d_model: int = MODEL_DEFAULTS["d_model"],
        n_heads: int = MODEL_DEFAULTS["n_heads"],
        d_ff: int = MODEL_DEFAULTS["d_ff"],
        n_encoder_layers: int = MODEL_DEFAULTS["n_encoder_layers"],
        n_decoder_layers: int = MODEL_DEFAULTS["n_decoder_layers"],
        dropout: float = MODEL_DEFAULTS["dropout"],
        prior: float = 0.5,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        if not 0.0 < prior < 1.0:
            raise ValueError(f"prior is a probability strictly between 0 and 1, got {prior}")
        self.max_history = max_history
        # Tables keep torch's N(0, 1) init, and so do the two learned tokens: with pre-LayerNorm layers the residual
        # stream must start larger than what a random sublayer adds to it (O(1)). With N(0, 0.02) tables the planted
        # item-match signal of tests/test_dlrm.py was not learned in 20 epochs; with N(0, 1) it is in 5.
        self.item_embedding = nn.Embedding(n_items + 1, d_model, padding_idx=0)
        self.behavior_embedding = nn.Embedding(n_behaviors + 1, d_model, padding_idx=0)
        self.recency_embedding = nn.Embedding(max_history, d_model)  # row 0 = the most recent interaction
        self.no_history = nn.Parameter(torch.randn(d_model))  # memory slot 0, present in every query
        self.candidate_type = nn.Parameter(torch.randn(d_model))
        # Pre-LayerNorm layers (norm_first), each stack closed by a LayerNorm: stable at any depth and learning rate.
        sizes = {"d_model": d_model, "nhead": n_heads, "dim_feedforward": d_ff, "dropout": dropout}
        common = {"activation": "gelu", "batch_first": True, "norm_first": True}
        self.encoder_layers = nn.ModuleList(
            nn.TransformerEncoderLayer(**sizes, **common) for _ in range(n_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            nn.TransformerDecoderLayer(**sizes, **common) for _ in range(n_decoder_layers)
        )
        for layer in self.decoder_layers:
            # Query projection := key projection: q.k = |W x|^2 > 0 for the candidate's own past occurrences, ~0 for
            # other items. Without it the planted test signal reached AUROC 0.57 in 6 epochs instead of 0.84.
            weight = layer.multihead_attn.in_proj_weight.data  # rows [query; key; value]
            weight[:d_model] = weight[d_model : 2 * d_model]
        self.encoder_norm = nn.LayerNorm(d_model)
        self.decoder_norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 1))
        nn.init.constant_(self.head[-1].bias, math.log(prior / (1.0 - prior)))

    def encode(self, history_item: Tensor, history_behavior: Tensor, history_length: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, H]`` history -> memory ``[B, 1 + H, d]`` and its key-padding mask ``[B, 1 + H]`` (True = padding).

        Slot 0 is the "no history" token; slot 1 + j holds history position j."""
        batch, width = history_item.shape
        column = torch.arange(width, device=history_item.device)
        real = column[None, :] < history_length[:, None]
        recency = (history_length[:, None] - 1 - column[None, :]).clamp(0, self.max_history - 1)
        x = (
            self.item_embedding(history_item)
            + self.behavior_embedding(history_behavior)
            + self.recency_embedding(recency)
        )
        x = torch.cat([self.no_history.expand(batch, 1, -1), x], dim=1)
        padding = torch.cat([real.new_zeros(batch, 1), ~real], dim=1)
        x = self.drop(x)
        for layer in self.encoder_layers:
            x = layer(x, src_key_padding_mask=padding)
        return self.encoder_norm(x), padding

    def decode(self, candidate: Tensor, memory: Tensor, memory_padding: Tensor) -> Tensor:
        """``[B, C]`` candidates read ``memory`` -> logits ``[B, C]`` (padded candidates get a logit too; ignore it).

        The self-attention mask is diagonal: candidate c attends to itself only."""
        width = candidate.shape[1]
        alone = ~torch.eye(width, dtype=torch.bool, device=candidate.device)  # True = may not attend
        y = self.drop(self.item_embedding(candidate) + self.candidate_type)
        for layer in self.decoder_layers:
            y = layer(y, memory, tgt_mask=alone, memory_key_padding_mask=memory_padding)
        return self.head(self.decoder_norm(y)).squeeze(-1)

    def forward(
        self, history_item: Tensor, history_behavior: Tensor, history_length: Tensor, candidate: Tensor
    ) -> Tensor:
        """Conversion logits ``[B, C]`` of each query's candidates given its history."""
        memory, padding = self.encode(history_item, history_behavior, history_length)
        return self.decode(candidate, memory, padding)


class ConversionLoss(nn.Module):
    """Summed binary cross-entropy with logits over the real candidates of a batch (`ConversionBatch.loss_inputs`).

    A module of its own so that `train_decoder` can wrap it in DistributedDataParallel."""

    def __init__(self, model: DLRMNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        history_item: Tensor,
        history_behavior: Tensor,
        history_length: Tensor,
        candidate: Tensor,
        label: Tensor,
        candidate_mask: Tensor,
    ) -> Tensor:
        logits = self.model(history_item, history_behavior, history_length, candidate)
        return F.binary_cross_entropy_with_logits(logits[candidate_mask], label[candidate_mask], reduction="sum")


# ---- the estimator -------------------------------------------------------------------------------------------


@dataclass(kw_only=True, eq=False)
class DLRM(ConversionModel):
    """The DLRM row of Table 10 (module docstring): fit on the training sessions, selected on validation AUROC.

    Hyperparameters: ``model`` (keys of `MODEL_DEFAULTS`: d_model, n_heads, d_ff, n_encoder_layers,
    n_decoder_layers, dropout), ``training`` (keys of `gamer.training.TrainConfig` but seed, device and
    temperature), ``max_history`` (most recent interactions a history keeps), ``max_train_queries`` (None = every
    training query; else a random subset of that size drawn once from the seed, to bound smoke runs),
    ``eval_batch`` (queries per scoring pass) and ``device`` ("auto" = the GPU when there is one).
    """

    seed: int = 0
    model: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    max_history: int = 50
    max_train_queries: int | None = None
    eval_batch: int = 512
    device: str = "auto"

    def _checked_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        model, training = self.model or {}, self.training or {}
        unknown = sorted(set(model) - set(MODEL_DEFAULTS))
        if unknown:
            raise ValueError(f"DLRM: unknown model keys {unknown}; the model takes {sorted(MODEL_DEFAULTS)}")
        allowed = {f.name for f in fields(TrainConfig)} - set(_RESERVED_TRAINING_KEYS)
        unknown = sorted(set(training) - allowed)
        if unknown:
            raise ValueError(
                f"DLRM: training keys {unknown} are not accepted; use {sorted(allowed)} "
                f"({', '.join(_RESERVED_TRAINING_KEYS)} are set by the estimator or unused by a BCE head)"
            )
        if self.max_history < 1:
            raise ValueError(f"DLRM: max_history must be >= 1, got {self.max_history}")
        return MODEL_DEFAULTS | model, training

    def fit(self, train: Interactions, valid: ConversionQueries) -> DLRM:
        model_config, training = self._checked_hyperparameters()
        check_conversion_log(train)
        if valid.n_candidates == 0 or valid.labels.min() == valid.labels.max():
            raise ValueError(
                f"DLRM: the validation queries need converted and unconverted candidates to select on AUROC; "
                f"got {valid.summary()}"
            )
        torch.manual_seed(self.seed)
        queries = training_queries(train, self.max_history)
        if len(queries) == 0:
            raise ValueError("DLRM: no training query (every user has a single training session)")
        if self.max_train_queries is not None and len(queries) > self.max_train_queries:
            rng = np.random.default_rng([self.seed, 7])  # drawn once, apart from the training loop's shuffling
            queries = queries.select(np.sort(rng.choice(len(queries), self.max_train_queries, replace=False)))
        self.n_train_queries_ = len(queries)
        rate = float(np.clip(queries.labels.mean(), 1e-4, 1.0 - 1e-4))
        self.device_ = resolve_device(self.device)
        self.model_ = DLRMNet(n_items=train.n_items, max_history=self.max_history, prior=rate, **model_config)
        config = TrainConfig(seed=self.seed, device=str(self.device_), **training)
        self.training_: TrainResult = train_decoder(
            self.model_,
            lambda index: ConversionBatch.of(queries, index, self.max_history),
            len(queries),
            [],
            config,
            criterion=ConversionLoss(self.model_),
            validate=lambda: 1.0 - auroc(self.score(valid), valid.labels),
        )
        return self

    @torch.no_grad()
    def score(self, queries: ConversionQueries) -> np.ndarray:
        """``[queries.n_candidates]`` conversion probabilities (float64) aligned with ``queries.candidates``,
        in batches of ``eval_batch`` queries, histories cut to the last ``max_history`` interactions."""
        self.model_.eval()
        out = []
        for start in range(0, len(queries), self.eval_batch):
            index = np.arange(start, min(start + self.eval_batch, len(queries)))
            batch = ConversionBatch.of(queries, index, self.max_history).to(self.device_)
            logits = self.model_(*batch.model_inputs())
            out.append(torch.sigmoid(logits[batch.candidate_mask]).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {
            "parameters": sum(p.numel() for p in self.model_.parameters()),
            "training_queries": self.n_train_queries_,
            "training": asdict(self.training_),  # every epoch's record and why training stopped
            "valid_auroc": 1.0 - self.training_.best_valid_loss,
        }
