"""Item tokenizers (gamer.tokenizers) and their collaborative input embeddings (gamer.embeddings).

Hand cases for the vocabulary layout, CIDs, collisions and files; statistical checks for the
RQ-VAE (on Gaussian blobs) and the embeddings (on the synthetic log, whose SIDs are the truth).
Thresholds leave wide margins around the values measured at seed 0, noted next to each check.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gamer.embeddings import collaborative_embeddings
from gamer.profiles import decoder_profiles
from gamer.tokenizers import (
    CODE_SPACE_PER_ITEM,
    MAX_COLLISION_RATE,
    ItemTokenizer,
    RQVAEConfig,
    add_disambiguation_level,
    build_tokenizer,
    chunked_ids,
    given_semantic_ids,
    rqvae_codebook_size,
    sid_collision_problem,
    train_rqvae,
)
from protocols.interactions import Interactions
from protocols.splits import SessionSplit
from protocols.synthetic import SyntheticConfig, generate

pytestmark = pytest.mark.usefixtures("one_thread")


# -- CIDs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_items", "levels"), [(1, 1), (64, 1), (65, 2), (4096, 2), (4097, 3)])
def test_cid_uses_the_fewest_base64_digits(n_items: int, levels: int) -> None:
    tokenizer = chunked_ids(n_items)
    assert tokenizer.levels == levels
    assert tokenizer.codebook_sizes == (64,) * levels
    assert tokenizer.name == "cid-64"
    assert tokenizer.is_unique()


def test_cid_writes_the_most_significant_digit_first() -> None:
    np.testing.assert_array_equal(chunked_ids(66).codes[65], [1, 1])  # 65 = 1 * 64 + 1
    np.testing.assert_array_equal(chunked_ids(66).codes[64], [1, 0])
    np.testing.assert_array_equal(chunked_ids(4097).codes[4096], [1, 0, 0])  # 4096 = 64**2
    np.testing.assert_array_equal(chunked_ids(5000).codes[4999], [4999 // 64**2, (4999 // 64) % 64, 4999 % 64])
    # Most significant first: sorting the code rows lexicographically keeps item order.
    codes = chunked_ids(5000).codes
    assert (np.lexsort(codes.T[::-1]) == np.arange(5000)).all()


def test_cid_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_items"):
        chunked_ids(0)
    with pytest.raises(ValueError, match="base"):
        chunked_ids(10, base=1)


# -- vocabulary layout -------------------------------------------------------------------------------------


def test_token_ids_follow_the_shared_layout() -> None:
    tokenizer = ItemTokenizer("hand", np.array([[0, 0], [3, 7], [1, 2]]), (4, 8))
    # |B| = 3: pad 0, behaviors 1..3, level 0 at 1 + 3 = 4, level 1 at 4 + 4 = 8.
    assert tokenizer.level_offsets(3) == (4, 8)
    assert tokenizer.vocab_size(3) == 1 + 3 + (4 + 8)
    np.testing.assert_array_equal(tokenizer.token_ids(3), [[4, 8], [7, 15], [5, 10]])
    assert tokenizer.token_ids(3).dtype == np.int64
    assert tokenizer.token_ids(3).max() == tokenizer.vocab_size(3) - 1


def test_levels_never_share_token_ids() -> None:
    tokenizer = chunked_ids(5000)
    ids = tokenizer.token_ids(4)
    for level in range(tokenizer.levels - 1):
        assert ids[:, level].max() < tokenizer.level_offsets(4)[level + 1] <= ids[:, level + 1].min()


def test_tokenizer_validates_codes_and_freezes_them() -> None:
    with pytest.raises(ValueError, match="level 1 holds codes 0..8, outside 0..7"):
        ItemTokenizer("bad", np.array([[0, 8], [1, 0]]), (4, 8))
    with pytest.raises(ValueError, match="2 code levels but 1 codebook sizes"):
        ItemTokenizer("bad", np.array([[0, 0]]), (4,))
    with pytest.raises(ValueError, match="integers"):
        ItemTokenizer("bad", np.array([[0.0, 1.0]]), (4, 8))
    source = np.array([[0, 1], [1, 0]])
    tokenizer = ItemTokenizer("ok", source, (2, 2))
    source[0, 0] = 1  # the tokenizer keeps its own copy
    assert tokenizer.codes[0, 0] == 0
    with pytest.raises(ValueError, match="read-only"):
        tokenizer.codes[0, 0] = 1


# -- collisions --------------------------------------------------------------------------------------------

COLLIDING = np.array([[0, 0], [0, 0], [1, 0], [1, 1], [1, 1], [2, 2]])


def test_collision_rate_counts_items_sharing_a_full_code() -> None:
    tokenizer = ItemTokenizer("hand", COLLIDING, (3, 3))
    assert tokenizer.collision_rate() == pytest.approx(4 / 6)  # items 0, 1 share (0, 0); items 3, 4 share (1, 1)
    assert not tokenizer.is_unique()
    assert chunked_ids(10).collision_rate() == 0.0


def test_disambiguation_numbers_each_colliding_group_in_item_order() -> None:
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [1, 1]])
    new, sizes = add_disambiguation_level(codes)
    np.testing.assert_array_equal(new[:, :2], codes)
    np.testing.assert_array_equal(new[:, 2], [0, 1, 0, 2, 0])  # unique items (2, 4) get 0
    assert sizes == (3, 4, 3)  # max code + 1 per level, then the largest group
    assert add_disambiguation_level(codes, (8, 8))[1] == (8, 8, 3)
    assert ItemTokenizer("d", new, sizes).is_unique()


def test_disambiguation_of_unique_codes_appends_zeros() -> None:
    codes = np.array([[0, 1], [1, 0], [1, 1]])
    new, sizes = add_disambiguation_level(codes)
    np.testing.assert_array_equal(new[:, 2], [0, 0, 0])
    assert sizes == (2, 2, 1)


@settings(deadline=None, max_examples=60)
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 40), st.integers(1, 3)), elements=st.integers(0, 2)))
def test_disambiguation_always_gives_unique_codes_that_keep_the_prefix(codes: np.ndarray) -> None:
    new, sizes = add_disambiguation_level(codes)
    tokenizer = ItemTokenizer("property", new, sizes)
    assert tokenizer.is_unique()
    np.testing.assert_array_equal(new[:, :-1], codes)
    np.testing.assert_array_equal(tokenizer.item_of_codes(new), np.arange(len(codes)))


def test_largest_group_and_collision_rate_are_recorded_before_disambiguation() -> None:
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [1, 1], [2, 3], [3, 0]])
    # By hand: (0, 1) holds items 0, 1, 3; (2, 3) items 2, 5; (1, 1) and (3, 0) one item each.
    meta = given_semantic_ids(codes).meta
    assert meta["collision_rate_before"] == pytest.approx((3 + 2) / 7)
    assert meta["largest_group_before"] == 3
    assert chunked_ids(10).meta["largest_group_before"] == 1


def test_given_semantic_ids_keep_unique_codes_as_they_are() -> None:
    sid = np.array([[0, 2, 1], [1, 0, 0], [0, 2, 0]])
    tokenizer = given_semantic_ids(sid)
    np.testing.assert_array_equal(tokenizer.codes, sid)
    assert tokenizer.codebook_sizes == (2, 3, 2)  # max code + 1 per level
    assert tokenizer.name == "sid-given"
    assert tokenizer.meta["collision_rate_before"] == 0.0
    assert tokenizer.meta["disambiguation_level"] is False


def test_given_semantic_ids_that_collide_get_a_disambiguation_level() -> None:
    tokenizer = given_semantic_ids(COLLIDING)
    assert tokenizer.levels == 3
    assert tokenizer.codebook_sizes == (3, 3, 2)
    assert tokenizer.is_unique()
    assert tokenizer.meta["collision_rate_before"] == pytest.approx(4 / 6)
    assert tokenizer.meta["collision_rate_after"] == 0.0


def test_given_semantic_ids_need_semantic_ids() -> None:
    schema = replace(generate(SyntheticConfig(n_users=5)).schema, item_semantic_ids=None)
    with pytest.raises(ValueError, match="ships no semantic IDs; use kind 'rqvae' or 'cid'"):
        given_semantic_ids(schema)
    with pytest.raises(ValueError, match="negative"):
        given_semantic_ids(np.array([[0, -1]]))


# -- look-up -----------------------------------------------------------------------------------------------


def test_item_of_codes_inverts_codes() -> None:
    tokenizer = chunked_ids(300, base=8)
    np.testing.assert_array_equal(tokenizer.item_of_codes(tokenizer.codes), np.arange(300))
    shuffled = np.random.default_rng(0).permutation(300)
    np.testing.assert_array_equal(tokenizer.item_of_codes(tokenizer.codes[shuffled]), shuffled)


def test_item_of_codes_answers_minus_one_for_unknown_codes() -> None:
    tokenizer = chunked_ids(70)  # codes (0, 0) .. (1, 5)
    query = np.array([[1, 5], [1, 6], [63, 63], [0, 64], [-1, 0], [0, 0]])
    np.testing.assert_array_equal(tokenizer.item_of_codes(query), [69, -1, -1, -1, -1, 0])
    assert tokenizer.item_of_codes(np.zeros((0, 2), dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError, match=r"\[k, 2\]"):
        tokenizer.item_of_codes(np.array([1, 5]))


def test_item_of_codes_gives_the_lowest_item_of_a_colliding_group() -> None:
    tokenizer = ItemTokenizer("hand", COLLIDING, (3, 3))
    np.testing.assert_array_equal(tokenizer.item_of_codes(np.array([[1, 1], [0, 0], [2, 2]])), [3, 0, 5])


# -- files -------------------------------------------------------------------------------------------------


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    meta = {"kind": "hand", "collision_rate_before": np.float64(0.25), "per_level": np.array([3, 4])}
    return ItemTokenizer("hand", np.array([[0, 1], [2, 3], [1, 0]]), (3, 4), meta).save(tmp_path / "tok")


def test_save_load_round_trip(saved: Path) -> None:
    loaded = ItemTokenizer.load(saved)
    assert loaded.name == "hand"
    assert loaded.codebook_sizes == (3, 4)
    np.testing.assert_array_equal(loaded.codes, [[0, 1], [2, 3], [1, 0]])
    assert loaded.meta == {"kind": "hand", "collision_rate_before": 0.25, "per_level": [3, 4]}
    assert sorted(p.name for p in saved.iterdir()) == ["codes.npy", "tokenizer.json"]


@pytest.mark.parametrize(
    ("tampered", "message"),
    [
        (np.array([[0, 1], [2, 3], [1, 0]], dtype=np.int32), "codes must be int64, got int32"),
        (np.array([[0, 1], [2, 3]], dtype=np.int64), r"shape \(2, 2\), but tokenizer.json says \(3, 2\)"),
        (np.array([[0, 1], [2, 4], [1, 0]], dtype=np.int64), "level 1 holds codes 0..4, outside 0..3"),
        (np.array([[0, 1], [-1, 3], [1, 0]], dtype=np.int64), "level 0 holds codes -1..1"),
        (np.array([[0, 1], [2, 3], [1, 0]], dtype=object), "not a plain numeric .npy array"),
    ],
)
def test_load_rejects_a_tampered_codes_file(saved: Path, tampered: np.ndarray, message: str) -> None:
    np.save(saved / "codes.npy", tampered, allow_pickle=tampered.dtype == object)
    with pytest.raises(ValueError, match="codes.npy") as err:
        ItemTokenizer.load(saved)
    assert err.match(message)


def test_load_rejects_a_tampered_header(saved: Path) -> None:
    header_path = saved / "tokenizer.json"
    header = json.loads(header_path.read_text())
    header_path.write_text(json.dumps(header | {"codebook_sizes": [3, 3]}))
    with pytest.raises(ValueError, match=r"codes.npy: level 1 holds codes 0..3, outside 0..2"):
        ItemTokenizer.load(saved)
    header_path.write_text(json.dumps(header | {"levels": "two"}))
    with pytest.raises(ValueError, match=r"tokenizer.json: field 'levels' must be a JSON int"):
        ItemTokenizer.load(saved)
    header_path.write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json: not valid JSON"):
        ItemTokenizer.load(saved)


def test_save_refuses_meta_that_json_cannot_hold(tmp_path: Path) -> None:
    tokenizer = ItemTokenizer("hand", np.array([[0]]), (1,), {"model": object()})
    with pytest.raises(TypeError, match="JSON cannot store"):
        tokenizer.save(tmp_path / "tok")
    assert not (tmp_path / "tok" / "codes.npy").exists()


# -- RQ-VAE ------------------------------------------------------------------------------------------------

BLOBS, PER_BLOB = 8, 40
SMALL_RQVAE = {"hidden_dims": (64, 32), "e_dim": 8, "epochs": 60, "batch_size": 128}
TINY_RQVAE = RQVAEConfig(hidden_dims=(8,), e_dim=4)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """``[320, 16]`` points in 8 well-separated Gaussian blobs, and each point's blob."""
    rng = np.random.default_rng(0)
    blob = np.repeat(np.arange(BLOBS), PER_BLOB)
    centres = 3.0 * rng.standard_normal((BLOBS, 16))
    return centres[blob] + 0.5 * rng.standard_normal((len(blob), 16)), blob


