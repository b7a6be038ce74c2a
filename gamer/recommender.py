"""The decoder-only generative rows (GAMER, Qwen3 and their session-wise variants) on the shared
generative estimator (`gamer.estimator`): user-level training (Section 3.4) on the augmented sequences
(Section 3.3), and each query's prompt (history + the queried behavior token) decoded by the
trie-constrained beam search (beam 20, top 10 distinct items, Section 4.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gamer.estimator import GenerativeEstimator, TrainingData
from gamer.model import DecoderConfig, GenerativeDecoder
from gamer.sequences import (
    Ragged,
    TokenBatch,
    TokenLayout,
    encode,
    query_histories,
    training_sequences,
    validation_samples,
)
from gamer.training import TrainConfig
from protocols.interactions import Interactions
from protocols.queries import Queries

ARCHITECTURES = ("qwen3", "gamer", "gamer_every_block")


class ModelStepDecoder:
    """Drives a `GenerativeDecoder` with its KV cache through beam search's step protocol.

    Generated tokens belong to the prompt's interaction: its behavior level and session, slots
    1..L, and positions following the prompt token's.
    """

    def __init__(self, model: GenerativeDecoder, prompts: TokenBatch) -> None:
        self.model = model
        self.prompts = prompts
        self.level = prompts.levels[:, -1]
        self.session = prompts.sessions[:, -1]
        self.position = prompts.positions[:, -1]
        self.slot = 0
        self.cache = None

    def prefill(self) -> torch.Tensor:
        p = self.prompts
        logits, self.cache = self.model(
            p.tokens, p.levels, p.slots, p.positions, p.sessions, use_cache=True, last_only=True
        )
        return logits[:, -1]

    def expand(self, n: int) -> None:
        self.cache = self.cache.repeat_interleave(n)
        self.level, self.session, self.position = (
            t.repeat_interleave(n) for t in (self.level, self.session, self.position)
        )

    def reorder(self, index: torch.Tensor) -> None:
        self.cache = self.cache.reorder(index)
        self.level, self.session, self.position = (t[index] for t in (self.level, self.session, self.position))

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.slot += 1
        column = [
            tokens,
            self.level,
            torch.full_like(tokens, self.slot),
            self.position + self.slot,
            self.session,
        ]
        logits, self.cache = self.model(*(c[:, None] for c in column), cache=self.cache, use_cache=True)
        return logits[:, -1]


@dataclass(kw_only=True, eq=False)
class GenerativeRecommender(GenerativeEstimator):
    """A decoder-only generative recommender (``architecture``: ``gamer``, ``gamer_every_block`` or
    ``qwen3``; ``session_wise``: Appendix C's session-wise causal attention); profiles in ``gamer/gamer.toml``.
    Trains user-level (Section 3.4): one sequence per user, the loss on every ID token."""

    architecture: str = "gamer"
    session_wise: bool = False
    augment_times: int = 4
    max_history: int = 100

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")

    def _layout(self, n_behaviors: int) -> TokenLayout:
        return TokenLayout(n_behaviors, self.tokenizer_.token_ids(n_behaviors))

    def _network(self, n_behaviors: int) -> GenerativeDecoder:
        preset = getattr(DecoderConfig, self.architecture)
        config = preset(
            vocab_size=self.tokenizer_.vocab_size(n_behaviors),
            n_behaviors=n_behaviors,
            id_levels=self.tokenizer_.levels,
            session_wise=self.session_wise,
            **(self.model or {}),
        )
        return GenerativeDecoder(config)

    def _training_data(
        self, augmented: Interactions, valid: Queries, config: TrainConfig, rank: int, world: int
    ) -> TrainingData:
        sequences = training_sequences(augmented, self.max_history)
        samples, _ = validation_samples(valid, self.max_history)
        chunks = np.array_split(np.arange(len(samples)), max(world, len(samples) // config.micro_batch))
        valid_batches = [  # under torchrun each rank scores its share; the loss is reduced over ranks
            encode(self.layout_, samples.select(chunk), session_wise=self.session_wise, targets="last")
            for chunk in chunks[rank::world]
        ]
        return TrainingData(
            lambda index: encode(self.layout_, sequences.select(index), session_wise=self.session_wise),
            len(sequences),
            valid_batches,
        )

    def _vocab_size(self) -> int:
        return self.model_.config.vocab_size

    def _prepare(self, queries: Queries) -> Ragged:
        return query_histories(queries, self.max_history)

    def _step_decoder(self, queries: Queries, index: np.ndarray, prepared: Ragged) -> ModelStepDecoder:
        prompts = encode(
            self.layout_,
            prepared.select(index),
            session_wise=self.session_wise,
            targets="none",
            prompt_behavior=queries.behavior[index].astype(np.int64),
        ).to(self.device)
        return ModelStepDecoder(self.model_, prompts)
