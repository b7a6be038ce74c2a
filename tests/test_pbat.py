"""PBAT (baselines/pbat.py): shapes, padding invariance, determinism, learning, behavior conditioning, and
hand checks of the Gaussian algebra and of the pair-batched fused attention against a brute-force version."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import random_sequence_batch

from baselines.batch import SequenceBatch
from baselines.pbat import (
    PBAT,
    Gaussian,
    neg_wasserstein,
    positive,
    sagp,
    tri_sagp,
)

N_TOKENS, N_BEHAVIORS, N_USERS, MAX_LEN = 60, 3, 12, 20
SMALL = dict(hidden_size=16, n_layers=2, n_heads=2, inner_size=32, dropout=0.2, mask_ratio=0.2)


def make_model(seed: int = 0, **overrides: float) -> PBAT:
    torch.manual_seed(seed)
    return PBAT.build(
        n_tokens=N_TOKENS, n_behaviors=N_BEHAVIORS, n_users=N_USERS, max_len=MAX_LEN, **{**SMALL, **overrides}
    )


def make_batch(lengths: list[int], pad_to: int | None = None, seed: int = 1, empty_row: bool = True) -> SequenceBatch:
    """Right-padded random histories; with empty_row the last row is an empty history (one pad, length 1)."""
    empty = "last" if empty_row else None
    return random_sequence_batch(lengths, N_TOKENS, N_BEHAVIORS, seed=seed, width=pad_to, empty=empty, n_users=N_USERS)


def padded(batch: SequenceBatch, extra: int) -> SequenceBatch:
    z = torch.zeros(batch.item.shape[0], extra, dtype=torch.long)
    return SequenceBatch(
        item=torch.cat([batch.item, z], 1),
        behavior=torch.cat([batch.behavior, z], 1),
        length=batch.length,
        user=batch.user,
        target_item=batch.target_item,
        target_behavior=batch.target_behavior,
    )


LENGTHS = [5, 12, 1, 8, 3, 1]


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float = 0.0) -> None:
    """Elementwise |a - b| <= atol + rtol |b| (torch.testing.assert_close costs seconds of imports on first use)."""
    assert a.shape == b.shape
    excess = (a - b).abs() - (atol + rtol * b.abs())
    assert excess.max() <= 0, f"max |a - b| = {(a - b).abs().max():.3g}"


def test_shapes_and_finite() -> None:
    model = make_model()
    batch = make_batch(LENGTHS)
    loss = model.loss(batch)
    assert loss.shape == () and torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        scores = model.scores(batch)
    assert scores.shape == (len(LENGTHS), N_TOKENS)
    assert torch.isfinite(scores).all()  # the empty-history row included


def test_padding_invariance() -> None:
    model = make_model().eval()
    batch = make_batch(LENGTHS)
    with torch.no_grad():
        a = model.scores(batch)
        b = model.scores(padded(batch, 7))
    assert_close(a, b, atol=1e-5, rtol=0)


def test_padding_invariance_without_trimming() -> None:
    """The key-padding mask alone keeps pads out: the same rows inside a wider batch (a longer row added)."""
    model = make_model().eval()
    batch = make_batch(LENGTHS, seed=3)
    longer = make_batch([*LENGTHS[:-1], 19, 1], seed=3)  # different widest row, same first five rows
    with torch.no_grad():
        a = model.scores(batch)[:5]
        b = model.scores(
            SequenceBatch(
                item=torch.cat([padded(batch, 19 - batch.item.shape[1]).item[:5], longer.item[5:]]),
                behavior=torch.cat([padded(batch, 19 - batch.item.shape[1]).behavior[:5], longer.behavior[5:]]),
                length=torch.cat([batch.length[:5], longer.length[5:]]),
                user=torch.cat([batch.user[:5], longer.user[5:]]),
                target_item=torch.cat([batch.target_item[:5], longer.target_item[5:]]),
                target_behavior=torch.cat([batch.target_behavior[:5], longer.target_behavior[5:]]),
            )
        )[:5]
    assert_close(a, b, atol=1e-5, rtol=0)


def test_determinism() -> None:
    batch = make_batch(LENGTHS)
    losses, scores = [], []
    for _ in range(2):
        model = make_model(seed=7)
        torch.manual_seed(11)
        losses.append(model.loss(batch))
        model.eval()
        with torch.no_grad():
            scores.append(model.scores(batch))
    assert torch.equal(losses[0], losses[1])
    assert torch.equal(scores[0], scores[1])


def test_loss_decreases() -> None:
    """40 Adam steps at lr 1e-2 on a fixed batch whose rows each repeat one item (a masked item is inferable)."""
    model = make_model(seed=3, n_layers=1)
    raw = make_batch([10, 14, 6, 9, 12, 7], empty_row=False, seed=5)
    token = (torch.arange(6) * 7 + 3)[:, None]
    batch = SequenceBatch(**{**raw.__dict__, "item": torch.where(raw.item > 0, token, 0), "target_item": token[:, 0]})

    def fixed_loss() -> float:  # same masks every time, no dropout: compare like with like
        model.eval()
        torch.manual_seed(123)
        with torch.no_grad():
            value = float(model.loss(batch))
        model.train()
        return value

    before = fixed_loss()
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(40):
        optim.zero_grad()
        model.loss(batch).backward()
        optim.step()
    after = fixed_loss()
    assert before == pytest.approx(math.log(N_TOKENS), abs=0.05)  # near-uniform at initialisation
    assert after < 0.6 * before, (before, after)


def test_gradients_reach_every_part() -> None:
    model = make_model(dropout=0.0, mask_ratio=0.5)
    torch.manual_seed(0)
    model.loss(make_batch(LENGTHS, empty_row=False)).backward()
    for name, param in model.named_parameters():
        if "norms" in name or "experts" in name:
            continue  # an expert sees only positions of its behavior; may be idle on a tiny batch
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.user.mean.table.weight.grad.abs().sum() > 0
    assert model.relation.mean.table.weight.grad.abs().sum() > 0
    assert model.pos_m.weight.grad.abs().sum() > 0


def test_behavior_conditioning() -> None:
    model = make_model().eval()
    batch = make_batch(LENGTHS)
    other = SequenceBatch(**{**batch.__dict__, "target_behavior": batch.target_behavior % N_BEHAVIORS + 1})
    with torch.no_grad():
        a, b = model.scores(batch), model.scores(other)
    assert (a - b).abs().amax(dim=1).min() > 1e-4  # every row changes


def test_user_conditioning() -> None:
    model = make_model().eval()
    batch = make_batch(LENGTHS)
    other = SequenceBatch(**{**batch.__dict__, "user": batch.user % N_USERS + 1})
    with torch.no_grad():
        assert not torch.allclose(model.scores(batch), model.scores(other))


# ----- hand checks -------------------------------------------------------------------------------------------


def test_gaussian_algebra_by_hand() -> None:
    a = Gaussian(torch.tensor([1.0]), torch.tensor([1.0]))
    b = Gaussian(torch.tensor([3.0]), torch.tensor([3.0]))
    s = sagp(a, b)  # mean (3*1 + 1*3) / 4 = 1.5, cov 2*3/4 = 1.5
    assert torch.allclose(s.mean, torch.tensor([1.5])) and torch.allclose(s.cov, torch.tensor([1.5]))
    c = Gaussian(torch.tensor([0.0]), torch.tensor([6.0]))
    t = tri_sagp(a, b, c)  # precisions 1, 1/3, 1/6 -> cov 1/1.5 = 2/3, mean (1 + 1) * 2/3 = 4/3
    assert torch.allclose(t.cov, torch.tensor([2 / 3])) and torch.allclose(t.mean, torch.tensor([4 / 3]))
    # W2 of N([0, 1], diag[1, 4]) and N([3, 1], diag[9, 4]): 9 + (1 - 3)^2 = 13
    x = Gaussian(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 4.0]]))
    y = Gaussian(torch.tensor([[3.0, 1.0]]), torch.tensor([[9.0, 4.0]]))
    assert torch.allclose(neg_wasserstein(x, y), torch.tensor([[-13.0]]))


def test_neg_wasserstein_matches_direct() -> None:
    g = torch.Generator().manual_seed(0)
    a = Gaussian(torch.randn(2, 5, 8, generator=g), torch.rand(2, 5, 8, generator=g) + 0.1)
    b = Gaussian(torch.randn(2, 7, 8, generator=g), torch.rand(2, 7, 8, generator=g) + 0.1)
    direct = (a.mean[:, :, None] - b.mean[:, None]).pow(2).sum(-1)
    direct += (a.cov[:, :, None].sqrt() - b.cov[:, None].sqrt()).pow(2).sum(-1)
    assert_close(neg_wasserstein(a, b), -direct, atol=1e-4, rtol=1e-5)


def test_scores_prefer_the_closest_item() -> None:
    """Sign check: an output Gaussian equal to an item's Gaussian makes that item the top score."""
    model = make_model().eval()
    items = Gaussian(model.item.mean.table.weight[:N_TOKENS], positive(model.item.cov.table.weight[:N_TOKENS]))
    out = Gaussian(items.mean[17:18].clone(), items.cov[17:18].clone())
    assert int(neg_wasserstein(out, items).argmax()) == 17


