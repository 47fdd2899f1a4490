"""The protocol's units (unique clips, captions, windows pooled by max) and the splits by group."""

from __future__ import annotations

import numpy as np
import pytest

from diffgap_search.gap.groups import (
    VALIDATION_SALT,
    as_groups,
    audio_groups,
    group_key,
    group_keys,
    in_fraction,
    validation_mask,
)
from diffgap_search.gap.protocol import (
    Task,
    build_side,
    first_groups,
    group_codes,
    tasks_for,
)
from diffgap_search.gap.synthetic import GapSpec, GapWorld


def test_a_side_keeps_each_groups_unique_vectors_and_units() -> None:
    x = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0.6, 0.8]], np.float32)
    codes = np.array([3, 3, 3, 5, 5])
    audio = build_side("audio", x, codes)  # clip level: one unit per group
    assert audio.vectors.tolist() == [[1, 0], [0, 1], [1, 0], [pytest.approx(0.6), pytest.approx(0.8)]]
    assert audio.starts.tolist() == [0, 2] and audio.labels.tolist() == [3, 5] and audio.n_units == 2
    text = build_side("text", x, codes)  # caption level: one unit per unique vector of a group
    assert text.starts.tolist() == [0, 1, 2, 3] and text.labels.tolist() == [3, 3, 5, 5]


def test_a_clip_scores_its_best_window_as_search_ranks_files() -> None:
    # Clip 0 has two windows, clip 1 one; two captions of clip 0, one of clip 1.
    audio = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    text = np.array([[0.8, 0.6, 0], [0, 0.8, 0.6], [0.8, 0.6, 0], [0, 0.8, 0.6], [0, 0, 1]], np.float32)
    codes = np.array([0, 0, 0, 0, 1])
    to_audio, to_text = tasks_for("audio", "text", audio, text, codes)
    assert (to_audio.items.n_units, to_audio.queries.n_units) == (2, 3)
    sim = to_audio.queries.vectors @ to_audio.items.vectors.T  # (3 captions, 3 windows)
    pooled = to_audio.pool(sim)
    assert pooled.shape == (3, 2)
    expected = np.stack([sim[:, :2].max(axis=1), sim[:, 2]], axis=1)
    assert np.array_equal(pooled, expected)
    assert to_audio.metrics(pooled)["R@1"] == 100.0
    a2t = to_text.pool(to_text.queries.vectors @ to_text.items.vectors.T)
    assert a2t.shape == (2, 3)  # each clip against every caption, max over the clip's windows
    assert to_text.key == "audio->text" and to_audio.key == "text->audio"


def test_a_task_pools_queries_then_items_by_group() -> None:
    rng = np.random.default_rng(0)
    q = build_side("video", rng.standard_normal((5, 4)).astype(np.float32), np.array([0, 0, 1, 1, 1]))
    g = build_side("audio", rng.standard_normal((4, 4)).astype(np.float32), np.array([0, 1, 1, 2]))
    sim = q.vectors @ g.vectors.T
    qv_label = np.repeat(q.labels, np.diff(np.r_[q.starts, len(q.vectors)]))
    gv_label = np.repeat(g.labels, np.diff(np.r_[g.starts, len(g.vectors)]))
    expected = np.array([[sim[np.ix_(qv_label == a, gv_label == b)].max() for b in (0, 1, 2)] for a in (0, 1)])
    assert np.array_equal(Task(q, g).pool(sim), expected)


def test_group_codes_and_first_groups() -> None:
    codes = group_codes(np.array(["b", 7, "a", "b", "7"], dtype=object))
    assert codes.tolist() == [2, 0, 1, 2, 0]  # "7" and 7 are one id (ids compare as text)
    assert first_groups(codes, 2).tolist() == [False, True, True, False, True]
    assert first_groups(codes, None).all()


def test_group_keys_are_stable_64_bit_hashes() -> None:
    assert group_key("clip-1") == group_key("clip-1") != group_key("clip-2")
    assert group_key("clip-1") == int.from_bytes(
        __import__("hashlib").sha256(b"clip-1").digest()[:8], "little", signed=True)
    keys = group_keys(["b", "a", "b"])
    assert keys.dtype == np.int64 and len(keys) == 2 and (np.diff(keys) > 0).all()


def test_validation_split_is_by_group_deterministic_and_stable_as_data_grows() -> None:
    groups = np.array([f"clip{i // 5}" for i in range(5000)], dtype=object)  # 1000 clips x 5 captions
    val = validation_mask(groups, 0.1)
    per_clip = val.reshape(1000, 5)
    assert (per_clip.all(axis=1) | ~per_clip.any(axis=1)).all()  # never a clip on both sides
    assert abs(per_clip[:, 0].sum() - 100) < 4 * 9.49  # ~10 % of 1000 clips: within 4 binomial sd (it is 69)
    grown = validation_mask(np.concatenate([groups, np.array(["new"] * 7, dtype=object)]), 0.1)
    assert np.array_equal(grown[:5000], val)
    assert val[0] == in_fraction("clip0", VALIDATION_SALT, 0.1)
    assert not validation_mask(groups, 0.0).any()


def test_default_groups_are_identical_audio_rows() -> None:
    spec = GapSpec(dim=8, latent_dim=2, features=8)
    pairs, clip = GapWorld(spec, 0).sample_clips(30, 1, captions=5, caption_jitter=0.3).pairs()
    groups = audio_groups(pairs["audio"])
    assert len(set(groups.tolist())) == 30
    codes = group_codes(groups)
    assert all(len(set(codes[clip == c].tolist())) == 1 for c in range(30))  # one group per clip ...
    assert len({int(codes[clip == c][0]) for c in range(30)}) == 30  # ... and one clip per group
    assert as_groups([1, 2], np.zeros((2, 3))).tolist() == ["1", "2"]
    with pytest.raises(ValueError, match="groups has 1 entries for 2 pairs"):
        as_groups([1], np.zeros((2, 3)))
