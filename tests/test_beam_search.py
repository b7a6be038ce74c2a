"""Trie-constrained beam search (`gamer.beam_search`): the flattened trie by hand, beam search against
brute force over every item path, padding, ties, the decoder protocol and a property test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gamer.beam_search import (
    PrefixTrie,
    TableDecoder,
    constrained_beam_search,
    constrained_beam_search_chunked,
)

# --- helpers ---


def catalogue(
    rng: np.random.Generator, sizes: list[int], n_items: int, base: int = 3, extra: int = 2
) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """``n_items`` distinct random code tuples over levels of ``sizes`` codes, as global token ids.

    Level l uses ``[offset_l, offset_l + C_l)`` with ``offset_0 = base``; ``extra`` tokens follow.
    Returns ``(item_tokens [n, L], vocab_size, level_ranges)``.
    """
    flat = rng.choice(int(np.prod(sizes)), size=n_items, replace=False)
    codes = np.stack(np.unravel_index(flat, sizes), axis=1).astype(np.int64)
    offsets = base + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ranges = [(int(o), int(c)) for o, c in zip(offsets, sizes, strict=True)]
    return codes + offsets, int(base + sum(sizes) + extra), ranges


def brute_force_scores(item_tokens: np.ndarray, num_prompts: int, vocab: int, **kw) -> torch.Tensor:
    """``[B, n_items]``: every item's full-path log-probability, each path replayed through the decoder."""
    items = torch.as_tensor(item_tokens)
    n, depth = items.shape
    dec = TableDecoder(num_prompts, vocab, **kw)
    total = torch.log_softmax(dec.prefill(), dim=-1)[:, items[:, 0]]  # [B, n]
    dec.expand(n)  # row b * n + i follows item i for prompt b
    for level in range(1, depth):
        logp = torch.log_softmax(dec.step(items[:, level - 1].repeat(num_prompts)), dim=-1).view(num_prompts, n, -1)
        total = total + logp.gather(2, items[:, level].expand(num_prompts, n)[..., None]).squeeze(-1)
    return total


def check_result(items: torch.Tensor, scores: torch.Tensor, brute: torch.Tensor, top_k: int) -> None:
    """Valid, distinct, sorted, padded only at the tail and only as far as the catalogue is short."""
    n_prompts, n_items = brute.shape
    assert items.shape == scores.shape == (n_prompts, top_k)
    n_valid = min(top_k, n_items)
    assert (items[:, :n_valid] >= 0).all() and (items[:, :n_valid] < n_items).all()
    assert (items[:, n_valid:] == -1).all() and torch.isneginf(scores[:, n_valid:]).all()
    for b in range(n_prompts):
        row = items[b, :n_valid]
        assert len(set(row.tolist())) == n_valid
        assert torch.allclose(scores[b, :n_valid], brute[b, row], atol=1e-5)
        assert (scores[b, :n_valid].diff() <= 0).all()


# --- the flattened trie ---


def test_trie_by_hand() -> None:
    # Level 0 codes are tokens 4, 5; level 1 codes are tokens 8, 9 (vocabulary of 10).
    trie = PrefixTrie.from_item_tokens(np.array([[5, 8], [4, 9], [4, 8]]), 10, [(4, 2), (8, 2)])
    assert trie.depth == 2 and trie.num_items == 3 and trie.num_nodes == [1, 2, 3]
    assert trie.allowed[0].tolist() == [[True, True]]
    assert trie.child[0].tolist() == [[0, 1]]  # prefix (4) is node 0, (5) node 1
    assert trie.allowed[1].tolist() == [[True, True], [True, False]]
    assert trie.child[1].tolist() == [[0, 1], [2, -1]]  # leaves (4,8), (4,9), (5,8)
    assert trie.leaf_item.tolist() == [2, 1, 0]
    # CSR: children of node n are indptr[n] .. indptr[n+1]-1, with these codes.
    assert trie.levels[1].indptr.tolist() == [0, 2, 3] and trie.levels[1].codes.tolist() == [0, 1, 0]
    assert trie.levels[1].max_degree == 2
    paths = torch.tensor([[4, 8], [4, 9], [5, 8], [5, 9], [8, 4], [0, 0]])
    assert trie.lookup(paths).tolist() == [2, 1, 0, -1, -1, -1]


