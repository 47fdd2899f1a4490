"""``dgsearch train``'s and ``dgsearch eval``'s words for people: every figure a user compares, named, and none of
Python's dict syntax."""
from __future__ import annotations

from typing import Any

import pytest

from diffgap_search.cli.output import print_eval, print_train


def outcome(**changes: Any) -> dict[str, Any]:
    """A ``TrainOutcome.to_dict()`` as ``dgsearch train`` made it on Debian's scratch sounds (aisfx + WordLlama)."""
    base: dict[str, Any] = {
        "bridge": "b1f05b2d7d15aa00", "file": "bridge-b1f05b2d7d15aa00.safetensors", "pairs_source": "index:all",
        "captions": "names", "caption_pairs": {"sidecar": 0, "name": 163},
        "train_pairs": {"audio-text": 163}, "validation_pairs": {"audio-text": 14}, "groups": {"train": 96, "val": 9},
        "held_out_pairs": {"audio-text": 21}, "derived_vectors": {"audio_as_text": 121}, "seconds": 4.31,
        "epochs": 40, "steps": 7, "pairs_per_s": 1989.1, "final_loss": 0.95281,
        "validation": {
            "text->audio": {"raw_R@1": 0.0, "bridged_R@1": 50.0, "fused_R@1": 50.0, "full_residual_fused_R@1": 62.5,
                            "anchor_R@1": 50.0, "anchor_served_R@1": 50.0, "gain_confidence": 0.3535,
                            "task_confidence": 0.3535, "pair_confidence": 0.3535, "confirm_gain": 0.0},
            "audio->text": {"raw_R@1": 16.666, "bridged_R@1": 22.222, "fused_R@1": 22.222, "anchor_R@1": 22.222},
        },
        "fusion": {}, "parameters": 1000, "sampler": {"steps": 1, "guidance_scale": 2.0},
        "chosen": {"residual_scale": {"audio|text": 0.0, "text|audio": 0.0},
                   "residual_scale_items": {"text|audio": 0.0, "audio|text": 0.0}, "epoch": 2, "epochs_run": 7,
                   "stopped_early": True, "served_R@1": {"audio->text": 22.222, "text->audio": 50.0},
                   "confirmation": {"audio->text": 0.0, "text->audio": 0.3535},
                   "counterparts_served_R@1": {"procrustes": {"audio->text": 11.111, "text->audio": 33.333},
                                               "ridge": {"audio->text": 22.222, "text->audio": 50.0}},
                   "anchor": {"audio-text": "ridge"}},
    }
    return {**base, **changes}


def test_an_index_bridge_is_reported_line_by_line(capsys: pytest.CaptureFixture[str]) -> None:
    print_train(outcome(), fmt="table")
    assert capsys.readouterr().out.splitlines() == [
        "trained DiffGAP bridge b1f05b2d7d15 in 4.3 s: 7 of at most 40 epochs (stopped early), 7 steps, 1989 pairs/s,"
        " final loss 0.9528",
        "  pairs       163 audio-text of 105 clips from index:all; of them 14 audio-text of 9 clips validate"
        " (checkpoint, sampler, residual scales, fusion weights), never trained on",
        "  held out    21 audio-text for `dgsearch eval`",
        "  captions    names: 0 text pairs with sidecar captions, 163 with weak captions from names and tags",
        "  validation  audio->text R@1: raw 16.7, ridge alone 22.2, DiffGAP alone 22.2, served 22.2"
        " (Procrustes + fusion 11.1, ridge + fusion 22.2); residual confirmed in 0 % of resamples (90 % needed)",
        "              text->audio R@1: raw 0.0, ridge alone 50.0, DiffGAP alone 50.0, served 50.0"
        " (Procrustes + fusion 33.3, ridge + fusion 50.0); residual confirmed in 35 % of resamples (90 % needed)",
        "  chosen      epoch 2; residual scale audio|text 0, text|audio 0 (0 = the ridge map alone)",
        "  sampler     1 DDIM step, guidance 2 (chosen on validation)",
        "  written     121 bridged vectors (audio_as_text)",
    ]