@pytest.fixture(scope="module")
def rqvae(blobs: tuple[np.ndarray, np.ndarray]) -> ItemTokenizer:
    return train_rqvae(blobs[0], 3, 16, seed=0, **SMALL_RQVAE)


def test_rqvae_is_deterministic_under_its_seed(blobs: tuple[np.ndarray, np.ndarray], rqvae: ItemTokenizer) -> None:
    torch_state = torch.random.get_rng_state()
    again = train_rqvae(blobs[0], 3, 16, seed=0, **SMALL_RQVAE)
    np.testing.assert_array_equal(again.codes, rqvae.codes)
    assert again.meta == rqvae.meta
    assert torch.equal(torch.random.get_rng_state(), torch_state)  # the global RNG is left alone


def test_rqvae_first_level_follows_the_blobs(blobs: tuple[np.ndarray, np.ndarray], rqvae: ItemTokenizer) -> None:
    blob = blobs[1]
    first = rqvae.codes[:, 0]
    same_code = first[:, None] == first[None, :]
    same_blob = blob[:, None] == blob[None, :]
    other = ~np.eye(len(blob), dtype=bool)
    # Measured at seed 0: 0.75 within a blob (16 codes over 8 blobs: ~2 per blob), 0.0 across.
    assert same_code[same_blob & other].mean() > 0.4
    assert same_code[~same_blob].mean() < 0.05