def test_trie_csr_only_matches_dense() -> None:
    tokens, vocab, ranges = catalogue(np.random.default_rng(0), [4, 3, 5], 30)
    dense = PrefixTrie.from_item_tokens(tokens, vocab, ranges)
    sparse = PrefixTrie.from_item_tokens(tokens, vocab, ranges, dense_limit=0)
    assert all(a is not None for a in dense.allowed) and all(a is None for a in sparse.allowed)
    for lv_d, lv_s in zip(dense.levels, sparse.levels, strict=True):
        for n in range(lv_d.num_nodes):  # same (code, child) edges, in code order
            dense_codes = torch.nonzero(lv_d.allowed[n]).flatten()
            run = torch.arange(lv_s.indptr[n], lv_s.indptr[n + 1])
            assert torch.equal(lv_s.codes[run], dense_codes) and torch.equal(lv_d.child[n, dense_codes], run)
            codes, child, valid = lv_s.candidates(torch.tensor([n]))  # the padded CSR run
            assert torch.equal(codes[0, valid[0]], dense_codes) and torch.equal(child[0, valid[0]], run)
    assert sparse.lookup(torch.as_tensor(tokens)).tolist() == list(range(30))


def test_trie_default_ranges() -> None:
    trie = PrefixTrie.from_item_tokens([[4, 9], [6, 8]], 10)
    assert [(lv.offset, lv.size) for lv in trie.levels] == [(4, 3), (8, 2)]


def test_trie_rejects_collisions() -> None:
    with pytest.raises(ValueError, match=r"not unique.*items 1 and 3 both have tokens \(4, 9\)"):
        PrefixTrie.from_item_tokens([[4, 8], [4, 9], [5, 8], [4, 9]], 10, [(4, 2), (8, 2)])


def test_trie_rejects_out_of_range_tokens() -> None:
    with pytest.raises(ValueError, match=r"item 1 level 1: token 7 not in \[8, 10\)"):
        PrefixTrie.from_item_tokens([[4, 8], [4, 7]], 10, [(4, 2), (8, 2)])
    with pytest.raises(ValueError, match=r"outside the vocabulary"):
        PrefixTrie.from_item_tokens([[4, 8]], 9, [(4, 2), (8, 2)])
    with pytest.raises(ValueError, match=r"non-empty"):
        PrefixTrie.from_item_tokens(np.zeros((0, 2), dtype=np.int64), 9)
    with pytest.raises(ValueError, match=r"2 level ranges for 3 levels"):
        PrefixTrie.from_item_tokens([[4, 8, 9]], 10, [(4, 2), (8, 2)])


# --- beam search against brute force ---


@pytest.mark.parametrize("dense_limit", [1 << 22, 0])
def test_exact_when_beams_cover_the_catalogue(dense_limit: int) -> None:
    tokens, vocab, ranges = catalogue(np.random.default_rng(1), [3, 3, 3], 15)
    trie = PrefixTrie.from_item_tokens(tokens, vocab, ranges, dense_limit=dense_limit)
    items, scores = constrained_beam_search(TableDecoder(6, vocab, seed=3), trie, num_beams=16, top_k=10)
    brute = brute_force_scores(tokens, 6, vocab, seed=3)
    check_result(items, scores, brute, 10)
    best = torch.argsort(brute, dim=1, descending=True, stable=True)[:, :10]  # no ties with these logits
    assert torch.equal(items, best)


