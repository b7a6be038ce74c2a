"""Token sequences for the decoder-only models (user-level training, Section 3.4).

Each interaction becomes ``item_len = 1 + L`` tokens: its behavior token, then its item's L ID
tokens (vocabulary layout in `gamer.tokenizers`). Beside the token ids every position carries the
metadata the GAMER block needs: the behavior level of its interaction, its slot inside the
interaction (0 = behavior token, l = ID level l), its RoPE position and its session.

Three kinds of batch are built from ragged per-sequence arrays, all vectorised:

- training: a user's interactions before the validation session, the last ``max_history + 1``
  (history plus target); every ID token is a target (behavior tokens are inputs only, as in the
  authors' code);
- validation: a history plus one validation-session interaction; only that interaction's ID tokens
  are targets;
- prompt: a history plus the queried behavior token, left-padded for generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from protocols.interactions import Interactions
from protocols.queries import Queries, gather_ranges, ragged_rows

PAD = 0


@dataclass(frozen=True)
class TokenLayout:
    """Maps (behavior level, item) to token ids: ``item_tokens[i]`` are item i's L ID token ids."""

    n_behaviors: int
    item_tokens: np.ndarray

    @property
    def id_levels(self) -> int:
        return self.item_tokens.shape[1]

    @property
    def item_len(self) -> int:
        return 1 + self.id_levels

    def behavior_token(self, level: np.ndarray | int) -> np.ndarray | int:
        return 1 + level