def test_rqvae_learns_and_reports_collisions(rqvae: ItemTokenizer) -> None:
    meta = rqvae.meta
    assert meta["recon_mse_last_epoch"] < 0.2 * meta["recon_mse_first_epoch"]  # measured 0.88 -> 0.03
    assert meta["recon_mse_curve"][0] == meta["recon_mse_first_epoch"]
    assert rqvae.name == "rqvae-3x16"
    assert rqvae.is_unique()
    assert meta["collision_rate_after"] == 0.0
    # 320 points in 4,096 cells, but tight blobs leave the fine levels little to split: 0.36 collide.
    assert 0.0 < meta["collision_rate_before"] < 0.9
    assert meta["disambiguation_level"] is True
    assert rqvae.codebook_sizes[:3] == (16, 16, 16) and rqvae.levels == 4
    assert meta["codes_used_per_level"] == [16, 16, 16]  # k-means init and re-seeding leave no code dead
    assert meta["config"]["e_dim"] == 8 and meta["seed"] == 0


def test_rqvae_tokenizer_survives_a_save_load_round_trip(rqvae: ItemTokenizer, tmp_path: Path) -> None:
    loaded = ItemTokenizer.load(rqvae.save(tmp_path / "rq"))
    np.testing.assert_array_equal(loaded.codes, rqvae.codes)
    assert loaded.meta["collision_rate_before"] == rqvae.meta["collision_rate_before"]