def test_fewer_beams_than_items() -> None:
    tokens, vocab, ranges = catalogue(np.random.default_rng(2), [5, 4, 6, 3], 200)
    trie = PrefixTrie.from_item_tokens(tokens, vocab, ranges)
    items, scores = constrained_beam_search(TableDecoder(8, vocab, seed=5), trie, num_beams=6, top_k=4)
    check_result(items, scores, brute_force_scores(tokens, 8, vocab, seed=5), 4)


def test_fewer_items_than_top_k() -> None:
    tokens, vocab, ranges = catalogue(np.random.default_rng(3), [2, 3], 4)
    trie = PrefixTrie.from_item_tokens(tokens, vocab, ranges)
    items, scores = constrained_beam_search(TableDecoder(3, vocab), trie, num_beams=20, top_k=10)
    check_result(items, scores, brute_force_scores(tokens, 3, vocab), 10)
    assert (items[:, :4].sort(dim=1).values == torch.arange(4)).all()
    assert (items[:, 4:] == -1).all()


def test_single_level_needs_no_step() -> None:
    trie = PrefixTrie.from_item_tokens([[5], [3], [4]], 6, [(3, 3)])
    spy = SpyDecoder(2, 6)
    items, scores = constrained_beam_search(spy, trie, num_beams=5, top_k=5)
    assert [c[0] for c in spy.calls] == ["prefill"]
    check_result(items, scores, brute_force_scores(np.array([[5], [3], [4]]), 2, 6), 5)


def test_deterministic_and_tie_rule() -> None:
    tokens, vocab, ranges = catalogue(np.random.default_rng(4), [4, 4, 4], 40)
    trie = PrefixTrie.from_item_tokens(tokens, vocab, ranges)
    runs = [constrained_beam_search(TableDecoder(5, vocab, tie_levels=2), trie, num_beams=7, top_k=7) for _ in "ab"]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    check_result(*runs[0], brute_force_scores(tokens, 5, vocab, tie_levels=2), 7)
    # All-equal logits: ties go to the better parent beam, then the smaller code, so the result is
    # the catalogue in lexicographic order of the item's tokens.
    items, _ = constrained_beam_search(ConstantDecoder(2, vocab), trie, num_beams=7, top_k=7)
    lexicographic = np.lexsort(tokens.T[::-1])[:7]
    assert items.tolist() == [lexicographic.tolist()] * 2


def test_minus_inf_logit_still_valid() -> None:
    # The model puts -inf on token 9, the last token of item 1: item 1 stays a valid result, last.
    trie = PrefixTrie.from_item_tokens([[4, 8], [4, 9], [5, 8]], 10, [(4, 2), (8, 2)])
    items, scores = constrained_beam_search(MaskedDecoder(2, 10, banned=9), trie, num_beams=4, top_k=4)
    assert (items[:, 2:] == torch.tensor([1, -1])).all()
    assert torch.isneginf(scores[:, 2:]).all() and torch.isfinite(scores[:, :2]).all()


def test_chunked_matches_one_call() -> None:
    tokens, vocab, ranges = catalogue(np.random.default_rng(5), [4, 5, 3], 50)
    trie = PrefixTrie.from_item_tokens(tokens, vocab, ranges)
    whole = constrained_beam_search(TableDecoder(7, vocab, seed=1), trie, num_beams=5, top_k=3)

    def make(start: int, stop: int) -> TableDecoder:
        return TableDecoder(stop - start, vocab, seed=1, prompt_ids=torch.arange(start, stop))

    chunked = constrained_beam_search_chunked(make, 7, trie, batch_size=3, num_beams=5, top_k=3)
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])


def test_argument_and_decoder_errors() -> None:
    trie = PrefixTrie.from_item_tokens([[4, 8], [4, 9], [5, 8]], 10, [(4, 2), (8, 2)])
    with pytest.raises(ValueError, match=r"top_k \(5\) must be <= num_beams \(4\)"):
        constrained_beam_search(TableDecoder(1, 10), trie, num_beams=4, top_k=5)
    with pytest.raises(ValueError, match=r"prefill\(\) returned logits of shape \(1, 11\), expected \[B, 10\]"):
        constrained_beam_search(TableDecoder(1, 11), trie)
    with pytest.raises(ValueError, match="NaN"):
        constrained_beam_search(MaskedDecoder(1, 10, banned=9, fill=float("nan")), trie, num_beams=4, top_k=2)


