"""``gamer-bench perf gamer``: training tokens/s and MFU, beam-search users/s, and the KV-cache speed-up.

Every figure comes from one run on this machine. On the CPU the peak is a measured float32 matmul,
not a datasheet number, so the MFU says how well the model uses what this machine can actually do.
With ``--device cuda`` the models train and decode under `gamer.precision` (bf16 autocast unless
``--precision fp32``), batches are 64 sequences, and the MFU is against ``--peak-tflops`` (the GPU's
dense peak at that precision, e.g. 989 for an H100 or H200 in bf16), beside the measured matmul.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tabulate import tabulate

from gamer.beam_search import PrefixTrie, constrained_beam_search
from gamer.model import DecoderConfig, GenerativeDecoder
from gamer.precision import effective as effective_precision
from gamer.precision import precision_context
from gamer.profiles import MODEL_SIZES
from gamer.recommender import ModelStepDecoder
from gamer.sequences import Ragged, TokenLayout, encode
from gamer.training import NextTokenLoss

N_BEHAVIORS, LEVELS, CODES = 3, 4, 256  # a 4 x 256 semantic-ID vocabulary over three behaviors


def measured_matmul_peak(size: int = 2048, repeat: int = 5, device: str = "cpu", dtype=torch.float32) -> float:
    """FLOP/s of this machine's best ``size x size`` matmul in ``dtype`` (all threads torch uses)."""
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b, device) for _ in range(repeat))
    return 2.0 * size**3 / best


def _timed(fn, device: str = "cpu") -> float:
    """Wall seconds of ``fn()``; on CUDA, of the kernels it launched too."""
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _catalogue(n_items: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, CODES, size=(n_items * 2, LEVELS)), axis=0)[:n_items]
    offsets = 1 + N_BEHAVIORS + CODES * np.arange(LEVELS)
    return codes + offsets


