"""One generative recommender, whatever its network: the plumbing every generative row of the retrieval
tables shares, written once. `GenerativeEstimator.fit` builds the item tokenizer from the training split,
augments the training sessions (Section 3.3), trains the network with the lowest-validation-loss
checkpoint kept (`gamer.training.train_decoder`), and `recommend` decodes each query with the
trie-constrained beam search (beam 20, top 10 distinct items, Section 4.1.3).

A row is a subclass that says only what differs (GAMER and Qwen3: `gamer.recommender`; TIGER and MBGen:
`baselines.seq2seq`): how its tokens are laid out, its network, its training and validation batches, and
the step decoder that drives its network through beam search. Hyperparameters follow scikit-learn's
convention: the constructor (a keyword-only dataclass, each hyperparameter written once as a field)
only stores them, and what `fit` learns ends in ``_``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gamer.augmentation import augment
from gamer.beam_search import PrefixTrie, StepDecoder, constrained_beam_search
from gamer.tokenizers import build_tokenizer
from gamer.training import TrainConfig, init_distributed, rank_and_world, train_decoder
from protocols.interactions import Interactions
from protocols.model import Ranking, Recommender
from protocols.queries import Queries


@dataclass(frozen=True)
class TrainingData:
    """What a row trains on: ``make_batch(indices)`` encodes training examples ``indices`` of ``size``;
    ``valid_batches`` are this process's share of the validation loss; ``options`` go to
    `gamer.training.train_decoder` as they are (a criterion, example groups)."""

    make_batch: Callable[[np.ndarray], Any]
    size: int
    valid_batches: list[Any]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True, eq=False)
class GenerativeEstimator(Recommender):
    """A generative recommender over item IDs (``ids``: ``sid`` semantic IDs or ``cid`` chunked IDs).

    ``tokenizer``, ``model`` and ``training`` are the keyword arguments of `gamer.tokenizers.build_tokenizer`,
    of the row's network and of `gamer.training.TrainConfig`; ``augment_times`` and ``augment_grid`` those of
    `gamer.augmentation.augment`; queries are cut to their last ``max_history`` interactions and decoded
    ``eval_batch`` at a time with ``num_beams`` beams."""

    seed: int = 0
    ids: str = "sid"
    tokenizer: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    augment_times: int = 0
    augment_grid: str = "paper"
    max_history: int = 50
    num_beams: int = 20
    eval_batch: int = 64
    device: str = "cpu"

    # -- what a row says -------------------------------------------------------------------------------
    @abstractmethod
    def _layout(self, n_behaviors: int) -> Any:
        """How tokens are numbered, from the fitted ``tokenizer_``; it has ``item_tokens`` (item -> ID tokens)."""

    @abstractmethod
    def _network(self, n_behaviors: int) -> nn.Module:
        """The untrained network, built from ``layout_`` and the ``model`` hyperparameters."""

    @abstractmethod
    def _training_data(
        self, augmented: Interactions, valid: Queries, config: TrainConfig, rank: int, world: int
    ) -> TrainingData:
        """The training examples of the augmented split and, under torchrun, rank ``rank`` of ``world``'s
        validation batches."""

    @abstractmethod
    def _step_decoder(self, queries: Queries, index: np.ndarray, prepared: Any) -> StepDecoder:
        """The beam search's driver for queries ``index`` (on ``device``); ``prepared`` is `_prepare`'s."""

    def _vocab_size(self) -> int:
        """The network's vocabulary (the trie's width)."""
        return self.layout_.vocab_size

    def _prepare(self, queries: Queries) -> Any:
        """What every batch of ``queries`` reads at test time (their histories cut to ``max_history``)."""
        return queries.last(self.max_history)

    def _described(self) -> dict[str, Any]:
        """What the row adds to `describe` (before the training record)."""
        return {}

    # -- the plumbing --------------------------------------------------------------------------------------
    def fit(self, train: Interactions, valid: Queries) -> GenerativeEstimator:
        torch.manual_seed(self.seed)
        n_behaviors = len(train.schema.behaviors)
        self.tokenizer_ = build_tokenizer(self.ids, train, seed=self.seed, **(self.tokenizer or {}))
        self.layout_ = self._layout(n_behaviors)
        self.model_ = self._network(n_behaviors)
        augmented, _, self.augmentation_ = augment(train, self.augment_times, grid=self.augment_grid, seed=self.seed)
        config = TrainConfig(seed=self.seed, device=self.device, **(self.training or {}))
        init_distributed()
        data = self._training_data(augmented, valid, config, *rank_and_world())
        self.training_ = train_decoder(
            self.model_, data.make_batch, data.size, data.valid_batches, config, **data.options
        )
        self.trie_ = PrefixTrie.from_item_tokens(self.layout_.item_tokens, self._vocab_size())
        return self

    @torch.no_grad()
    def recommend(self, queries: Queries, k: int) -> Ranking:
        self.model_.eval()
        prepared = self._prepare(queries)
        results = []
        for start in range(0, len(queries), self.eval_batch):
            index = np.arange(start, min(start + self.eval_batch, len(queries)))
            decoder = self._step_decoder(queries, index, prepared)
            items, _ = constrained_beam_search(decoder, self.trie_, num_beams=self.num_beams, top_k=k)
            results.append(items.cpu().numpy())
        ranked = np.concatenate(results) if results else np.zeros((0, k), dtype=np.int64)
        return [row[row >= 0] for row in ranked]

    def save_artifacts(self, folder: Path) -> None:
        """Store what the run learned beside its result: the item tokenizer (JSON + npy, no pickle)."""
        self.tokenizer_.save(Path(folder) / "tokenizer")

    def describe(self) -> dict[str, Any]:
        """What the result's provenance records about the fitted model."""
        return (
            {
                "tokenizer": self.tokenizer_.describe(),
                "parameters": sum(p.numel() for p in self.model_.parameters()),
                "augmentation": str(self.augmentation_),
            }
            | self._described()
            | {"training": asdict(self.training_)}  # every epoch's record and why training stopped
        )