def brute_force_attention(att, x, typ, rel, pos, beh_idx, pad) -> Gaussian:
    """The FBA layer written directly from the paper with [B, h, L, L, d] tensors (eval mode, no dropout)."""
    bsz, seq_len, hidden = x.mean.shape
    h, d = att.n_heads, att.d_head
    qkv_m = (att.item_m(x.mean) + att.type_m(typ.mean)).chunk(3, -1)
    qkv_c = positive(att.item_c(x.cov) + att.type_c(typ.cov)).chunk(3, -1)
    q, k, v = (Gaussian(att.heads(m), att.heads(c)) for m, c in zip(qkv_m, qkv_c, strict=True))
    rows = torch.arange(bsz)[:, None, None]
    r_m = rel.mean[rows, beh_idx[:, :, None], beh_idx[:, None, :]]  # [B, L, L, H] = R(b_x, b_y)
    r_c = rel.cov[rows, beh_idx[:, :, None], beh_idx[:, None, :]]
    r_m = r_m.view(bsz, seq_len, seq_len, h, d).permute(0, 3, 1, 2, 4)  # [B, h, L, L, d]
    r_c = r_c.view(bsz, seq_len, seq_len, h, d).permute(0, 3, 1, 2, 4)
    p_m, p_c = att.heads(pos.mean), att.heads(pos.cov)  # [h, L, d]
    fq = tri_sagp(
        Gaussian(q.mean[:, :, :, None], q.cov[:, :, :, None]),  # query at x
        Gaussian(att.rel_q(r_m), r_c),
        Gaussian(att.pos_q(p_m)[:, :, None], p_c[:, :, None]),  # position of x
    )
    fk = tri_sagp(
        Gaussian(k.mean[:, :, None], k.cov[:, :, None]),  # key at y
        Gaussian(att.rel_k(r_m), r_c),
        Gaussian(att.pos_k(p_m)[:, None], p_c[:, None]),  # position of y
    )
    w2 = (fq.mean - fk.mean).pow(2).sum(-1) + (fq.cov.sqrt() - fk.cov.sqrt()).pow(2).sum(-1)
    logits = (-w2 / math.sqrt(d)).masked_fill(pad[:, None, None, :], float("-inf"))
    attn = logits.softmax(-1)
    ctx_m = (attn @ v.mean).transpose(1, 2).reshape(bsz, seq_len, hidden)
    ctx_c = (attn.pow(2) @ v.cov).transpose(1, 2).reshape(bsz, seq_len, hidden)
    return Gaussian(att.norm(x.mean + att.out_m(ctx_m)), att.norm(x.cov + att.out_c(ctx_c)))


