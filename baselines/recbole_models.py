"""GRU4Rec, SASRec and BERT4Rec from RecBole 1.2.1, fed our batches (the `SequenceBatch` contract).

Only RecBole's model classes are used: each is built from a plain dict config and a one-method
dataset stand-in (all its constructors ask of a dataset is the item count), and trained and tested
by `baselines.discriminative`, never by RecBole's Config, data pipeline or trainer (those parse
``sys.argv``, set ``CUDA_VISIBLE_DEVICES`` and need numpy-1 shims: ``../shared/reference/recbole-probe.md``).

RecBole's batch keys are ``item_id_list`` [B, L] (right-padded, 0 = padding), ``item_length`` [B]
and ``item_id`` [B] (the target); our tokens are RecBole's item ids (item index + 1, or one token
per (behavior, item) pair in the ``_b`` variants), so a batch maps one to one.

Where we depart from RecBole (decisions, per Appendix A and the models' papers):

- BERT4Rec's Cloze masks are drawn here, per *sequence* (the BERT4Rec paper's "samples that only
  mask the last item"), where RecBole decides per batch: a sequence of history + target has, with
  probability ``ft_ratio``, only its last item (the target) masked, and otherwise each item masked
  with probability ``mask_ratio`` (the last one if the draw masked none, so no sequence is wasted).
  The authors' code put the last-item mask one position too far (on padding, dropping most such
  sequences from the loss): a bug we do not copy.
- BERT4Rec at test time: RecBole's ``full_sort_predict`` appends the mask and then drops the first
  column, which silently discards the oldest history item of every sequence; we append the mask
  after the last real item instead, with one more position (``MAX_ITEM_LIST_LENGTH = max_len + 1``),
  and read the output there with RecBole's own layers.
- The loss is RecBole's full-softmax cross-entropy (``loss_type = "CE"``), as every config of the
  authors; the padding column is never recommended (`baselines.discriminative.TokenSpace`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.batch import SequenceBatch, SequentialModule, cloze_mask

_RECBOLE_FIELDS = {
    "USER_ID_FIELD": "user_id",
    "ITEM_ID_FIELD": "item_id",
    "LIST_SUFFIX": "_list",
    "ITEM_LIST_LENGTH_FIELD": "item_length",
    "NEG_PREFIX": "neg_",
    "loss_type": "CE",
    "device": torch.device("cpu"),
}


def _recbole_class(name: str) -> type[nn.Module]:
    anomaly = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    try:
        from recbole.model import sequential_recommender
    except ImportError as error:
        raise ImportError(
            f"the {name} row needs RecBole: `pip install --no-deps recbole==1.2.1` (without its dependencies: "
            "its ray pin breaks current environments; the project declares what its model classes import; README)"
        ) from error
    finally:
        # Importing RecBole's sequential models runs sine.py, which turns on autograd anomaly detection
        # for the whole process (a traceback per op: training ran up to 30x slower); put it back.
        torch.autograd.set_detect_anomaly(*anomaly)
    return getattr(sequential_recommender, name)


class _ItemCount:
    """The one dataset method RecBole's sequential constructors call: the item count, padding included."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def num(self, field: str) -> int:
        return self.n_items


