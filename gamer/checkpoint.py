"""Training checkpoints, so that a killed cell resumes where it stood instead of restarting.

`gamer-bench run` opens a `checkpointing` context around each cell it computes; the training loops
inside it (`gamer.training.train_decoder`: GAMER, Qwen3, the encoder-decoder rows, DLRM and the
conversion ranker; `baselines.discriminative`: the discriminative and graph rows) then

- start from the checkpoint when one exists and was written for the same key (the cell's whole
  configuration), and ignore (and replace) one written for another;
- write one atomically (a temporary file, then a rename) at every epoch end, and, in
  `train_decoder`, after any step once ``minutes`` have passed since the last write.

A checkpoint holds the weights, the optimiser and scheduler states, every random state the loop
draws from (numpy's generator, torch's CPU generator and, when present, CUDA's), where training stood
(the epoch, the step within it and that epoch's order of samples) and the best weights so far, so on
the CPU a resumed run gives the result of an uninterrupted one. It is read with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only, never code.
Outside a `checkpointing` context the loops write nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MINUTES = 10.0
# torch is imported where a checkpoint is read or written: the runner opens this context around every
# cell, data-only ones included, and must not import torch for them.


@dataclass
class Checkpointing:
    """Where one cell's training checkpoint lives, what it must match, and how often it is written."""

    path: Path
    key: str
    minutes: float = DEFAULT_MINUTES
    resumed: bool = False  # whether training started from a checkpoint
    writes: int = 0
    last_write: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    earlier_s: float = 0.0  # seconds the cell ran before it was killed (from the checkpoint it resumed)

    def spent_s(self) -> float:
        """Seconds this cell has run, killed runs before this one included."""
        return self.earlier_s + time.monotonic() - self.started

    def due(self) -> bool:
        """Whether ``minutes`` have passed since the last write (or since training started)."""
        return time.monotonic() - self.last_write >= self.minutes * 60

    @property
    def progress_path(self) -> Path:
        return progress_path(self.path)

    def report(self, record: dict[str, Any]) -> None:
        """Tell the run where training stands (one small JSON, rewritten each epoch): `gamer-bench run`
        shows the running cells' epochs on its bar when cells run in several processes."""
        self.progress_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.progress_path.with_name(f".tmp-{self.progress_path.name}.{os.getpid()}")
        partial.write_text(json.dumps(record))
        os.replace(partial, self.progress_path)

    def load(self) -> dict[str, Any] | None:
        """The checkpoint written for this key, or None (none there, or one of another configuration)."""
        if not self.path.exists():
            return None
        import torch

        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        self.resumed = True
        self.earlier_s = float(state.get("spent_s", 0.0))
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (and this key) atomically: a reader never sees a torn file."""
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".tmp-{self.path.name}.{os.getpid()}")
        torch.save(state | {"key": self.key, "spent_s": self.spent_s()}, partial)
        os.replace(partial, self.path)
        self.writes += 1
        self.last_write = time.monotonic()


def progress_path(checkpoint: Path) -> Path:
    """Where the cell checkpointing to ``checkpoint`` tells its last epoch (``<profile>-seed<S>.progress.json``)."""
    return checkpoint.with_suffix(".progress.json")


_active: ContextVar[Checkpointing | None] = ContextVar("gamer_bench_checkpointing", default=None)


@contextlib.contextmanager
def checkpointing(path: Path, key: str, minutes: float = DEFAULT_MINUTES) -> Iterator[Checkpointing]:
    """Training loops inside this context resume from and write to the checkpoint at ``path``."""
    if minutes <= 0:
        raise ValueError(f"checkpoint minutes must be > 0, got {minutes}")
    token = _active.set(Checkpointing(Path(path), key, minutes))
    try:
        yield _active.get()
    finally:
        _active.reset(token)


def active() -> Checkpointing | None:
    """The checkpointing of the cell being computed, or None outside `checkpointing`."""
    return _active.get()


def random_states(rng: np.random.Generator) -> dict[str, Any]:
    """Every random state a training loop draws from, in a form ``weights_only`` loading accepts."""
    import torch

    states: dict[str, Any] = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(rng: np.random.Generator, states: dict[str, Any]) -> None:
    import torch

    rng.bit_generator.state = states["numpy"]
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