def test_rqvae_records_collisions_as_counted_by_hand() -> None:
    # Four far-apart points, three of them repeated: rows a a a b b c d.
    points = 10.0 * np.eye(4)[[0, 0, 0, 1, 1, 2, 3]]
    tokenizer = train_rqvae(points, 1, 4, seed=0, hidden_dims=(8,), e_dim=4, epochs=1)
    first = tokenizer.codes[:, 0]
    assert len(set(first[[0, 3, 5, 6]])) == 4  # k-means puts one code on each distinct point
    meta = tokenizer.meta
    assert meta["collision_rate_before"] == meta["input_collision_rate"] == pytest.approx((3 + 2) / 7)
    assert meta["largest_group_before"] == meta["input_largest_group"] == 3  # the three a's
    assert meta["distinct_input_collision_rate"] == 0.0 and meta["distinct_input_largest_group"] == 1
    assert tokenizer.codebook_sizes == (4, 3)  # the disambiguation level numbers the a's 0, 1, 2


def test_rqvae_with_more_codes_than_items_still_tokenises() -> None:
    points = np.random.default_rng(1).standard_normal((5, 4))
    tokenizer = train_rqvae(points, 2, 8, seed=0, hidden_dims=(8,), e_dim=4, epochs=3)
    assert tokenizer.n_items == 5 and tokenizer.is_unique()