# --- the decoder protocol ---


class SpyDecoder(TableDecoder):
    """Records every protocol call with the shapes it saw."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.calls: list[tuple] = []

    def prefill(self) -> torch.Tensor:
        self.calls.append(("prefill", self.hash.shape[0]))
        return super().prefill()

    def expand(self, n: int) -> None:
        self.calls.append(("expand", n))
        super().expand(n)

    def reorder(self, index: torch.Tensor) -> None:
        self.calls.append(("reorder", index.clone(), self.hash.shape[0]))
        super().reorder(index)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls.append(("step", tuple(tokens.shape)))
        return super().step(tokens)


class ConstantDecoder(TableDecoder):
    def _logits(self) -> torch.Tensor:
        return torch.zeros(self.hash.shape[0], self.vocab_size)


class MaskedDecoder(TableDecoder):
    def __init__(self, *args, banned: int, fill: float = float("-inf"), **kw) -> None:
        super().__init__(*args, **kw)
        self.banned, self.fill = banned, fill

    def _logits(self) -> torch.Tensor:
        logits = super()._logits()
        logits[:, self.banned] = self.fill
        return logits


def test_protocol_calls() -> None:
    tokens, vocab, ranges = catalogue(np.random.default_rng(6), [3, 4, 3, 4], 60)
    trie = PrefixTrie.from_item_tokens(tokens, vocab, ranges)
    spy = SpyDecoder(4, vocab)
    constrained_beam_search(spy, trie, num_beams=5, top_k=3)
    names = [c[0] for c in spy.calls]
    # One step per level but the last: prefill, expand, step, then (reorder, step) per middle level.
    assert names == ["prefill", "expand", "step", "reorder", "step", "reorder", "step"]
    assert spy.calls[0] == ("prefill", 4) and spy.calls[1] == ("expand", 5)
    assert all(c == ("step", (20,)) for c in spy.calls if c[0] == "step")
    for _, index, rows in (c for c in spy.calls if c[0] == "reorder"):
        assert rows == 20 and index.shape == (20,) and index.dtype == torch.int64
        assert torch.equal(index // 5, torch.arange(20) // 5)  # a beam's parent belongs to the same prompt


# --- property test ---


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    data=st.data(),
    n_prompts=st.integers(1, 3),
    num_beams=st.integers(1, 6),
    tie_levels=st.sampled_from([None, 2, 5]),
    dense=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_valid_distinct(
    sizes: list[int], data, n_prompts: int, num_beams: int, tie_levels: int | None, dense: bool, seed: int
) -> None:
    n_items = data.draw(st.integers(1, int(np.prod(sizes))))
    top_k = data.draw(st.integers(1, num_beams))
    tokens, vocab, ranges = catalogue(np.random.default_rng(seed), sizes, n_items)
    trie = PrefixTrie.from_item_tokens(tokens, vocab, ranges, dense_limit=1 << 22 if dense else 0)
    kw = {"seed": seed, "tie_levels": tie_levels}
    items, scores = constrained_beam_search(
        TableDecoder(n_prompts, vocab, **kw), trie, num_beams=num_beams, top_k=top_k
    )
    brute = brute_force_scores(tokens, n_prompts, vocab, **kw)
    check_result(items, scores, brute, top_k)
    if num_beams >= n_items:  # nothing pruned: the best scores exactly (compared as values, ties allowed)
        n_valid = min(top_k, n_items)
        best = brute.sort(dim=1, descending=True).values[:, :n_valid]
        assert torch.allclose(scores[:, :n_valid], best, atol=1e-5)