def test_a_pairs_file_bridge_on_procrustes_names_its_anchor_and_where_to_evaluate(
        capsys: pytest.CaptureFixture[str]) -> None:
    chosen = {**outcome()["chosen"], "anchor": {"audio-text": "procrustes"}, "stopped_early": False, "epochs_run": 40,
              "residual_scale": {"audio|text": 0.5, "text|audio": 1.0},
              "residual_scale_items": {"audio|text": 0.0, "text|audio": 1.0}}
    print_train(outcome(pairs_source="pairs-file", captions=None, caption_pairs=None, held_out_pairs={},
                        derived_vectors={}, chosen=chosen, sampler={"steps": 4, "guidance_scale": 1.5}),
                fmt="table")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("trained DiffGAP bridge b1f05b2d7d15 in 4.3 s: 40 of at most 40 epochs, 7 steps")
    assert lines[2] == "  held out    none: evaluate it with `dgsearch eval --pairs-file` on pairs of other clips"
    assert not any(line.lstrip().startswith("captions") for line in lines)
    assert lines[3].startswith("  validation  audio->text R@1: raw 16.7, Procrustes alone 22.2, DiffGAP alone 22.2,")
    assert lines[-3] == ("  chosen      epoch 2; residual scale audio|text 0.5 (queries) / 0 (items), text|audio 1"
                         " (0 = the Procrustes map alone)")
    assert lines[-2] == "  sampler     4 DDIM steps, guidance 1.5 (chosen on validation)"
    assert lines[-1] == "  written     no bridged vectors (the index holds no audio yet)"
    assert not any("{" in line or "'" in line for line in lines)


def test_eval_of_a_names_only_index_says_so_and_gives_the_weak_captions_verdict(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``dgsearch eval --index`` on an aisfx + WordLlama index of file names alone (Debian's five real-gap packages):
    no real caption is held out, the weak captions are scored apart, each with its verdict line."""
    row = {"R@1": 13.58, "R@5": 29.63, "R@10": 44.44, "median_rank": 14.0, "mAP@10": 21.3}
    verdict = {"alone": {"diffgap": 13.58, "best_counterpart": "procrustes", "counterpart_R@1": 22.22,
                         "winner": "procrustes", "margin": -8.64, "interval": [-16.05, -2.3], "queries": 81,
                         "clips": 72},
               "served": {"diffgap_fusion": 23.46, "best_counterpart": "ridge_fusion", "counterpart_R@1": 23.46,
                          "winner": "tie", "margin": 0.0, "interval": [0.0, 0.0], "queries": 81, "clips": 72}}
    result = {"n_test": {}, "results": {}, "verdict": {}, "bridge": "965e76ba59a0b1dac5", "pairs_source": "index",
              "weak_captions": {"n_test": {"audio-text": {"audio": 72, "text": 81}},
                                "results": {"text->audio": {"ridge": row}}, "verdict": {"text->audio": verdict}},
              "trained_on": {"groups": 603, "validation_groups": 68, "pairs": {"audio-text": 673}},
              "chosen": outcome()["chosen"]}
    print_eval(result, fmt="table")
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "test set (index): no held-out clip with a real caption; bridge 965e76ba59a0 trained on 673 audio-text pairs"
        " of 603 clips (68 more tuned its fusion weights); baselines fitted on the same training pairs",
        "weak captions (file names, tags) of held-out clips, scored apart: audio-text: 72 audio clips, 81 texts",
        "chosen on validation: epoch 2 of 7, residual scale audio|text 0, text|audio 0 (0 = the ridge map alone)",
    ]
    assert lines[-1] == (
        "text->audio (weak captions): served, DiffGAP + fusion 23.5 vs ridge + fusion 23.5: tie (95 % interval +0.0"
        " to +0.0 over 72 query clips); alone, DiffGAP 13.6 vs Procrustes 22.2: Procrustes wins by 8.6 (95 % interval"
        " -16.1 to -2.3 over 72 query clips)")
    assert not any("{" in line or "'" in line for line in lines)


def test_eval_names_the_procrustes_anchor_as_train_does(capsys: pytest.CaptureFixture[str]) -> None:
    """A bridge anchored on Procrustes: ``eval``'s "chosen on validation" line says what 0 means under that anchor,
    in the same words as ``train``'s "chosen" line (was always "the ridge map alone")."""
    chosen = {**outcome()["chosen"], "anchor": {"audio-text": "procrustes", "audio-video": "ridge"},
              "residual_scale": {"audio|text": 0.0, "text|audio": 0.5},
              "residual_scale_items": {"audio|text": 0.0, "text|audio": 0.5}}
    result = {"n_test": {}, "results": {}, "verdict": {}, "bridge": "965e76ba59a0b1dac5", "pairs_source": "index",
              "trained_on": {"groups": 603, "validation_groups": 68, "pairs": {"audio-text": 673}}, "chosen": chosen}
    print_eval(result, fmt="table")
    eval_line = capsys.readouterr().out.splitlines()[1]
    assert eval_line == ("chosen on validation: epoch 2 of 7, residual scale audio|text 0, text|audio 0.5"
                         " (0 = the linear map alone: Procrustes for audio-text, ridge for audio-video)")
    print_train(outcome(chosen=chosen), fmt="table")
    train_line = next(line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith("chosen"))
    assert train_line.split("residual scale ")[1] == eval_line.split("residual scale ")[1]
