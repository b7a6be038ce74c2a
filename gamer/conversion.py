"""GAMER as a behavior predictor: the conversion variant of Appendix D (``gamer_rank`` in Table 10).

What the paper says: each interaction is laid out item first, then behavior (HSTU order); item ID
tokens and behavior tokens come from two vocabularies; the GAMER backbone is unchanged; two heads
predict the next ID token and the behavior; at inference the candidate's behavior token is
``[MASK]`` and the behavior head, conditioned on it, gives the conversion probability. The authors
released no code for it (reference notes §10). What we chose where the appendix is silent:

- **Tokens.** ``[id_1 .. id_L, b]`` per interaction. The two vocabularies are disjoint row ranges
  of one embedding table (pad, the behavior tokens, ``[MASK]``, then the ID tokens): a lookup
  never mixes rows, so this is two vocabularies to the model. The ID head is tied to the ID rows
  and scores ID tokens only; the behavior head is its own linear layer over the behaviors.
- **[MASK] as a behavior level.** A candidate's tokens carry a level one above the conversion
  level, so the cross-level behavior layer (Eq. 3: keys of strictly lower levels) lets a candidate
  read every earlier exposure and conversion, and the injected behavior embedding (Eq. 5) tells
  its ID tokens that their behavior is unknown.
- **Where the behavior is read.** At the ``[MASK]`` token: its output, after seeing the history
  and the candidate's ID tokens, goes through the behavior head. Training therefore shows the
  model ``[MASK]`` blocks too (below); a behavior token in the history is always the true one.
- **History behaviors as targets** (``history_behaviors``, on by default). The next-token objective
  over both vocabularies also asks each history interaction's last ID token for the behavior token
  that follows it. GAMER tells ID tokens their interaction's level (expert injection, Eq. 5; the
  cross-level layer's embeddings and mask, Eqs. 2-3), which would hand that position its own label.
  So a history interaction's ID tokens take the ``[MASK]`` level, exactly as a candidate's do, and
  only its behavior token keeps the true level: the predicting position is blind to the label, and
  every later token still reads the behavior token. In the cross-level layer, which keys on levels,
  these ID tokens then act as a candidate's do: they read every earlier behavior token, and no
  token reads them there (none lies above ``[MASK]``), so that layer sees the history's behaviors
  through its behavior tokens; self-attention still sees every token. Scoring encodes histories the
  same way, so that a candidate reads the history as training showed it.
- **One pass per user, many candidates.** A training row is a user's last ``max_history``
  training interactions (true behaviors) followed by one ``[id_1 .. id_L, MASK]`` block per item
  exposed in each of those sessions (bar the first, which has no history in the window). A
  history token attends causally to the history; a candidate block attends to the history of
  strictly earlier sessions and to itself, never to another candidate, and its positions continue
  where that history ends. Scoring lays out a query's history and its candidates the same way, so
  a candidate's probability does not depend on which other candidates share its pass.
- **Loss.** Next-ID-token cross-entropy over the history (the generative part, on the ID head)
  plus ``behavior_weight`` times the cross-entropy of each ``[MASK]``'s behavior (exposure only, or
  converted) and, with history behaviors on, of each history interaction's behavior. The checkpoint
  with the best validation AUROC is kept (`gamer.training.train_decoder` with ``validate``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gamer.model import DecoderConfig, GenerativeDecoder
from gamer.sequences import Ragged
from gamer.tokenizers import build_tokenizer
from gamer.training import TrainConfig, resolve_device, train_decoder
from protocols.conversion import CONVERSION_BEHAVIORS, ConversionQueries, SessionCandidates, check_conversion_log
from protocols.interactions import Interactions
from protocols.metrics import auroc
from protocols.model import ConversionModel
from protocols.queries import gather_ranges, ragged_rows

N_BEHAVIORS = len(CONVERSION_BEHAVIORS)
MASK_LEVEL = N_BEHAVIORS  # the level of a candidate whose behavior is hidden: above every real one
MASK_TOKEN = 1 + MASK_LEVEL  # behavior tokens are 1 + level, so [MASK] follows the real ones
ARCHITECTURES = ("gamer", "qwen3", "gamer_every_block")


@dataclass(frozen=True)
class ConversionLayout:
    """Token ids of the conversion variant: pad 0, behaviors 1..|B|, [MASK], then ``item_tokens``."""

    item_tokens: np.ndarray  # [n_items, L] global ids of each item's ID tokens
    vocab_size: int

    @property
    def id_levels(self) -> int:
        return self.item_tokens.shape[1]

    @property
    def item_len(self) -> int:
        return self.id_levels + 1

    @property
    def id_offset(self) -> int:
        """Global id of the first ID token: the ID head scores ``vocab_size - id_offset`` tokens."""
        return 1 + MASK_TOKEN


@dataclass
class RankBatch:
    """``[B, T]`` tensors of histories followed by candidate blocks; pads have token 0, metadata -1.

    ``blocks`` is 0 for history tokens, c >= 1 for the c-th candidate block of a row, -1 for pads.
    ``id_targets`` (ID-vocabulary index) is read where ``id_mask``; behavior targets ``labels`` where
    ``behavior_mask``: at every [MASK] token (``mask_slots``), and with history behaviors on, at each
    history token followed by a behavior token.
    """

    tokens: Tensor
    levels: Tensor
    slots: Tensor
    positions: Tensor
    sessions: Tensor
    blocks: Tensor
    id_targets: Tensor
    id_mask: Tensor
    labels: Tensor
    behavior_mask: Tensor
    mask_slots: Tensor

    def to(self, device: torch.device | str) -> RankBatch:
        return RankBatch(**{k: v.to(device) for k, v in self.__dict__.items()})

    def loss_inputs(self) -> tuple[Tensor, ...]:
        """What `RankLoss.forward` takes, in its order."""
        return (
            self.tokens,
            self.levels,
            self.slots,
            self.positions,
            self.sessions,
            self.blocks,
            self.id_targets,
            self.id_mask,
            self.labels,
            self.behavior_mask,
            self.mask_slots,
        )

    @property
    def n_targets(self) -> int:
        return int(self.id_mask.sum() + self.behavior_mask.sum())


def encode(
    layout: ConversionLayout, history: Ragged, candidates: Ragged, *, history_behaviors: bool = False
) -> RankBatch:
    """Row r = ``history`` row r, then one ``[id_1 .. id_L, MASK]`` block per candidate of row r.

    Targets: every history token followed by an ID token predicts it (ID head); every [MASK] token
    predicts its candidate's label, and with ``history_behaviors`` every history token followed by a
    behavior token predicts that behavior (behavior head; the next-token objective over both vocabularies).

    With ``history_behaviors`` the history's ID tokens also take level `MASK_LEVEL`, as a candidate's
    do, and only the behavior tokens keep the true level: the last ID token, which predicts the
    behavior, could otherwise read its label from its own level (module docstring). This changes the
    inputs, not only the targets, so scoring passes the value that training used.

    A candidate of session s takes positions after the history interactions of sessions before s.
    Vectorised: every interaction is placed with one fancy-indexed write.
    """
    k = layout.item_len
    n_rows = len(history.offsets) - 1
    n_hist, n_cand = np.diff(history.offsets), np.diff(candidates.offsets)
    width = k * max(int((n_hist + n_cand).max(initial=0)), 1)
    hist_row, cand_row = ragged_rows(history.offsets), ragged_rows(candidates.offsets)
    hist_slot = np.arange(len(hist_row)) - history.offsets[hist_row]  # interaction index in its row
    cand_index = np.arange(len(cand_row)) - candidates.offsets[cand_row]
    # Positions: a candidate continues after the history of its row's earlier sessions.
    big = int(max(history.session.max(initial=0), candidates.session.max(initial=0))) + 1
    hist_key = hist_row * big + history.session
    before = np.searchsorted(hist_key, cand_row * big + candidates.session, side="left") - history.offsets[cand_row]

    def tokens_of(items: np.ndarray, last: np.ndarray) -> np.ndarray:
        return np.concatenate([layout.item_tokens[items], last[:, None]], axis=1)

    hist_levels = np.repeat(history.behavior[:, None], k, 1)
    if history_behaviors:
        hist_levels[:, : layout.id_levels] = MASK_LEVEL  # hide the label from the position that predicts it
    slot_pattern = np.append(np.arange(1, layout.id_levels + 1), 0)
    within = np.arange(k)
    columns = {
        "tokens": (
            tokens_of(history.item, 1 + history.behavior),
            tokens_of(candidates.item, np.full(len(cand_row), MASK_TOKEN)),
        ),
        "levels": (hist_levels, np.full((len(cand_row), k), MASK_LEVEL)),
        "slots": (np.broadcast_to(slot_pattern, (len(hist_row), k)), np.broadcast_to(slot_pattern, (len(cand_row), k))),
        "positions": (hist_slot[:, None] * k + within, before[:, None] * k + within),
        "sessions": (np.repeat(history.session[:, None], k, 1), np.repeat(candidates.session[:, None], k, 1)),
        "blocks": (np.zeros((len(hist_row), k)), np.repeat(1 + cand_index[:, None], k, 1)),
    }
    rows = np.concatenate([np.repeat(hist_row, k), np.repeat(cand_row, k)])
    cols = np.concatenate(
        [(hist_slot[:, None] * k + within).ravel(), ((n_hist[cand_row] + cand_index)[:, None] * k + within).ravel()]
    )
    out = {}
    for name, (h, c) in columns.items():
        matrix = np.full((n_rows, width), 0 if name == "tokens" else -1, dtype=np.int64)
        matrix[rows, cols] = np.concatenate([np.asarray(h).ravel(), np.asarray(c).ravel()])
        out[name] = torch.from_numpy(matrix)
    # Targets: inside the history, every token whose successor is an ID token predicts it.
    tokens, slots, blocks = out["tokens"], out["slots"], out["blocks"]
    next_is_id = (blocks[:, 1:] == 0) & (slots[:, 1:] > 0)
    id_mask = torch.zeros_like(tokens, dtype=torch.bool)
    id_mask[:, :-1] = next_is_id & (blocks[:, :-1] == 0)
    id_targets = torch.zeros_like(tokens)
    id_targets[:, :-1] = torch.where(id_mask[:, :-1], tokens[:, 1:] - layout.id_offset, 0)
    mask_slots = tokens == MASK_TOKEN
    labels = torch.zeros_like(tokens)
    if candidates.label is not None:
        label_matrix = np.zeros((n_rows, width), dtype=np.int64)
        label_matrix[cand_row, (n_hist[cand_row] + cand_index) * k + layout.id_levels] = candidates.label
        labels = torch.from_numpy(label_matrix)
    behavior_mask = mask_slots.clone()
    if history_behaviors:
        before_behavior = (blocks[:, :-1] == 0) & (blocks[:, 1:] == 0) & (slots[:, 1:] == 0)
        behavior_mask[:, :-1] |= before_behavior
        labels[:, :-1] = torch.where(before_behavior, out["levels"][:, 1:], labels[:, :-1])
    return RankBatch(
        **out,
        id_targets=id_targets,
        id_mask=id_mask,
        labels=labels,
        behavior_mask=behavior_mask,
        mask_slots=mask_slots,
    )


def conversion_attention(blocks: Tensor, sessions: Tensor) -> Tensor:
    """``[B, T, T]``: history tokens attend causally to the history; a candidate block attends to the
    history of strictly earlier sessions and causally to its own tokens. Pads attend nothing."""
    t = blocks.size(1)
    index = torch.arange(t, device=blocks.device)
    causal = (index[None, :] <= index[:, None])[None]
    key_history = (blocks == 0)[:, None, :]
    query_history = (blocks == 0)[:, :, None]
    query_candidate = (blocks > 0)[:, :, None]
    earlier = sessions[:, None, :] < sessions[:, :, None]
    same_block = blocks[:, None, :] == blocks[:, :, None]
    return (key_history & ((query_history & causal) | (query_candidate & earlier))) | (
        query_candidate & same_block & causal
    )


class GamerConversionNet(nn.Module):
    """The GAMER backbone with two heads: next ID token (tied to the ID rows) and behavior."""

    def __init__(self, config: DecoderConfig, id_offset: int) -> None:
        super().__init__()
        self.decoder = GenerativeDecoder(config)
        self.behavior_head = nn.Linear(config.d_model, N_BEHAVIORS, bias=True)
        self.id_offset = id_offset

    def hidden(
        self, tokens: Tensor, levels: Tensor, slots: Tensor, positions: Tensor, sessions: Tensor, blocks: Tensor
    ) -> Tensor:
        allowed = conversion_attention(blocks, sessions)
        return self.decoder.hidden_states(tokens, levels, slots, positions, sessions, allowed=allowed)

    def id_logits(self, hidden: Tensor) -> Tensor:
        return F.linear(hidden, self.decoder.embed_tokens.weight[self.id_offset :])

    def behavior_logits(self, hidden: Tensor) -> Tensor:
        return self.behavior_head(hidden)

    def num_parameters(self) -> int:
        return self.decoder.num_parameters() + sum(p.numel() for p in self.behavior_head.parameters())


class RankLoss(nn.Module):
    """Summed next-ID-token cross-entropy (on logits / temperature) plus ``behavior_weight`` times the
    summed behavior cross-entropy at the behavior targets; a module so that DDP can wrap it."""

    def __init__(self, net: GamerConversionNet, temperature: float, behavior_weight: float) -> None:
        super().__init__()
        self.net = net
        self.temperature = temperature
        self.behavior_weight = behavior_weight

    def forward(
        self, tokens, levels, slots, positions, sessions, blocks, id_targets, id_mask, labels, behavior_mask, mask_slots
    ):
        hidden = self.net.hidden(tokens, levels, slots, positions, sessions, blocks)
        id_loss = F.cross_entropy(
            self.net.id_logits(hidden[id_mask]) / self.temperature, id_targets[id_mask], reduction="sum"
        )
        behavior = F.cross_entropy(
            self.net.behavior_logits(hidden[behavior_mask]), labels[behavior_mask], reduction="sum"
        )
        return id_loss + self.behavior_weight * behavior


def training_rows(train: Interactions, max_history: int) -> tuple[Ragged, Ragged]:
    """One row per user: the last ``max_history`` training interactions, and as candidates the items
    exposed in every session that starts inside that window after its first row."""
    offsets = train.user_offsets
    end = offsets[1:]
    start = np.maximum(offsets[:-1], end - max_history)
    rows, hist_offsets = gather_ranges(start, end)
    history = Ragged(hist_offsets, train.item[rows], train.behavior[rows].astype(np.int64), train.session[rows])
    sessions = SessionCandidates.of_rows(train, np.arange(len(train)))
    width = int(train.session.max()) + 1
    first_row = np.searchsorted(train.user * width + train.session, sessions.user * width + sessions.session)
    keep = np.flatnonzero(first_row > start[sessions.user])
    cand, _ = gather_ranges(sessions.offsets[keep], sessions.offsets[keep + 1])
    owner = np.repeat(sessions.user[keep], np.diff(sessions.offsets)[keep])
    cand_offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=train.n_users))]).astype(np.int64)
    candidates = Ragged(
        cand_offsets,
        sessions.items[cand],
        np.full(len(cand), MASK_LEVEL),
        np.repeat(sessions.session[keep], np.diff(sessions.offsets)[keep]),
        sessions.labels[cand].astype(np.int64),
    )
    return history, candidates


def query_rows(queries: ConversionQueries, max_history: int, chunk: int) -> tuple[Ragged, Ragged]:
    """Rows for scoring: each query's last ``max_history`` history interactions, and its candidates in
    pieces of at most ``chunk`` (a query with many candidates takes several rows). The candidates
    keep their order, so the rows' [MASK] tokens, read row by row, line up with ``queries.candidates``."""
    cut = queries.queries.last(max_history)
    cand_query = queries.candidate_query
    piece = (np.arange(queries.n_candidates) - queries.cand_offsets[cand_query]) // chunk
    row_key, row_first = np.unique(cand_query * (queries.n_candidates + 1) + piece, return_index=True)
    row_query = row_key // (queries.n_candidates + 1)
    hist, hist_offsets = gather_ranges(cut.offsets[row_query], cut.offsets[row_query + 1])
    history = Ragged(hist_offsets, cut.item[hist], cut.hist_behavior[hist].astype(np.int64), cut.session[hist])
    cand_offsets = np.append(row_first, queries.n_candidates).astype(np.int64)  # candidates are grouped by row already
    candidates = Ragged(
        cand_offsets,
        queries.candidates,
        np.full(queries.n_candidates, MASK_LEVEL),
        queries.session[cand_query],
        queries.labels.astype(np.int64),
    )
    return history, candidates


