"""Evidence before a residual is served (issue 20): known-answer cases of ``choose_residual`` with bridges whose
residual is exactly the truth, pure noise, or the truth for a single validation clip, and ``gain_confidence``."""

from __future__ import annotations

import numpy as np
import pytest

from diffgap_search.gap.directions import Direction
from diffgap_search.gap.evidence import gain_confidence
from diffgap_search.gap.protocol import tasks_for
from diffgap_search.gap.selection import choose_residual
from diffgap_search.gap.training import TrainConfig

D = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (audio, video) unit rows: video a strongly nonlinear function of audio plus noise."""
    maps = np.random.default_rng(7)
    w1, w2 = maps.standard_normal((D, 4 * D)), maps.standard_normal((4 * D, D))
    rng = np.random.default_rng(seed)
    audio = _unit(rng.standard_normal((n, D)))
    video = _unit(np.tanh(3.0 * audio @ w1) @ w2 + 2.0 * rng.standard_normal((n, D)))
    return audio, video


def _scales(query: float, items: float | None = None) -> dict[str, dict[str, float]]:
    """Both directions at ``query`` for queries and ``items`` (default the same) for indexed items."""
    items = query if items is None else items
    return {"residual_scale": {"audio|video": query, "video|audio": query},
            "residual_scale_items": {"audio|video": items, "video|audio": items}}


ANCHOR = _scales(0.0)
ROLE_KEYS = {"query": "residual_scale", "items": "residual_scale_items"}


class FakeBridge:
    """``anchor + alpha * (residual target - anchor)`` per direction and role: the anchor a ridge map fitted on
    training clips, the residual's target ``truth`` (the partner row itself), ``noise`` or the truth on ``only``
    rows."""

    directions = (Direction.of("video", "audio"), Direction.of("audio", "video"))

    def __init__(self, scales: dict[str, dict[str, float]], kind: str, partners: dict[bytes, np.ndarray],
                 maps: dict[tuple[str, str], np.ndarray], only: set[bytes] = frozenset()) -> None:
        self.scales, self.kind, self.partners, self.maps, self.only = scales, kind, partners, maps, only

    def alpha(self, source: str, target: str, role: str) -> float:
        return self.residual_scale(Direction.of(source, target), role)

    def residual_scale(self, direction: Direction, role: str = "query") -> float:
        """As ``Bridge.residual_scale``: what ``selection.ApplyMemo`` keys its store by."""
        return self.scales[ROLE_KEYS[role]].get(Direction(direction).value, 1.0)

    def apply(self, x: np.ndarray, source: str, target: str, *, role: str = "query") -> np.ndarray:
        anchor = _unit(np.c_[x, np.ones(len(x))] @ self.maps[(source, target)])
        alpha = self.alpha(source, target, role)
        if self.kind == "noise":
            goal = _unit(np.random.default_rng(11).standard_normal(anchor.shape))
        else:
            goal = np.stack([self.partners[r.tobytes()] if self.kind == "truth" or r.tobytes() in self.only else a
                             for r, a in zip(x, anchor)])
        return _unit(anchor + alpha * (goal - anchor))


@pytest.fixture(scope="module")
def setting() -> dict:
    ta, tv = _world(3000, seed=1)
    fit = {(s, t): np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
           for (s, t), (x, y) in {("audio", "video"): (ta, tv), ("video", "audio"): (tv, ta)}.items()}
    va, vv = _world(200, seed=2)
    partners = {**{a.tobytes(): v for a, v in zip(va, vv)}, **{v.tobytes(): a for a, v in zip(va, vv)}}
    return {"tasks": list(tasks_for("audio", "video", va, vv, np.arange(200))), "maps": fit, "partners": partners,
            "va": va, "vv": vv}


def _choose(setting: dict, kind: str, confidence: float = 0.9, only: set[bytes] = frozenset()) -> tuple:
    return choose_residual(lambda a: FakeBridge(a, kind, setting["partners"], setting["maps"], only), setting["tasks"],
                           confidence=confidence)


def test_the_anchor_alone_leaves_room_to_gain(setting: dict) -> None:
    _, _, val = _choose(setting, "noise")
    assert all(v["anchor_served_R@1"] < 95.0 for v in val.values())


def test_a_residual_that_is_exactly_the_truth_is_served_whole(setting: dict) -> None:
    scales, _, val = _choose(setting, "truth")
    assert scales == _scales(1.0, 0.0)  # items bridged with the truth add nothing to a perfect query: ties -> 0
    for figures in val.values():
        assert figures["fused_R@1"] == 100.0 and figures["bridged_R@1"] == 100.0
        assert figures["gain_confidence"] == 1.0


def test_a_residual_of_pure_noise_is_served_at_alpha_zero(setting: dict) -> None:
    scales, _, val = _choose(setting, "noise")
    assert scales == ANCHOR
    for figures in val.values():
        assert figures["fused_R@1"] == figures["anchor_served_R@1"]


def test_a_gain_of_one_validation_clip_is_not_evidence(setting: dict) -> None:
    """The truth on a single clip the anchor misses: the rule before the fix (no bootstrap) serves it; with the
    bootstrap it wins only in the resamples that draw that clip (1 - (199/200)^200 = 63 %), so the anchor is served."""
    anchor_task = setting["tasks"][0]  # video->audio
    lone = FakeBridge(ANCHOR, "truth", setting["partners"], setting["maps"])
    q, g = anchor_task.queries.vectors, anchor_task.items.vectors
    scores = lone.apply(q, "video", "audio") @ g.T
    missed = int(np.flatnonzero(scores.argmax(1) != np.arange(len(q)))[0])
    only = {setting["va"][missed].tobytes(), setting["vv"][missed].tobytes()}
    old, _, old_val = _choose(setting, "only", confidence=0.0, only=only)
    assert old != ANCHOR
    assert max(v["fused_R@1"] - v["anchor_served_R@1"] for v in old_val.values()) > 0
    new, _, new_val = _choose(setting, "only", only=only)
    assert new == ANCHOR
    # the clip is gained in one task only (the other ties and keeps the anchor: no evidence, share 0); each task
    # is its own unit, so its joint share is its own
    shares = sorted(v["task_confidence"] for v in new_val.values())
    assert shares[0] == 0.0 and 0.5 < shares[1] < 0.75
    assert all(v["gain_confidence"] == v["pair_confidence"] == v["task_confidence"] for v in new_val.values())


def test_gain_confidence_known_answers() -> None:
    labels = np.repeat(np.arange(50), 2)  # 50 clips, 2 queries each
    ones, zeros = np.ones(100), np.zeros(100)
    assert gain_confidence([(labels, ones, ones)]) == 0.0  # a tie is no gain
    assert gain_confidence([(labels, ones, zeros)]) == 1.0
    assert gain_confidence([(labels, zeros, ones)]) == 0.0
    mixed = (np.arange(100) % 3 == 0).astype(float)
    first = gain_confidence([(labels, mixed, ones * 0.3), (labels, ones, ones)], seed=3)
    assert first == gain_confidence([(labels, mixed, ones * 0.3), (labels, ones, ones)], seed=3)  # seeded
    assert gain_confidence([]) == 0.0


def test_serve_confidence_is_checked() -> None:
    with pytest.raises(ValueError, match="serve_confidence"):
        TrainConfig(serve_confidence=1.5)
    assert TrainConfig().serve_confidence == 0.9


def _halves(setting: dict) -> tuple[list, list]:
    va, vv = setting["va"], setting["vv"]
    return (list(tasks_for("audio", "video", va[:100], vv[:100], np.arange(100))),
            list(tasks_for("audio", "video", va[100:], vv[100:], np.arange(100, 200))))


def test_a_gain_only_on_the_clips_that_chose_it_is_not_confirmed(setting: dict) -> None:
    """The truth on 8 choice clips the anchor misses, nothing on the confirmation clips: the choice clips alone
    would serve it; the confirmation half sees no gain (share 0) and the anchor is served, with its figures
    reported on every validation clip (``final``)."""
    choice, confirm = _halves(setting)
    lone = FakeBridge(ANCHOR, "truth", setting["partners"], setting["maps"])
    q, g = choice[0].queries.vectors, choice[0].items.vectors
    missed = np.flatnonzero((lone.apply(q, "video", "audio") @ g.T).argmax(1) != np.arange(len(q)))[:8]
    only = {r.tobytes() for i in missed for r in (setting["va"][i], setting["vv"][i])}

    def make(a: dict) -> FakeBridge:
        return FakeBridge(a, "only", setting["partners"], setting["maps"], only)

    unconfirmed, _, _ = choose_residual(make, choice, per_task=False)  # the joint bootstrap on the choosing clips
    assert unconfirmed != ANCHOR
    scales, _, val = choose_residual(make, choice, confirm=confirm, final=setting["tasks"])
    assert scales == ANCHOR
    assert {v["gain_confidence"] for v in val.values()} == {0.0}
    _, _, every = _choose(setting, "noise")  # the anchor's figures on all 200 clips
    assert {k: v["fused_R@1"] for k, v in val.items()} == {k: v["anchor_served_R@1"] for k, v in every.items()}


def test_the_truth_is_confirmed_on_clips_that_took_no_part_in_the_choice(setting: dict) -> None:
    choice, confirm = _halves(setting)
    scales, _, val = choose_residual(lambda a: FakeBridge(a, "truth", setting["partners"], setting["maps"]), choice,
                                     confirm=confirm, final=setting["tasks"])
    assert scales == _scales(1.0, 0.0)
    assert all(v["pair_confidence"] == v["task_confidence"] for v in val.values())  # each task is its own unit
    assert all(v["task_confidence"] >= 0.99 and v["confirm_gain"] >= 5.0 for v in val.values())
    assert all(v["gain_confidence"] == v["task_confidence"] for v in val.values())
    assert all(v["fused_R@1"] == 100.0 for v in val.values())


def test_the_confirmation_half_is_a_stable_disjoint_half_of_the_validation_clips() -> None:
    from diffgap_search.gap.training_data import confirmation_split, split_pairs

    rng = np.random.default_rng(0)
    pairs = {"audio": rng.standard_normal((4000, 8)).astype(np.float32),
             "text": rng.standard_normal((4000, 8)).astype(np.float32)}
    groups = np.arange(4000)
    sets = split_pairs(pairs, groups.astype(str).astype(object), 0.1)
    choice, confirm = confirmation_split(sets, 0.1)
    val = set(sets[0].val_groups)
    a, b = set(choice[0].val_groups), set(confirm[0].val_groups)
    assert a | b == val and not a & b and 0.4 < len(b) / len(val) < 0.6
    assert np.array_equal(choice[0].train_a, sets[0].train_a)
    again = confirmation_split(sets, 0.1)[1]
    assert list(again[0].val_groups) == list(confirm[0].val_groups)


class _TruthOrNoise(FakeBridge):
    """The truth on the rows in ``good``, pure noise on every other row."""

    def apply(self, x: np.ndarray, source: str, target: str, *, role: str = "query") -> np.ndarray:
        anchor = _unit(np.c_[x, np.ones(len(x))] @ self.maps[(source, target)])
        noise = _unit(np.random.default_rng(11).standard_normal(anchor.shape))
        goal = np.stack([self.partners[r.tobytes()] if r.tobytes() in self.only else n for r, n in zip(x, noise)])
        return _unit(anchor + self.alpha(source, target, role) * (goal - anchor))


def test_a_pair_below_the_anchor_once_re_tuned_on_the_final_clips_is_not_served(setting: dict) -> None:
    """Confirmed on both halves (the truth there), but noise on the clips it is finally re-tuned on: served there
    it would be below ridge + fusion, so the anchor is served, with the anchor's figures."""
    choice, confirm = _halves(setting)
    good = {r.tobytes() for r in np.r_[setting["va"][:200], setting["vv"][:200]]}
    va, vv = _world(100, seed=5)
    partners = {**setting["partners"], **{a.tobytes(): v for a, v in zip(va, vv)}, **{v.tobytes(): a for a, v in zip(va, vv)}}
    final = list(tasks_for("audio", "video", va, vv, np.arange(100)))

    def make(a: dict) -> FakeBridge:
        return _TruthOrNoise(a, "only", partners, setting["maps"], good)

    confirmed, _, _ = choose_residual(make, choice, confirm=confirm)
    assert confirmed == _scales(1.0, 0.0)
    scales, _, val = choose_residual(make, choice, confirm=confirm, final=final)
    assert scales == ANCHOR
    assert all(v["fused_R@1"] == v["anchor_served_R@1"] and v["task_confidence"] >= 0.99 for v in val.values())