class RecBoleSequential(SequentialModule):
    """A RecBole next-item model (GRU4Rec, SASRec) behind the `SequenceBatch` contract.

    Its input is the item tokens only: behaviors, users and the queried behavior are not seen
    (a ``_b`` variant sees behaviors through its tokens).
    """

    recbole_name: ClassVar[str]
    # The loss encodes each distinct history once: the trainer then keeps a session's targets together.
    encodes_each_history_once: ClassVar[bool] = True

    def __init__(self, *, n_tokens: int, n_behaviors: int, n_users: int, max_len: int, **hyperparameters: Any):
        super().__init__()
        config = _RECBOLE_FIELDS | {"MAX_ITEM_LIST_LENGTH": self.positions(max_len)} | hyperparameters
        self.net = _recbole_class(self.recbole_name)(config, _ItemCount(n_tokens))

    @staticmethod
    def positions(max_len: int) -> int:
        return max_len

    @staticmethod
    def _interaction(batch: SequenceBatch) -> dict[str, Tensor]:
        return {"item_id_list": batch.item, "item_length": batch.length, "item_id": batch.target_item}

    def loss(self, batch: SequenceBatch) -> Tensor:
        """RecBole's CE loss (``calculate_loss``), each distinct history encoded once.

        The input is the history alone, so every target of one session has the same one; the trainer
        orders an epoch by session (`encodes_each_history_once`), and a batch of 256 targets holds ~60
        histories on `synthetic`. The loss is RecBole's, term for term; only a dropout mask is now
        shared by the targets of one history.
        """
        rows = torch.cat([batch.item, batch.length[:, None]], dim=1)
        distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)
        hidden = self.net.forward(distinct[:, :-1], distinct[:, -1])[inverse]
        logits = hidden @ self.net.item_embedding.weight.T
        return self.net.loss_fct(logits, batch.target_item)

    def scores(self, batch: SequenceBatch) -> Tensor:
        """``[B, n_tokens]``: RecBole's full-sort scores (column 0 = padding, masked by the caller)."""
        return self.net.full_sort_predict(self._interaction(batch))


class GRU4Rec(RecBoleSequential):
    """GRU4Rec (Hidasi et al., 2016): item embedding -> GRU -> dense, scored against item embeddings."""

    recbole_name = "GRU4Rec"


class SASRec(RecBoleSequential):
    """SASRec (Kang and McAuley, 2018): causal self-attention over item + position embeddings."""

    recbole_name = "SASRec"


class BERT4Rec(RecBoleSequential):
    """BERT4Rec (Sun et al., 2019): bidirectional self-attention trained by Cloze (masked items).

    Masks and the test-time mask slot are placed here (module docstring); the network and its
    output layers (``output_ffn`` -> GELU -> LayerNorm, dot with item embeddings + ``output_bias``)
    are RecBole's.
    """

    recbole_name = "BERT4Rec"
    encodes_each_history_once = False  # the target is an input (the Cloze slot)

    def __init__(
        self,
        *,
        n_tokens: int,
        n_behaviors: int,
        n_users: int,
        max_len: int,
        ft_ratio: float = 0.5,
        **hyperparameters: Any,
    ):
        # RecBole reads these keys but only uses them to name fields of its own data transform.
        names = {"MASK_ITEM_SEQ": "mask_seq", "POS_ITEMS": "pos", "NEG_ITEMS": "neg", "MASK_INDEX": "mask_index"}
        super().__init__(
            n_tokens=n_tokens, n_behaviors=n_behaviors, n_users=n_users, max_len=max_len, **names, **hyperparameters
        )
        self.ft_ratio = ft_ratio
        self.mask_ratio = self.net.mask_ratio
        self.mask_token = n_tokens  # RecBole's item embedding has n_items + 1 rows; the last is [MASK]

    @staticmethod
    def positions(max_len: int) -> int:
        return max_len + 1  # history + the target (training) or the mask slot (test)

    def _logits(self, hidden: Tensor) -> Tensor:
        """``[..., H]`` output states -> ``[..., n_tokens]`` scores (RecBole's output layer)."""
        net = self.net
        return hidden @ net.item_embedding.weight[: net.n_items].T + net.output_bias

    def loss(self, batch: SequenceBatch) -> Tensor:
        """Cross-entropy at the masked positions of history + target (masks in the module docstring)."""
        sequence, _ = batch.with_slot(batch.target_item, batch.target_behavior)
        last_only = torch.rand(len(batch), device=sequence.device) < self.ft_ratio
        # Fine-tune rows draw from no position, so cloze_mask gives them their last item (the target).
        masked = cloze_mask((sequence != 0) & ~last_only[:, None], batch.length, self.mask_ratio)
        hidden = self.net.forward(sequence.masked_fill(masked, self.mask_token))
        return F.cross_entropy(self._logits(hidden[masked]), sequence[masked])

    def scores(self, batch: SequenceBatch) -> Tensor:
        """Scores read at a [MASK] slot appended after each history (no history item dropped)."""
        sequence, _ = batch.with_slot(torch.full_like(batch.length, self.mask_token), batch.target_behavior)
        hidden = self.net.forward(sequence)
        return self._logits(hidden[torch.arange(len(batch), device=sequence.device), batch.length])