def test_rqvae_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        train_rqvae(np.array([[np.nan, 1.0]]), 2, 4)
    with pytest.raises(TypeError, match="no_such_knob"):
        train_rqvae(np.zeros((4, 2)), 2, 4, no_such_knob=1)


# -- collaborative embeddings ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train() -> Interactions:
    return SessionSplit.from_interactions(generate(SyntheticConfig(n_users=200))).train


def _cosine(x: np.ndarray) -> np.ndarray:
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit @ unit.T


def test_collaborative_embeddings_are_deterministic(train: Interactions) -> None:
    a = collaborative_embeddings(train, 16, seed=0)
    assert a.shape == (train.n_items, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, collaborative_embeddings(train, 16, seed=0))


def test_items_of_one_sid_leaf_are_closer_than_random_pairs(train: Interactions) -> None:
    seen = np.bincount(train.item, minlength=train.n_items) > 0
    sid = train.schema.item_semantic_ids[seen]
    leaf = np.unique(sid[:, :3], axis=0, return_inverse=True)[1].ravel()
    cosine = _cosine(collaborative_embeddings(train, 32, seed=0)[seen])
    same_leaf = (leaf[:, None] == leaf[None, :]) & ~np.eye(len(leaf), dtype=bool)
    random_pairs = ~np.eye(len(leaf), dtype=bool)
    # Measured: 0.58 within a leaf, 0.04 over all pairs (200 users, 32 dims).
    assert cosine[same_leaf].mean() > 0.3
    assert cosine[same_leaf].mean() > 5 * cosine[random_pairs].mean()