def _sequences(n_seq: int, n_inter: int, n_items: int, seed: int) -> Ragged:
    rng = np.random.default_rng(seed)
    total = n_seq * n_inter
    return Ragged(
        np.arange(0, total + 1, n_inter),
        rng.integers(0, n_items, total),
        rng.integers(0, N_BEHAVIORS, total),
        np.repeat(np.arange(total) // 4, 1),  # about four interactions per session
    )


class UncachedStepDecoder(ModelStepDecoder):
    """The same decoding as `ModelStepDecoder`, recomputing the whole sequence at every step."""

    def prefill(self) -> torch.Tensor:
        p = self.prompts
        self.columns = [p.tokens, p.levels, p.slots, p.positions, p.sessions]
        return self.model(*self.columns, last_only=True)[0][:, -1]

    def expand(self, n: int) -> None:
        self.columns = [c.repeat_interleave(n, dim=0) for c in self.columns]
        self.level, self.session, self.position = (
            t.repeat_interleave(n) for t in (self.level, self.session, self.position)
        )

    def reorder(self, index: torch.Tensor) -> None:
        self.columns = [c[index] for c in self.columns]
        self.level, self.session, self.position = (t[index] for t in (self.level, self.session, self.position))

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.slot += 1
        new = [tokens, self.level, torch.full_like(tokens, self.slot), self.position + self.slot, self.session]
        self.columns = [torch.cat([c, n[:, None]], dim=1) for c, n in zip(self.columns, new, strict=True)]
        return self.model(*self.columns, last_only=True)[0][:, -1]


class CopiedCacheDecoder(ModelStepDecoder):
    """The same decoding with every beam holding its prompt's keys and values in full (the cache before
    beams shared them: `gamer.model.SharedPrompt`), for the before/after ratio."""

    def expand(self, n: int) -> None:
        super().expand(n)
        self.cache = self.cache.expanded()


class ReplayDecoder:
    """Replays the logits a `ModelStepDecoder` gave, so a timed search costs everything but the model:
    the trie constraint, the log-softmax, the top-k sort and the beam bookkeeping."""

    def __init__(self, logits: list[torch.Tensor]) -> None:
        self.logits = iter(logits)

    def prefill(self) -> torch.Tensor:
        return next(self.logits)

    def expand(self, n: int) -> None:
        pass

    def reorder(self, index: torch.Tensor) -> None:
        pass

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return next(self.logits)


class RecordingDecoder(ModelStepDecoder):
    """A `ModelStepDecoder` that keeps every logits tensor it returns (for `ReplayDecoder`)."""

    def __init__(self, model: GenerativeDecoder, prompts) -> None:
        super().__init__(model, prompts)
        self.record: list[torch.Tensor] = []

    def prefill(self) -> torch.Tensor:
        self.record.append(super().prefill())
        return self.record[-1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.record.append(super().step(tokens))
        return self.record[-1]


def search_share(model: GenerativeDecoder, prompts, trie, total: float, repeat: int, device: str) -> float:
    """The share of a decode's ``total`` seconds spent outside the model (the replayed search's time)."""
    recording = RecordingDecoder(model, prompts)
    constrained_beam_search(recording, trie, num_beams=20, top_k=10)
    replay, _ = decoding_time(lambda *_: ReplayDecoder(recording.record), model, prompts, trie, repeat, device)
    return replay / total


def decode_flops(model: GenerativeDecoder, users: int, prompt: int, beams: int) -> float:
    """Forward FLOPs a cached beam search cannot avoid: the prompts' causal prefill, then L - 1 steps of one
    token per beam against the prompt and the tokens so far."""
    # Token t of a prompt attends t keys; flops_per_token is linear in the context, so the prefill is the
    # prompt's length at its mean context.
    prefill = users * prompt * model.flops_per_token((prompt + 1) / 2)
    return prefill + sum(users * beams * model.flops_per_token(prompt + d) for d in range(1, model.config.id_levels))


def training_rate(model: GenerativeDecoder, batch, repeat: int, device: str = "cpu", precision: str = "fp32") -> float:
    """Tokens per second of full training steps (forward, backward, AdamW), the best of ``repeat``."""
    criterion = NextTokenLoss(model, 0.7)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with precision_context(precision):
            loss = criterion.on(batch)
        loss.backward()
        optimizer.step()

    train_step()
    return batch.tokens.numel() / min(_timed(train_step, device) for _ in range(repeat))


GPU_MFU = 0.35  # the GPU projection's utilisation: the paper-scale path's goal (OneRec reports 23.7 %)


@dataclass(frozen=True)
class PaperEpoch:
    """One paper-profile GAMER epoch on a dataset: what it trains on and the vocabulary it trains with."""

    sequences: int
    tokens: int
    n_behaviors: int
    codebook_sizes: tuple[int, ...]

    @property
    def vocab_size(self) -> int:
        return 1 + self.n_behaviors + sum(self.codebook_sizes)


def paper_epoch(dataset: str) -> PaperEpoch:
    """The training sequences of one paper-profile GAMER epoch on ``dataset`` (its training split augmented
    4x and cut to 100 interactions, as `GenerativeRecommender.fit` builds them), their tokens (a behavior
    token and one per ID level each) and the item IDs' codebooks: the dataset's released SIDs, else the
    RQ-VAE's size rule (`gamer.tokenizers.rqvae_codebook_size`, without training it)."""
    from baselines import registry
    from benchmark.cells import load_dataset
    from gamer.augmentation import augment
    from gamer.sequences import training_sequences
    from gamer.tokenizers import given_semantic_ids, rqvae_codebook_size
    from protocols.splits import SessionSplit

    hp = registry.get("gamer_sid").hyperparameters("paper")
    train = SessionSplit.from_interactions(load_dataset(dataset)).train
    if train.schema.item_semantic_ids is not None:
        sizes = tuple(given_semantic_ids(train.schema).codebook_sizes)
    else:
        tok = hp["tokenizer"]
        size = rqvae_codebook_size(
            train.n_items, tok["rqvae_levels"], minimum=tok["rqvae_codebook_min"], maximum=tok["rqvae_codebook_max"]
        )
        sizes = (size,) * tok["rqvae_levels"]
    augmented, _, _ = augment(train, hp["augment_times"], grid=hp.get("augment_grid", "paper"), seed=0)
    interactions = np.diff(training_sequences(augmented, hp["max_history"]).offsets)
    tokens = int(interactions.sum()) * (1 + len(sizes))
    return PaperEpoch(len(interactions), tokens, len(train.schema.behaviors), sizes)


def epoch_projection(
    dataset: str, rate: float, recomputed_rate: float, model: GenerativeDecoder, peak_tflops: float, device: str
) -> list[list[str]]:
    """Rows projecting a paper epoch on ``dataset``, from ``model``'s measured training rates (tokens/s):
    here, at the model FLOP/s a paper micro-batch reaches on this device (recomputed where it would not
    fit, `gamer.training.needs_recompute`), and on a GPU of ``peak_tflops`` at `GPU_MFU`. The epoch's
    FLOPs are those of GAMER at paper size with the dataset's own vocabulary, at 505 tokens of context."""
    from baselines import registry
    from gamer.training import needs_recompute, resolve_device

    epoch = paper_epoch(dataset)
    micro = int(registry.get("gamer_sid").hyperparameters("paper")["training"]["micro_batch"])
    recompute = needs_recompute(model, (micro, 505), resolve_device(device))
    achieved = (recomputed_rate if recompute else rate) * 3.0 * model.flops_per_token(505)  # model FLOP/s here
    sized = GenerativeDecoder(DecoderConfig.gamer(epoch.vocab_size, epoch.n_behaviors, len(epoch.codebook_sizes)))
    flops = 3.0 * sized.flops_per_token(505) * epoch.tokens
    here, gpu = flops / achieved, flops / (peak_tflops * 1e12 * GPU_MFU)
    how = f"micro-batches of {micro}" + (", recomputed (over a quarter of memory)" if recompute else "")
    return [
        [
            f"paper epoch of {dataset}",
            f"{here / 3600:,.1f} h here",
            f"{epoch.sequences:,} sequences",
            f"{epoch.tokens:,} tokens, vocabulary {epoch.vocab_size:,}, {how}",
        ],
        [
            f"paper epoch of {dataset}, projected GPU",
            f"{gpu / 60:,.1f} min",
            f"at {100 * GPU_MFU:.0f} % MFU",
            f"{peak_tflops:,.0f} TFLOP/s peak, {flops / 1e15:,.1f} PFLOP per epoch",
        ],
    ]


def decoding_time(decoder: type[ModelStepDecoder], model, prompts, trie, repeat: int, device: str = "cpu"):
    """Best wall time of a constrained beam search (20 beams, top 10) and its result."""
    result = constrained_beam_search(decoder(model, prompts), trie, num_beams=20, top_k=10)
    best = min(
        _timed(lambda: constrained_beam_search(decoder(model, prompts), trie, num_beams=20, top_k=10), device)
        for _ in range(repeat)
    )
    return best, result


def main(
    *,
    repeat: int = 3,
    dims: str = "paper",
    device: str = "cpu",
    precision: str | None = None,
    peak_tflops: float | None = None,
    epoch_of: str | None = None,
) -> int:
    torch.manual_seed(0)
    if epoch_of and dims != "paper":
        raise ValueError("--epoch-of projects the paper profile's epoch: use it with --dims paper")
    if device != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch sees no CUDA device here")
    precision = effective_precision(precision, device != "cpu")
    # The paper's dimensions are DecoderConfig's defaults; "smoke" borrows the smoke profile's sizes.
    sizes = {} if dims == "paper" else {k: v for k, v in MODEL_SIZES["smoke"].items() if "dropout" not in k}
    n_items, history = 3000, 100
    layout = TokenLayout(N_BEHAVIORS, _catalogue(n_items, 0))
    vocab = 1 + N_BEHAVIORS + LEVELS * CODES
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    peak = measured_matmul_peak(4096 if device != "cpu" else 2048, device=device, dtype=dtype)
    rows = [[f"{precision} matmul peak, measured", f"{peak / 1e9:,.1f} GFLOP/s", "", f"device {device}"]]
    if peak_tflops:
        rows.append(["peak the MFU is against (given)", f"{peak_tflops * 1e3:,.1f} GFLOP/s", "", ""])
        peak = peak_tflops * 1e12
    n_seq = 8 if device == "cpu" else 64
    batch = encode(layout, _sequences(n_seq, history + 1, n_items, 1), session_wise=False).to(device)
    for arch in ("qwen3", "gamer"):
        for attention_dropout in (0.0, 0.2):
            config = getattr(DecoderConfig, arch)(
                vocab,
                N_BEHAVIORS,
                LEVELS,
                dropout=0.2 if arch == "gamer" else 0.0,
                attention_dropout=attention_dropout,
                **sizes,
            )
            model = GenerativeDecoder(config).to(device)
            rate = training_rate(model, batch, repeat, device, precision)
            mfu = model.estimate_mfu(rate, batch.tokens.shape[1], peak)
            rows.append(
                [
                    f"train {arch}, attention dropout {attention_dropout}, {precision}",
                    f"{rate:,.0f} tokens/s",
                    f"MFU {100 * mfu:.1f} %",
                    f"{model.num_parameters() / 1e6:.2f} M params, {n_seq} x 505 tokens",
                ]
            )
    if epoch_of:
        # The paper's GAMER (its dropouts) on a micro-batch of two attention pieces, with recomputation:
        # what a paper micro-batch trains at where it does not fit in memory as it is.
        gamer = GenerativeDecoder(DecoderConfig.gamer(vocab, N_BEHAVIORS, LEVELS, **sizes)).to(device)
        two_pieces = encode(layout, _sequences(16, history + 1, n_items, 1), session_wise=False).to(device)
        plain = training_rate(gamer, two_pieces, repeat, device, precision)
        gamer.recompute = True
        recomputed = training_rate(gamer, two_pieces, repeat, device, precision)
        rows.append(
            [
                "train gamer (paper dropouts), recomputed",
                f"{recomputed:,.0f} tokens/s",
                f"{plain / recomputed:.2f}x slower than kept",
                "16 x 505 tokens: two attention pieces",
            ]
        )
        rows += epoch_projection(epoch_of, plain, recomputed, gamer, peak_tflops or 989.0, device)
    config = DecoderConfig.gamer(vocab, N_BEHAVIORS, LEVELS, dropout=0.0, attention_dropout=0.0, **sizes)
    model = GenerativeDecoder(config).to(device).eval()
    trie = PrefixTrie.from_item_tokens(layout.item_tokens, vocab)
    users = 8 if dims == "paper" else 32  # the no-cache baseline recomputes 20 beams x 505 tokens per step
    users *= 1 if device == "cpu" else 16
    prompts = encode(
        layout,
        _sequences(users, history, n_items, 2),
        session_wise=False,
        targets="none",
        prompt_behavior=np.full(users, N_BEHAVIORS - 1),
    ).to(device)
    with torch.no_grad(), precision_context(precision):
        cached, (items_cached, _) = decoding_time(ModelStepDecoder, model, prompts, trie, repeat, device)
        uncached, (items_uncached, _) = decoding_time(UncachedStepDecoder, model, prompts, trie, 1, device)
        copied, (items_copied, _) = decoding_time(CopiedCacheDecoder, model, prompts, trie, repeat, device)
        outside = search_share(model, prompts, trie, cached, repeat, device)
    rows.append(
        [
            "beam search 20 -> top 10, KV cache",
            f"{users / cached:,.1f} users/s",
            f"{uncached / cached:.2f}x faster than no cache",
            f"{users} prompts of 501 tokens, {n_items} items; same items: {torch.equal(items_cached, items_uncached)}",
        ]
    )
    rows.append(
        [
            "beam search, prompt keys copied per beam",
            f"{users / copied:,.1f} users/s",
            f"{copied / cached:.2f}x slower than shared",
            f"the cache before beams shared their prompt's keys; same items: {torch.equal(items_cached, items_copied)}",
        ]
    )
    flops = decode_flops(model, users, history * (1 + LEVELS) + 1, 20)
    rows.append(
        [
            "beam search: outside the model",
            f"{100 * outside:.2f} % of the time",
            f"{flops / cached / peak:.0%} of the FLOP limit",
            "trie constraint, log-softmax, top-k, bookkeeping (replayed logits); FLOP limit: prefill + 3 steps",
        ]
    )
    print(tabulate(rows, headers=["what", "rate", "vs", "setting"], tablefmt="github"))
    return 0