class _TruthForItems(FakeBridge):
    """Pure noise for a bridged query, the truth for bridged items, in both directions."""

    def apply(self, x: np.ndarray, source: str, target: str, *, role: str = "query") -> np.ndarray:
        anchor = _unit(np.c_[x, np.ones(len(x))] @ self.maps[(source, target)])
        goal = (np.stack([self.partners[r.tobytes()] for r in x]) if role == "items"
                else _unit(np.random.default_rng(11).standard_normal(anchor.shape)))
        return _unit(anchor + self.alpha(source, target, role) * (goal - anchor))


def test_each_task_chooses_the_alpha_of_its_query_and_of_its_items_apart(setting: dict) -> None:
    """A residual that is noise for queries and the truth for items: each task serves its query's anchor and its
    items' residual whole (a direction's two roles belong to different tasks). One alpha per direction for both
    roles (``coupled``, the rule of format 4) cannot say that."""
    def make(a: dict) -> FakeBridge:
        return _TruthForItems(a, "truth", setting["partners"], setting["maps"])

    scales, _, val = choose_residual(make, setting["tasks"], confidence=0.0)
    assert scales["residual_scale"] == ANCHOR["residual_scale"]  # the noisy query term: the anchor
    assert sorted(scales["residual_scale_items"]) == ["audio|video", "video|audio"]
    assert all(a > 0.0 for a in scales["residual_scale_items"].values())  # the true items term: served
    assert all(v["bridged_R@1"] == v["anchor_R@1"] < 95.0 and v["fused_R@1"] == 100.0 for v in val.values())
    coupled, _, _ = choose_residual(make, setting["tasks"], confidence=0.0, coupled=True)
    assert coupled["residual_scale"] == coupled["residual_scale_items"]