def test_embeddings_are_unit_vectors_and_unseen_items_random_ones(train: Interactions) -> None:
    embeddings = collaborative_embeddings(train, 16, seed=0)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    unseen = np.bincount(train.item, minlength=train.n_items) == 0
    assert unseen.sum() > 100  # 200 users do not reach every item
    # Random directions in 16 dims: |cosine| averages ~0.2; seeded, so the same each call.
    assert np.abs(_cosine(embeddings[unseen])[np.triu_indices(int(unseen.sum()), 1)]).mean() < 0.3


def test_collaborative_embeddings_pad_dimensions_beyond_the_rank() -> None:
    tiny = generate(SyntheticConfig(n_users=3, n_items=200))
    embeddings = collaborative_embeddings(tiny, 8, seed=0)  # 3 users: rank at most 2
    seen = np.bincount(tiny.item, minlength=tiny.n_items) > 0
    assert embeddings.shape == (200, 8)
    assert (embeddings[seen][:, 2:] == 0).all()


# -- build_tokenizer ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_sids(train: Interactions) -> Interactions:
    return replace(train, schema=replace(train.schema, item_semantic_ids=None))


def test_build_tokenizer_picks_the_released_sids_or_cids(train: Interactions) -> None:
    sid = build_tokenizer("sid", train)
    np.testing.assert_array_equal(sid.codes, train.schema.item_semantic_ids)
    assert sid.name == "sid-given" and sid.is_unique()
    cid = build_tokenizer("cid", train)
    assert cid.levels == 2 and cid.n_items == train.n_items and 64 < train.n_items <= 64**2


def test_build_tokenizer_trains_sids_when_the_data_has_none(no_sids: Interactions) -> None:
    small = RQVAEConfig(hidden_dims=(64, 32), e_dim=8, batch_size=256)
    tokenizer = build_tokenizer(
        "sid", no_sids, rqvae_levels=2, rqvae_codebook_min=16, rqvae_epochs=20, rqvae=small, embedding_dim=8, seed=3
    )
    assert tokenizer.name == "rqvae-2x256"  # 128**2 < 16 x a few thousand items <= 256**2
    assert tokenizer.n_items == no_sids.n_items and tokenizer.is_unique()
    assert "ships no semantic IDs" in tokenizer.meta["sid_fallback"]
    assert tokenizer.meta["config"]["epochs"] == 20 and tokenizer.meta["seed"] == 3
    assert tokenizer.meta["codebook_rule"] == f"16 doubled until C**2 >= 16 x {no_sids.n_items} items, at most 8192"
    # Measured at seed 3: 34 % of distinct inputs collide, at most 15 behind one code (limits: 50 %, 256).
    assert tokenizer.meta["distinct_input_collision_rate"] < 0.45
    pinned = build_tokenizer("rqvae", no_sids, rqvae_levels=1, rqvae_codebook=4096, rqvae_epochs=1, rqvae=small)
    assert pinned.name == "rqvae-1x4096" and pinned.meta["codebook_rule"] == "explicit rqvae_codebook"


# -- codebook size and collision limits -----------------------------------------------------------------