def select_rows(history: Ragged, candidates: Ragged, index: np.ndarray) -> tuple[Ragged, Ragged]:
    """Rows ``index`` of a (history, candidates) pair."""
    return history.select(index), candidates.select(index)


@dataclass(kw_only=True, eq=False)
class GamerConversion(ConversionModel):
    """``gamer_rank``: GAMER trained and read as a conversion predictor (module docstring). Hyperparameters
    are stored as given (scikit-learn's convention, as `gamer.estimator.GenerativeEstimator`'s)."""

    seed: int = 0
    architecture: str = "gamer"
    ids: str = "sid"
    tokenizer: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    max_history: int = 100
    behavior_weight: float = 1.0
    history_behaviors: bool = True
    eval_batch: int = 64
    candidates_per_pass: int = 64
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")

    def fit(self, train: Interactions, valid: ConversionQueries) -> GamerConversion:
        check_conversion_log(train)
        torch.manual_seed(self.seed)
        n_tokens = N_BEHAVIORS + 1  # the behavior tokens and [MASK]
        self.tokenizer_ = build_tokenizer(self.ids, train, seed=self.seed, **(self.tokenizer or {}))
        self.layout_ = ConversionLayout(self.tokenizer_.token_ids(n_tokens), self.tokenizer_.vocab_size(n_tokens))
        preset = getattr(DecoderConfig, self.architecture)
        config = preset(
            vocab_size=self.layout_.vocab_size,
            n_behaviors=N_BEHAVIORS + 1,  # the [MASK] level is one more level for the cross layer and the MoE
            id_levels=self.layout_.id_levels,
            **(self.model or {}),
        )
        self.net_ = GamerConversionNet(config, self.layout_.id_offset)
        self.device_ = resolve_device(self.device)
        train_config = TrainConfig(seed=self.seed, device=str(self.device_), **(self.training or {}))
        history, candidates = training_rows(train, self.max_history)
        criterion = RankLoss(self.net_, train_config.temperature, self.behavior_weight)
        self.valid_curve_: list[float] = []

        def validate() -> float:
            value = auroc(self.score(valid), valid.labels)
            self.valid_curve_.append(value)
            return 1.0 - value

        self.training_ = train_decoder(
            self.net_,
            lambda index: encode(
                self.layout_, *select_rows(history, candidates, index), history_behaviors=self.history_behaviors
            ),
            len(history.offsets) - 1,
            [],
            train_config,
            criterion=criterion,
            validate=validate,
        )
        self.train_summary_ = {
            "rows": len(history.offsets) - 1,
            "history_interactions": len(history.item),
            "candidates": len(candidates.item),
            "conversions": int(candidates.label.sum()),
        }
        return self

    @torch.no_grad()
    def score(self, queries: ConversionQueries) -> np.ndarray:
        self.net_.eval()
        history, candidates = query_rows(queries, self.max_history, self.candidates_per_pass)
        n_rows = len(history.offsets) - 1
        scores = []
        for start in range(0, n_rows, self.eval_batch):
            index = np.arange(start, min(start + self.eval_batch, n_rows))
            rows = select_rows(history, candidates, index)
            batch = encode(self.layout_, *rows, history_behaviors=self.history_behaviors).to(self.device_)
            hidden = self.net_.hidden(
                batch.tokens, batch.levels, batch.slots, batch.positions, batch.sessions, batch.blocks
            )
            logits = self.net_.behavior_logits(hidden[batch.mask_slots])  # row-major: rows, then their blocks
            scores.append(torch.softmax(logits.float(), -1)[:, 1].cpu().numpy())
        return np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)

    def save_artifacts(self, folder) -> None:
        self.tokenizer_.save(folder / "tokenizer")

    def describe(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer_.describe(),
            "parameters": self.net_.num_parameters(),
            "training": asdict(self.training_),  # every epoch's record and why training stopped
            "valid_auroc": 1.0 - self.training_.best_valid_loss,
            "train_rows": self.train_summary_,
        }
