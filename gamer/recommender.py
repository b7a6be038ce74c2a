"""The decoder-only generative rows (GAMER, Qwen3 and their session-wise variants) as Recommenders.

``fit`` builds the item tokenizer from the training split, augments the training sequences
(Section 3.3), trains user-level (Section 3.4) with the lowest-validation-loss checkpoint kept, and
``recommend`` decodes each query's prompt (history + the queried behavior token) with the
trie-constrained beam search (beam 20, top 10 distinct items, Section 4.1.3).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gamer.augmentation import augment
from gamer.beam_search import PrefixTrie, constrained_beam_search
from gamer.model import DecoderConfig, GenerativeDecoder
from gamer.sequences import TokenBatch, TokenLayout, encode, query_histories, training_sequences, validation_samples
from gamer.tokenizers import build_tokenizer
from gamer.training import TrainConfig, init_distributed, rank_and_world, train_decoder
from protocols.interactions import Interactions
from protocols.model import Ranking, Recommender
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


class GenerativeRecommender(Recommender):
    """A decoder-only generative recommender; hyperparameters per profile live in `gamer.profiles`."""

    def __init__(
        self,
        *,
        seed: int = 0,
        architecture: str = "gamer",
        session_wise: bool = False,
        ids: str = "sid",
        tokenizer: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        augment_times: int = 4,
        augment_grid: str = "paper",
        max_history: int = 100,
        num_beams: int = 20,
        eval_batch: int = 64,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            seed=seed,
            architecture=architecture,
            session_wise=session_wise,
            ids=ids,
            tokenizer=tokenizer or {},
            model=model or {},
            training=training or {},
            augment_times=augment_times,
            augment_grid=augment_grid,
            max_history=max_history,
            num_beams=num_beams,
            eval_batch=eval_batch,
            device=device,
        )
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.architecture = architecture
        self.session_wise = session_wise
        self.ids = ids
        self.augment_times = augment_times
        self.augment_grid = augment_grid
        self.max_history = max_history
        self.num_beams = num_beams
        self.eval_batch = eval_batch
        self.device = device

    def _config(self, vocab_size: int, n_behaviors: int, id_levels: int) -> DecoderConfig:
        preset = getattr(DecoderConfig, self.architecture)
        return preset(
            vocab_size=vocab_size,
            n_behaviors=n_behaviors,
            id_levels=id_levels,
            session_wise=self.session_wise,
            **self.hyperparameters["model"],
        )

    def fit(self, train: Interactions, valid: Queries) -> GenerativeRecommender:
        torch.manual_seed(self.seed)
        n_behaviors = len(train.schema.behaviors)
        self.tokenizer_ = build_tokenizer(self.ids, train, seed=self.seed, **self.hyperparameters["tokenizer"])
        self.layout_ = TokenLayout(n_behaviors, self.tokenizer_.token_ids(n_behaviors))
        config = self._config(self.tokenizer_.vocab_size(n_behaviors), n_behaviors, self.tokenizer_.levels)
        self.model_ = GenerativeDecoder(config)
        augmented, _, self.augmentation_ = augment(train, self.augment_times, grid=self.augment_grid, seed=self.seed)
        sequences = training_sequences(augmented, self.max_history)
        samples, _ = validation_samples(valid, self.max_history)
        train_config = TrainConfig(seed=self.seed, device=self.device, **self.hyperparameters["training"])
        init_distributed()
        rank, world = rank_and_world()
        chunks = np.array_split(np.arange(len(samples)), max(world, len(samples) // train_config.micro_batch))
        valid_batches = [  # under torchrun each rank scores its share; the loss is reduced over ranks
            encode(self.layout_, samples.select(chunk), session_wise=self.session_wise, targets="last")
            for chunk in chunks[rank::world]
        ]
        self.training_ = train_decoder(
            self.model_,
            lambda index: encode(self.layout_, sequences.select(index), session_wise=self.session_wise),
            len(sequences),
            valid_batches,
            train_config,
        )
        self.trie_ = PrefixTrie.from_item_tokens(self.layout_.item_tokens, config.vocab_size)
        return self

    @torch.no_grad()
    def recommend(self, queries: Queries, k: int) -> Ranking:
        self.model_.eval()
        histories = query_histories(queries, self.max_history)
        results = []
        for start in range(0, len(queries), self.eval_batch):
            index = np.arange(start, min(start + self.eval_batch, len(queries)))
            prompts = encode(
                self.layout_,
                histories.select(index),
                session_wise=self.session_wise,
                targets="none",
                prompt_behavior=queries.behavior[index].astype(np.int64),
            ).to(self.device)
            items, _ = constrained_beam_search(
                ModelStepDecoder(self.model_, prompts), self.trie_, num_beams=self.num_beams, top_k=k
            )
            results.append(items.cpu().numpy())
        ranked = np.concatenate(results) if results else np.zeros((0, k), dtype=np.int64)
        return [row[row >= 0] for row in ranked]

    def save_artifacts(self, folder: Path) -> None:
        """Store what the run learned beside its result: the item tokenizer (JSON + npy, no pickle)."""
        self.tokenizer_.save(Path(folder) / "tokenizer")

    def describe(self) -> dict[str, Any]:
        """What the result's provenance records about the fitted model."""
        return {
            "tokenizer": {"name": self.tokenizer_.name, "codebook_sizes": list(self.tokenizer_.codebook_sizes)}
            | {k: v for k, v in self.tokenizer_.meta.items() if isinstance(v, int | float | str)},
            "parameters": self.model_.num_parameters(),
            "augmentation": str(self.augmentation_),
            "training": asdict(self.training_),  # every epoch's record and why training stopped
        }