def test_fused_attention_matches_brute_force() -> None:
    model = make_model(hidden_size=16, n_heads=2).eval()
    batch = make_batch([6, 4, 9, 1], empty_row=True, seed=9)
    item, behavior = batch.with_slot(torch.full_like(batch.length, model.mask_token), batch.target_behavior)
    with torch.no_grad():
        _, rel = model.patterns(batch.user)
        rel = Gaussian(rel.mean * 0.05, positive(torch.randn_like(rel.cov)))  # keep logits in a readable range
        x, typ = model.item(item), model.behavior(behavior)
        positions = torch.arange(item.shape[1])
        pos = Gaussian(model.pos_m(positions), positive(model.pos_c(positions)))
        beh_idx, pad = (behavior - 1).clamp(min=0), item == 0
        att = model.layers[0].attention
        fast = att(x, typ, rel, pos, beh_idx, pad)
        slow = brute_force_attention(att, x, typ, rel, pos, beh_idx, pad)
    real = ~pad
    assert_close(fast.mean[real], slow.mean[real], atol=1e-4, rtol=1e-4)
    assert_close(fast.cov[real], slow.cov[real], atol=1e-4, rtol=1e-4)


def test_relation_weights_are_negative_pattern_distances() -> None:
    model = make_model().eval()
    with torch.no_grad():
        p, rel = model.patterns(torch.tensor([3]))
        # same behavior: distance 0 -> relation mean 0 and covariance ELU(0) + 1 = 1
        for b in range(N_BEHAVIORS):
            assert torch.allclose(rel.mean[0, b, b], torch.zeros(16), atol=1e-4)  # up to cancellation in -W2
            assert torch.allclose(rel.cov[0, b, b], torch.ones(16), atol=1e-4)
        w = -((p.mean[0, 1] - p.mean[0, 2]).pow(2).sum() + (p.cov[0, 1].sqrt() - p.cov[0, 2].sqrt()).pow(2).sum())
        expected = w * model.relation.mean(torch.tensor(2))  # relation row for (b1, b2) = (0, 1) is 0 * 3 + 1 + 1
        assert_close(rel.mean[0, 0, 1], expected, atol=1e-5, rtol=1e-4)


def test_no_masked_position_still_gives_a_loss() -> None:
    model = make_model(mask_ratio=0.0)  # nothing drawn: the appended target slots are masked instead
    loss = model.loss(make_batch(LENGTHS))
    assert torch.isfinite(loss)
    loss.backward()


def test_training_sequence_appends_the_target_at_length() -> None:
    batch = make_batch([3, 5, 1], empty_row=True)
    item, behavior = batch.with_slot(batch.target_item, batch.target_behavior)
    assert item.shape == (3, 6)  # widest history (5) + the appended slot
    for row, n in enumerate(batch.length.tolist()):
        assert item[row, n] == batch.target_item[row] and behavior[row, n] == batch.target_behavior[row]
        assert (item[row, n + 1 :] == 0).all()
    assert item[2, 0] == 0 and behavior[2, 0] == 0  # the empty history keeps its pad; the target sits at 1