def test_codebook_size_gives_each_item_enough_code_space() -> None:
    # RetailRocket's training items, 3 levels, the smoke floor: 64**3 = 262,144 < 16 x 29,905 <= 128**3.
    size = rqvae_codebook_size(29_905, 3, minimum=16, maximum=256)
    assert CODE_SPACE_PER_ITEM == 16 and size**3 >= 16 * 29_905
    assert size == 128 and (size // 2) ** 3 < 16 * 29_905  # the smallest power of two that fits
    assert rqvae_codebook_size(29_905, 4) == 256  # the paper floor already fits: 256**4 >> 16 x 29,905
    for profile in ("smoke", "cpu"):  # what CI's smoke cells and cpu runs on RetailRocket get
        knobs = decoder_profiles("gamer", "sid")[profile]["tokenizer"]
        levels, low, high = knobs["rqvae_levels"], knobs["rqvae_codebook_min"], knobs["rqvae_codebook_max"]
        assert rqvae_codebook_size(29_905, levels, minimum=low, maximum=high) ** levels >= 16 * 29_905, profile
    assert rqvae_codebook_size(10, 3, minimum=16, maximum=256) == 16  # never below the floor
    assert rqvae_codebook_size(10**9, 3, minimum=16, maximum=256) == 256  # never above the ceiling
    with pytest.raises(ValueError, match="rqvae_codebook_min <= rqvae_codebook_max"):
        rqvae_codebook_size(100, 3, minimum=64, maximum=16)


def test_collision_limits_flag_too_many_colliding_items_or_one_oversized_group() -> None:
    assert MAX_COLLISION_RATE == 0.5
    assert sid_collision_problem(0.5, 16, 16) is None  # at both limits: fit
    assert "50.1% of distinct inputs share their code" in sid_collision_problem(0.501, 2, 16)
    assert "17 distinct inputs share one code, more than a level's 16 codes" in sid_collision_problem(0.1, 17, 16)
    # RetailRocket at 3 x 16 (the smoke size before codebooks followed the item count): both limits broken.
    assert sid_collision_problem(0.940, 121, 16).count(";") == 1


def test_build_tokenizer_falls_back_to_cids_when_trained_codes_collide(no_sids: Interactions) -> None:
    # Distinct random inputs squeezed into 2 codes: about half of them behind each.
    embeddings = np.random.default_rng(0).standard_normal((no_sids.n_items, 4))
    tokenizer = build_tokenizer(
        "sid", no_sids, rqvae_levels=1, rqvae_codebook=2, rqvae_epochs=1, rqvae=TINY_RQVAE, embeddings=embeddings
    )
    assert tokenizer.name == "cid-64" and tokenizer.is_unique()
    np.testing.assert_array_equal(tokenizer.codes, chunked_ids(no_sids.n_items).codes)
    meta = tokenizer.meta
    assert meta["collision_rate_before"] == 0.0 and meta["largest_group_before"] == 1  # of the CIDs used
    assert meta["rqvae_distinct_input_collision_rate"] == meta["rqvae_collision_rate_before"] == 1.0
    assert meta["rqvae_largest_group_before"] >= no_sids.n_items / 2 and meta["rqvae_codebook_size"] == 2
    assert meta["cid_fallback"].startswith("rqvae-1x2 codes too colliding (100.0% of distinct inputs share")
    assert "base-64 chunked IDs used instead" in meta["cid_fallback"]
    assert "ships no semantic IDs" in meta["sid_fallback"]


def test_build_tokenizer_keeps_sids_whose_collisions_only_repeat_their_inputs(no_sids: Interactions) -> None:
    # Two distinct inputs, one item and all the others: every collision is one the input forces.
    embeddings = np.repeat(np.eye(2, 4), [1, no_sids.n_items - 1], axis=0)
    tokenizer = build_tokenizer(
        "sid", no_sids, rqvae_levels=1, rqvae_codebook=4, rqvae_epochs=1, rqvae=TINY_RQVAE, embeddings=embeddings
    )
    assert tokenizer.name == "rqvae-1x4" and "cid_fallback" not in tokenizer.meta
    assert tokenizer.meta["collision_rate_before"] == pytest.approx((no_sids.n_items - 1) / no_sids.n_items)
    assert tokenizer.meta["largest_group_before"] == no_sids.n_items - 1
    assert tokenizer.meta["distinct_input_collision_rate"] == 0.0


def test_build_tokenizer_rejects_unknown_kinds_and_misfit_embeddings(train: Interactions) -> None:
    with pytest.raises(ValueError, match=r"unknown tokenizer kind 'rid'; expected one of \['sid', 'cid', 'rqvae'\]"):
        build_tokenizer("rid", train)
    with pytest.raises(ValueError, match=f"10 rows for {train.n_items} items"):
        build_tokenizer("rqvae", train, embeddings=np.zeros((10, 4)))
