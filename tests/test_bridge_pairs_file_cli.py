"""Train and evaluate a bridge from pairs files alone (no media): a fresh index, baselines fitted on the training
pairs, the fair served counterparts and their verdict, ``--plot`` pictures, and the refusals (pairs the bridge saw,
malformed files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import dg


from diffgap_search.bridge.index_bridge import load_index_bridge
from diffgap_search.gap.baselines import LinearMap
from diffgap_search.gap.directions import Direction, describe_scales
from diffgap_search.gap.fusion import FusionConfig, fused_unit_scores
from diffgap_search.gap.groups import validation_mask
from diffgap_search.gap.protocol import group_codes, tasks_for
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.store.catalog import Catalog


# -- pairs files: train and eval without any media ------------------------------------------------------
N_TRAIN_CLIPS, N_TEST_CLIPS, CAPTIONS = 50, 40, 5


def _write_pairs(path: Path, world: GapWorld, clips: int, seed: int, prefix: str, *, groups: bool = True) -> dict:
    pairs, clip = world.sample_clips(clips, seed, captions=CAPTIONS, caption_jitter=0.3).pairs()
    ids = np.array([f"{prefix}{c}" for c in clip])
    np.savez(path, **pairs, **({"group": ids} if groups else {}))
    return {**pairs, "group": ids}


@pytest.fixture(scope="module")
def from_pairs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict, dict, dict]:
    """A bridge trained from train.npz into an index that holds no media (it did not exist before)."""
    root = tmp_path_factory.mktemp("pairs")
    world = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0)
    train = _write_pairs(root / "train.npz", world, N_TRAIN_CLIPS, 1, "train-clip-")
    test = _write_pairs(root / "test.npz", world, N_TEST_CLIPS, 2, "test-clip-")
    ix = root / "fresh"
    t = dg("train", "--pairs-file", root / "train.npz", "--index", ix, "--epochs", "2", "--batch-size", "64", "--json")
    assert t.exit_code == 0, t.output
    return root, ix, root / "test.npz", train, test, json.loads(t.stdout)


def test_train_on_a_whole_pairs_file_into_a_fresh_index(from_pairs: tuple) -> None:
    root, ix, _, train, _, out = from_pairs
    val = validation_mask(train["group"].astype(object), 0.1)
    n_val_clips = len(set(train["group"][val].tolist()))
    assert out["train_pairs"] == {"audio-text": N_TRAIN_CLIPS * CAPTIONS} and out["held_out_pairs"] == {}
    assert out["validation_pairs"] == {"audio-text": int(val.sum())}
    assert out["groups"] == {"train": N_TRAIN_CLIPS - n_val_clips, "val": n_val_clips}
    assert out["pairs_source"] == str(root / "train.npz")
    assert out["derived_vectors"] == {"audio_as_text": 0}
    assert sorted(p.name for p in ix.iterdir() if not p.name.startswith((".", "catalog.sqlite-"))) == [
        out["file"], "catalog.sqlite"]  # a catalog and the bridge: no media, no vectors
    table = dg("train", "--pairs-file", root / "train.npz", "--index", root / "other", "--epochs", "1",
               "--batch-size", "64")
    assert table.exit_code == 0 and "evaluate it with `dgsearch eval --pairs-file`" in table.stdout
    for command in ("train", "eval"):  # no media: no pairs of its own to train on or hold out
        own = dg(command, "--index", ix)
        assert own.exit_code == 2 and own.stderr == (
            f"dgsearch: error: index {ix} holds no indexed media, so no pairs of its own: pass --pairs-file\n")


def test_eval_on_a_whole_pairs_file_with_baselines_fitted_on_the_training_pairs(from_pairs: tuple) -> None:
    _, ix, test_file, train, test, _ = from_pairs
    r = dg("eval", "--pairs-file", test_file, "--index", ix, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["n_test"] == {"audio-text": {"audio": N_TEST_CLIPS, "text": N_TEST_CLIPS * CAPTIONS}}
    assert res["pairs_source"] == str(test_file)
    val = validation_mask(train["group"].astype(object), 0.1)
    assert res["trained_on"]["pairs"] == {"audio-text": int((~val).sum())}
    # Procrustes fitted here on the bridge's own training pairs (train.npz less its validation clips) scores
    # exactly what eval reports: eval needed neither train.npz nor a refit on the test file.
    to_audio, to_text = tasks_for("audio", "text", test["audio"], test["text"], group_codes(test["group"]))
    for task, (src, tgt) in ((to_audio, ("text", "audio")), (to_text, ("audio", "text"))):
        fitted = LinearMap.fit_procrustes(train[src][~val], train[tgt][~val])
        expected = task.vector_metrics(fitted(task.queries.vectors) @ task.items.vectors.T)
        assert res["results"][task.key]["procrustes"] == pytest.approx(expected, abs=1e-9)
        assert res["results"][task.key]["raw"] == pytest.approx(
            task.vector_metrics(task.queries.vectors @ task.items.vectors.T), abs=1e-9)
    table = dg("eval", "--pairs-file", test_file, "--index", ix, "--max-clips", "10")
    assert table.exit_code == 0 and "audio-text: 10 audio clips, 50 texts" in table.stdout


def test_eval_serves_the_fair_counterparts_beside_the_bridge_and_says_who_wins(from_pairs: tuple) -> None:
    """Ridge + fusion and Procrustes + fusion, with the weights tuned on the bridge's validation clips and stored
    with it, score exactly their formula on the test clips; the verdict names the better side per direction."""
    _, ix, test_file, _, test, out = from_pairs
    r = dg("eval", "--pairs-file", test_file, "--index", ix, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    with Catalog.open(ix) as catalog:
        bridge = load_index_bridge(ix, catalog)
    weights = bridge.selection["counterpart_fusion"]
    for role in ("residual_scale", "residual_scale_items"):
        assert res["chosen"][role] == bridge.selection[role] == out["chosen"][role]
    for task in tasks_for("audio", "text", test["audio"], test["text"], group_codes(test["group"])):
        methods = res["results"][task.key]
        assert list(methods)[-3:] == ["diffgap_fusion", "ridge_fusion", "procrustes_fusion"]
        for kind in ("ridge", "procrustes"):
            lin = bridge.record.baselines["audio-text"].linear(kind, task.queries.modality, task.items.modality)
            back = bridge.record.baselines["audio-text"].linear(kind, task.items.modality, task.queries.modality)
            q, g = task.queries.vectors, task.items.vectors
            terms = (q @ g.T, lin(q) @ g.T, q @ back(g).T)
            expected = task.metrics(fused_unit_scores(task, *terms, FusionConfig(**weights[kind][task.key])))
            assert methods[f"{kind}_fusion"] == pytest.approx(expected, abs=1e-9)
        served = res["verdict"][task.key]["served"]
        best = max(("ridge_fusion", "procrustes_fusion"), key=lambda m: methods[m]["R@1"])
        assert served["best_counterpart"] == best and served["counterpart_R@1"] == methods[best]["R@1"]
        margin = methods["diffgap_fusion"]["R@1"] - methods[best]["R@1"]
        assert served["winner"] == ("tie" if abs(margin) < 0.05 else "diffgap_fusion" if margin > 0 else best)
        assert set(res["verdict"][task.key]["alone"]) == {"diffgap", "best_counterpart", "counterpart_R@1", "winner",
                                                          "margin", "interval", "queries", "clips"}
        for duel in res["verdict"][task.key].values():  # the margin's bootstrap interval over the test clips holds it
            lo, hi = duel["interval"]
            assert lo <= duel["margin"] + 1e-9 and duel["margin"] <= hi + 1e-9
            assert duel["queries"] == task.queries.n_units and duel["clips"] == len(np.unique(test["group"]))
    table = dg("eval", "--pairs-file", test_file, "--index", ix)
    lines = [line for line in table.stdout.splitlines() if line.startswith(("text->audio: served", "audio->text: served"))]
    assert len(lines) == 2 and all("DiffGAP + fusion" in line and "alone, DiffGAP" in line for line in lines)
    clips = len(np.unique(test["group"]))
    assert all(line.count(" query clips") == 2 and line.count(" (95 % interval ") == 2 for line in lines), lines
    assert all(f"over {clips} query clips" in line for line in lines)
    info = dg("info", "--index", ix, "--json")
    shown = json.loads(info.stdout)["summary"]["bridge"]
    assert shown.startswith(f"{bridge.fingerprint[:12]} (audio|text, text|audio); chosen on validation: epoch ")
    assert "(ridge + fusion " in shown
    scales = describe_scales(bridge.selection["residual_scale"], bridge.selection["residual_scale_items"])
    assert f", residual scale {scales}; validation served R@1 " in shown
    assert "of resamples (90 % needed)" in shown  # the confirmation half's bootstrap share, as validation found it


def test_eval_plot_draws_the_numbers_eval_prints(from_pairs: tuple, tmp_path: Path) -> None:
    """``--plot``: the R@k curves pass through the printed R@1/5/10, the gap picture is the PCA of the very test
    pairs and their cosines; PNG, SVG and HTML files are written."""
    from diffgap_search.bridge.evaluate import evaluate_index_bridge
    from diffgap_search.bridge.plot import plot_data, write_plot
    from diffgap_search.gap.baselines import l2n
    from diffgap_search.projection import fit_pca

    _, ix, test_file, _, test, _ = from_pairs
    result = evaluate_index_bridge(ix, load_encoder=lambda cfg: None, pairs_file=test_file, plot=True)  # type: ignore[arg-type,return-value]
    data = plot_data(result)
    assert data["captions"] == "real" and data["results"] == result.results
    assert set(data["curves"]) == set(result.results) == {"text->audio", "audio->text"}
    for direction, methods in data["curves"].items():
        assert set(methods) == set(result.results[direction])
        for method, recalls in methods.items():
            # 40 clips to rank for text->audio; 200 captions (capped at 50) for audio->text
            assert len(recalls) == (N_TEST_CLIPS if direction == "text->audio" else 50)
            assert [recalls[k - 1] for k in (1, 5, 10)] == [result.results[direction][method][f"R@{k}"] for k in (1, 5, 10)]
            assert recalls == sorted(recalls)
    pic = data["pictures"]["audio-text"]
    xa, xb = l2n(test["audio"].astype(np.float32)), l2n(test["text"].astype(np.float32))
    assert pic["before"]["a"].shape == pic["before"]["b"].shape == (N_TEST_CLIPS * CAPTIONS, 2)
    assert np.allclose(pic["before"]["a"], fit_pca([xa, xb]).project(xa), atol=1e-5)
    assert np.allclose(pic["cosines"]["before"]["true"], (xa * xb).sum(1), atol=1e-5)
    assert pic["cosines"]["before"]["true"].mean() > pic["cosines"]["before"]["random"].mean()
    written = {s: write_plot(result, tmp_path / f"gap{s}") for s in (".png", ".svg", ".html")}
    assert written[".png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = written[".svg"].read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "</svg>" in svg
    page = written[".html"].read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert f"<td>text->audio</td><td>diffgap</td><td>{result.results['text->audio']['diffgap']['R@1']:.1f}</td>" in page.replace("&gt;", ">")
    r = dg("eval", "--pairs-file", test_file, "--index", ix, "--plot", tmp_path / "cli.png", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"] == result.results and (tmp_path / "cli.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_plot_refuses_other_formats_and_says_when_matplotlib_is_missing(from_pairs: tuple, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _, ix, test_file, _, _, _ = from_pairs
    r = dg("eval", "--pairs-file", test_file, "--index", ix, "--plot", tmp_path / "gap.pdf")
    assert (r.exit_code, r.stderr) == (2, f"dgsearch: error: --plot {tmp_path / 'gap.pdf'}: the file must end in .png, .svg or .html\n")
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # as if not installed
    r = dg("eval", "--pairs-file", test_file, "--index", ix, "--plot", tmp_path / "gap.png")
    assert (r.exit_code, r.stderr) == (2, "dgsearch: error: --plot needs matplotlib: pip install 'diffgap-search[plot]'"
                                          " (or pip install matplotlib)\n")
    assert not (tmp_path / "gap.png").exists()


def test_eval_refuses_pairs_the_bridge_saw(from_pairs: tuple) -> None:
    root, ix, _, train, test, _ = from_pairs
    val = validation_mask(train["group"].astype(object), 0.1)
    n_val_clips = len(set(train["group"][val].tolist()))
    r = dg("eval", "--pairs-file", root / "train.npz", "--index", ix)
    assert r.exit_code == 2
    assert r.stderr == (
        f"dgsearch: error: {N_TRAIN_CLIPS} of the {N_TRAIN_CLIPS} clips (groups) in {root / 'train.npz'} were seen"
        f" by this bridge ({N_TRAIN_CLIPS - n_val_clips} trained on, {n_val_clips} tuned its fusion weights):"
        " evaluate on pairs it never saw\n")
    leaky = {k: np.concatenate([test[k], train[k][:2 * CAPTIONS]]) for k in ("audio", "text", "group")}
    np.savez(root / "leaky.npz", **leaky)  # the test clips plus two training clips, all their captions
    r = dg("eval", "--pairs-file", root / "leaky.npz", "--index", ix)
    assert r.exit_code == 2 and f"error: 2 of the {N_TEST_CLIPS + 2} clips (groups)" in r.stderr


def test_a_pairs_file_without_groups_groups_identical_audio(from_pairs: tuple, tmp_path: Path) -> None:
    train = from_pairs[3]
    np.savez(tmp_path / "nogroup.npz", audio=train["audio"], text=train["text"])
    out = json.loads(dg("train", "--pairs-file", tmp_path / "nogroup.npz", "--index", tmp_path / "ix",
                        "--epochs", "1", "--batch-size", "64", "--json").stdout)
    assert out["groups"]["train"] + out["groups"]["val"] == N_TRAIN_CLIPS  # one group per clip's audio
    np.savez(tmp_path / "bad.npz", audio=train["audio"], text=train["text"], group=np.arange(3))
    bad = dg("train", "--pairs-file", tmp_path / "bad.npz", "--index", tmp_path / "ix2")
    assert bad.exit_code == 2 and "'group' must be a 1-d array of 250 clip ids" in bad.stderr
    assert not (tmp_path / "ix2").exists()  # nothing created for a refused file
    missing = dg("train", "--pairs-file", tmp_path / "missing.npz", "--index", tmp_path / "ix3")
    assert missing.exit_code == 3 and not (tmp_path / "ix3").exists()


def test_a_replaced_bridge_is_kept_while_a_reader_loads_it(tmp_path: Path) -> None:
    """Retraining replaces the bridge file; a reader between reading the record and loading its file (it
    holds the readers' lock) keeps the old file alive, and the next writer's sweep removes it."""
    from diffgap_search.bridge.index_bridge import load_index_bridge
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.store.generations import reading, sweep_unpublished

    world = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0)
    _write_pairs(tmp_path / "train.npz", world, 20, 1, "clip-")
    ix = tmp_path / "ix"
    first = dg("train", "--pairs-file", tmp_path / "train.npz", "--index", ix, "--epochs", "1", "--json")
    assert first.exit_code == 0, first.output
    old = json.loads(first.stdout)["file"]
    with reading(ix) as held:
        assert held
        second = dg("train", "--pairs-file", tmp_path / "train.npz", "--index", ix, "--epochs", "1",
                    "--seed", "1", "--json")
        assert second.exit_code == 0, second.output
        new = json.loads(second.stdout)["file"]
        assert new != old and (ix / old).is_file() and (ix / new).is_file()  # the reader may still need old
    with Catalog.open(ix) as catalog:
        assert load_index_bridge(ix, catalog).fingerprint.startswith(new[len("bridge-"):-len(".safetensors")])
        assert sweep_unpublished(ix, catalog, wait_s=0)
    assert sorted(p.name for p in ix.glob("bridge-*")) == [new]


def test_train_anchor_forced_to_procrustes_is_served_and_shown_and_a_bad_anchor_is_refused(from_pairs: tuple) -> None:
    """``--anchor procrustes`` anchors the pair set on Procrustes (``dgsearch info`` says so); ``--anchor lasso``
    stops before anything is trained, with exit 2 and one line."""
    root, _, _, _, _, _ = from_pairs
    ix = root / "procrustes"
    t = dg("train", "--pairs-file", root / "train.npz", "--index", ix, "--epochs", "1", "--batch-size", "64",
           "--anchor", "procrustes", "--threads", "1", "--json")
    assert t.exit_code == 0, t.output
    with Catalog.open(ix) as catalog:
        bridge = load_index_bridge(ix, catalog)
    assert bridge.selection["anchor_kind"] == {"audio-text": "procrustes"}
    m = bridge.record.baselines["audio-text"].linear("procrustes", "text", "audio")
    k = Direction.of("text", "audio").index
    assert np.array_equal(bridge.denoiser.anchor_weight[k].numpy(), m.weight)
    info = json.loads(dg("info", "--index", ix, "--json").stdout)["summary"]["bridge"]
    assert ", anchored audio-text on Procrustes, residual scale " in info and "(Procrustes + fusion " in info
    bad = dg("train", "--pairs-file", root / "train.npz", "--index", root / "never", "--anchor", "lasso")
    assert bad.exit_code == 2 and bad.stderr == "dgsearch: error: --anchor takes auto, ridge or procrustes, got 'lasso'\n"
    assert not (root / "never").exists()