@dataclass
class TokenBatch:
    """``[B, T]`` long tensors (``target_mask`` bool); pads have token 0 and metadata -1."""

    tokens: torch.Tensor
    levels: torch.Tensor
    slots: torch.Tensor
    positions: torch.Tensor
    sessions: torch.Tensor
    targets: torch.Tensor
    target_mask: torch.Tensor

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(**{k: v.to(device) for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def loss_inputs(self) -> tuple[torch.Tensor, ...]:
        """The tensors `gamer.training.NextTokenLoss` takes, in order (a flat tuple, as DDP wants)."""
        return self.tokens, self.levels, self.slots, self.positions, self.sessions, self.targets, self.target_mask

    @property
    def n_targets(self) -> int:
        return int(self.target_mask.sum())


@dataclass(frozen=True)
class Ragged:
    """Per-sequence interactions, flat: sequence s owns ``offsets[s]:offsets[s + 1]``, oldest first.
    ``behavior`` is each interaction's behavior level (`gamer.conversion`'s candidates carry its
    [MASK] level there); ``label``, where given, says whether a candidate converted (Appendix D)."""

    offsets: np.ndarray
    item: np.ndarray
    behavior: np.ndarray
    session: np.ndarray
    label: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def select(self, index: np.ndarray) -> Ragged:
        rows, offsets = gather_ranges(self.offsets[index], self.offsets[index + 1])
        label = None if self.label is None else self.label[rows]
        return Ragged(offsets, self.item[rows], self.behavior[rows], self.session[rows], label)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def training_sequences(log: Interactions, max_history: int) -> Ragged:
    """Each user's last ``max_history + 1`` interactions (history plus target), one sequence per user."""
    offsets = log.user_offsets
    present = np.flatnonzero(np.diff(offsets) > 0)
    ends = offsets[present + 1]
    starts = np.maximum(offsets[present], ends - (max_history + 1))
    rows, new_offsets = gather_ranges(starts, ends)
    session = log.session[rows] if log.session is not None else np.zeros(len(rows), dtype=np.int64)
    return Ragged(new_offsets, log.item[rows], log.behavior[rows].astype(np.int64), session)


def query_histories(queries: Queries, max_history: int) -> Ragged:
    cut = queries.last(max_history)
    return Ragged(cut.offsets, cut.item, cut.hist_behavior.astype(np.int64), cut.session)


def validation_samples(queries: Queries, max_history: int) -> tuple[Ragged, np.ndarray]:
    """One sequence per (validation query, positive item): its history plus that interaction.

    Validation queries hold, per user and behavior, the set of items done with that behavior in the
    validation session; each becomes one scored interaction, so the validation loss is the mean
    cross-entropy of the ID tokens of the validation session's distinct (behavior, item) pairs given
    the history before the session. Returns the sequences and the query index of each.
    """
    history = query_histories(queries, max_history)
    query_of = ragged_rows(queries.pos_offsets)
    base = history.select(query_of)
    lengths = base.lengths() + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    last = offsets[1:] - 1
    is_last = np.zeros(offsets[-1], dtype=bool)
    is_last[last] = True
    item = np.empty(offsets[-1], dtype=np.int64)
    behavior = np.empty(offsets[-1], dtype=np.int64)
    session = np.empty(offsets[-1], dtype=np.int64)
    item[~is_last], behavior[~is_last], session[~is_last] = base.item, base.behavior, base.session
    item[last] = queries.positives
    behavior[last] = queries.behavior[query_of]
    prev_session = np.where(base.lengths() > 0, base.session[np.maximum(base.offsets[1:] - 1, 0)], -1)
    session[last] = prev_session + 1  # the validation session comes after every history session
    return Ragged(offsets, item, behavior, session), query_of


def encode(
    layout: TokenLayout,
    seqs: Ragged,
    *,
    session_wise: bool,
    targets: str = "all",
    prompt_behavior: np.ndarray | None = None,
) -> TokenBatch:
    """Token tensors for a batch of sequences.

    ``targets``: ``"all"`` (every ID token is predicted: training), ``"last"`` (only the last
    interaction's ID tokens: validation) or ``"none"`` (prompts). With ``prompt_behavior``
    (``[B]`` levels) each sequence ends in that behavior's token and is left-padded, ready for
    generation; otherwise sequences are right-padded.

    Positions: 0, 1, ... over each sequence's tokens; in the session-wise variant (Appendix C,
    Eq. 8) ``session_index * item_len + slot``, so the interactions of one session share positions.
    """
    item_len = layout.item_len
    n_seq = len(seqs)
    n_rows = len(seqs.item)
    seq_of_row = ragged_rows(seqs.offsets)
    # Session index inside each window (0, 1, ... in order), as the authors' extended session ids:
    # positions start at 0 in any window, and sessions thinned away by augmentation leave no gap.
    opens = np.ones(n_rows, dtype=bool)
    opens[1:] = (seqs.session[1:] != seqs.session[:-1]) | (seq_of_row[1:] != seq_of_row[:-1])
    running = np.cumsum(opens) - 1
    rel_session = running - running[np.minimum(seqs.offsets[:-1], max(n_rows - 1, 0))][seq_of_row]
    tokens = np.concatenate([layout.behavior_token(seqs.behavior)[:, None], layout.item_tokens[seqs.item]], axis=1)
    slot = np.broadcast_to(np.arange(item_len), (n_rows, item_len))
    order_in_seq = np.arange(n_rows) - seqs.offsets[seq_of_row]
    position = (rel_session if session_wise else order_in_seq)[:, None] * item_len + slot
    columns = {
        "tokens": tokens,
        "levels": np.repeat(seqs.behavior[:, None], item_len, axis=1),
        "slots": slot,
        "positions": position,
        "sessions": np.repeat(rel_session[:, None], item_len, axis=1),
    }
    lengths = seqs.lengths() * item_len
    flat_seq = np.repeat(seq_of_row, item_len)
    flat = {k: np.asarray(v).reshape(-1) for k, v in columns.items()}
    if prompt_behavior is not None:
        # Append the prompt: the queried behavior's token, in a new session, at the next position.
        prompt_behavior = np.asarray(prompt_behavior, dtype=np.int64)
        n_items_seq = seqs.lengths()
        last_rel = np.full(n_seq, -1, dtype=np.int64)
        has = n_items_seq > 0
        last_rel[has] = rel_session[seqs.offsets[1:][has] - 1]
        prompt = {
            "tokens": layout.behavior_token(prompt_behavior),
            "levels": prompt_behavior,
            "slots": np.zeros(n_seq, dtype=np.int64),
            "positions": (last_rel + 1) * item_len if session_wise else n_items_seq * item_len,
            "sessions": last_rel + 1,
        }
        # Insert each prompt token right after its sequence's tokens.
        insert_at = np.cumsum(lengths)
        flat = {k: np.insert(v, insert_at, prompt[k]) for k, v in flat.items()}
        flat_seq = np.insert(flat_seq, insert_at, np.arange(n_seq))
        lengths = lengths + 1
    width = int(lengths.max()) if n_seq else 0
    token_offsets = np.concatenate([[0], np.cumsum(lengths)])
    within = np.arange(len(flat_seq)) - token_offsets[flat_seq]
    column = within + (width - lengths[flat_seq] if prompt_behavior is not None else 0)
    out = {}
    for key, values in flat.items():
        fill = PAD if key == "tokens" else -1
        grid = np.full((n_seq, width), fill, dtype=np.int64)
        grid[flat_seq, column] = values
        out[key] = torch.from_numpy(grid)
    next_tokens = torch.full_like(out["tokens"], PAD)
    next_tokens[:, :-1] = out["tokens"][:, 1:]
    next_slot = torch.full_like(out["slots"], -1)
    next_slot[:, :-1] = out["slots"][:, 1:]
    if targets == "all":
        mask = next_slot >= 1
    elif targets == "last":
        # The last interaction's ID tokens are predicted from the token before each of them.
        last_start = torch.from_numpy(lengths - item_len)[:, None]
        idx = torch.arange(width)[None, :]
        mask = (next_slot >= 1) & (idx + 1 >= last_start) & (idx + 1 < torch.from_numpy(lengths)[:, None])
    elif targets == "none":
        mask = torch.zeros_like(next_slot, dtype=torch.bool)
    else:
        raise ValueError(f"targets must be 'all', 'last' or 'none', got {targets!r}")
    return TokenBatch(**out, targets=next_tokens, target_mask=mask)
