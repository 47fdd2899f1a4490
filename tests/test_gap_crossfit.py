"""Cross-fitting the confirmation (issue 20): the mirror procedure — checkpoint, sampler and alphas chosen on the
confirmation half, judged on the choice half — adds its evidence to the confirmation's, so a task's residual is
confirmed on twice the clips; the served network and its checkpoint are what the choice half alone keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffgap_search.gap.selection import choose_residual, mirror_evidence
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge
from test_gap_evidence import ANCHOR, FakeBridge, _halves, setting  # noqa: F401  (the module fixture)

A = "a" * 64


def _missed(setting: dict, tasks: list, n: int) -> list[int]:
    """Row indices (into ``setting['va']``) of the first ``n`` video->audio queries of ``tasks[0]`` the anchor misses."""
    lone = FakeBridge(ANCHOR, "truth", setting["partners"], setting["maps"])
    q, g = tasks[0].queries.vectors, tasks[0].items.vectors
    wrong = np.flatnonzero((lone.apply(q, "video", "audio") @ g.T).argmax(1) != np.arange(len(q)))[:n]
    first = int(np.flatnonzero((setting["va"] == tasks[0].items.vectors[0]).all(1))[0])
    return [first + int(i) for i in wrong]


def test_evidence_too_thin_on_one_half_is_confirmed_with_the_mirrors(setting: dict) -> None:
    """The truth on 8 clips the anchor misses in the choice half and 2 in the confirmation half: 2 clips won of
    100 win in about 1 - e^-2 = 86 % of resamples (< 90 %: not served); the mirror's evidence of 3 more clips won
    on the choice half pools to 5 of 200 (about 99 %): served. Known-answer hit vectors for the mirror."""
    choice, confirm = _halves(setting)
    rows = _missed(setting, choice, 8) + _missed(setting, confirm, 2)
    only = {r.tobytes() for i in rows for r in (setting["va"][i], setting["vv"][i])}

    def make(a: dict) -> FakeBridge:
        return FakeBridge(a, "only", setting["partners"], setting["maps"], only)

    alone, _, val = choose_residual(make, choice, confirm=confirm, final=setting["tasks"])
    assert alone["residual_scale"]["audio|video"] == 0.0
    assert 0.8 < val["video->audio"]["task_confidence"] < 0.9
    v2a = choice[0]
    labels = np.asarray(v2a.queries.labels)
    old = np.zeros(len(labels))
    new = old.copy()
    new[:3] = 1.0  # the mirror won 3 clips of the choice half and lost none
    crossed = {"video->audio": (labels, new, old)}
    pooled, _, val = choose_residual(make, choice, confirm=confirm, final=setting["tasks"], crossed=crossed)
    assert pooled["residual_scale"]["audio|video"] > 0.0
    assert val["video->audio"]["task_confidence"] > 0.95
    # a mirror that lost 3 clips on its judging half: pooled, the gain of 2 and the loss of 3 rarely win
    anchor_hit = np.ones(len(labels))
    lost = anchor_hit.copy()
    lost[:3] = 0.0
    _, _, val = choose_residual(make, choice, confirm=confirm, final=setting["tasks"],
                                crossed={"video->audio": (labels, lost, anchor_hit)})
    assert val["video->audio"]["task_confidence"] < 0.5


def test_the_mirror_judges_its_choice_on_the_clips_it_did_not_choose_on(setting: dict) -> None:
    """With the true residual the mirror, choosing on the confirmation half, wins every query the anchor misses
    on the choice half; with pure noise whatever it chose does not win there."""
    choice, confirm = _halves(setting)
    truth = mirror_evidence(lambda a: FakeBridge(a, "truth", setting["partners"], setting["maps"]), confirm, choice)
    noise = mirror_evidence(lambda a: FakeBridge(a, "noise", setting["partners"], setting["maps"]), confirm, choice)
    assert set(truth) == set(noise) == {"video->audio", "audio->video"}
    for task in choice:
        labels, new, old = truth[task.key]
        assert np.array_equal(labels, task.queries.labels) and len(new) == len(old) == task.queries.n_units
        assert new.min() == 1.0 and old.mean() < 1.0  # the truth hits everything, the anchor does not
        _, n2, o2 = noise[task.key]
        assert n2.sum() <= o2.sum()  # a choice noise won by chance on its own clips does not win on the others


@pytest.fixture(scope="module")
def pairs() -> tuple[dict, np.ndarray]:
    return GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0).sample_clips(
        400, seed=1, captions=2, caption_jitter=0.3).pairs()


def test_cross_fitting_keeps_the_choice_halfs_checkpoint_and_network(pairs: tuple) -> None:
    """The mirror track closes on its own: the choice half keeps the epoch, the weights and the sampler it keeps
    without cross-fitting; the mirror's epoch and sampler are recorded beside them."""
    data, groups = pairs
    runs = {}
    for cross in (False, True):
        cfg = TrainConfig(epochs=6, batch_size=64, hidden=32, depth=1, seed=0, patience=2, cross_fit=cross)
        runs[cross] = train_bridge(data, groups=groups, cfg=cfg, encoder_fingerprints={"audio": A, "text": A})
    (plain, plain_report), (crossed, crossed_report) = runs[False], runs[True]
    ck, ck2 = plain_report.selection["checkpoint"], crossed_report.selection["checkpoint"]
    assert ck2["epoch"] == ck["epoch"] and ck2["scores"] == ck["scores"][: len(ck2["scores"])]
    assert "mirror" not in ck and set(ck2["mirror"]) == {"epoch", "scores", "sample"}
    assert 1 <= ck2["mirror"]["epoch"] <= ck2["epochs_run"]
    assert plain.sample == crossed.sample
    for (name, a), b in zip(plain.denoiser.state_dict().items(), crossed.denoiser.state_dict().values()):
        assert torch.equal(a, b), name
