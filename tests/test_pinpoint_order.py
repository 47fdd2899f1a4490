"""``--pinpoint`` scores and orders the hits of a ranking by cosine by their narrowed seconds.

Four 20 s recordings, each over one of sonic-pi's ambient loops (a drone, a haunted hum, a lunar landing, a sauna:
CC0, Debian's sonic-pi-samples) at -36 dBFS RMS with two one-shots on it, indexed in 10 s windows with the real
aisfx weights. A 10 s window's vector is mostly its loop: querying by ``tabla_ghe4`` ranks ``rec_0`` (the drone,
holding a tom and a crow) first, ``rec_1`` (the tabla's own) third. Narrowed, the tabla's 0.6 s in ``rec_1`` match
best, so ``--pinpoint`` lists ``rec_1`` first, at the tabla's seconds, its score theirs (``window_score``: its
window's).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from oneshot_reels import RATE, middle, write_reel
from real_sounds import SAMPLES_DIR, require_real_sounds

from cli_runner import dg
from diffgap_search.media.audio import load_audio

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")

LOOPS = ("ambi_drone", "ambi_haunted_hum", "ambi_lunar_land", "ambi_sauna")
SHOTS = ((("drum_tom_mid_hard", 4.3), ("misc_crow", 13.1)), (("tabla_ghe4", 6.2), ("elec_bong", 15.4)),
         (("drum_snare_hard", 3.0), ("perc_bell", 12.0)), (("elec_blip", 5.5), ("bd_haus", 14.2)))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(library, index)``: ``rec_N.flac`` = loop N at -36 dBFS RMS, 20 s, with its two one-shots."""
    require_real_sounds()
    root = tmp_path_factory.mktemp("order")
    (root / "lib").mkdir()
    for n, (loop, shots) in enumerate(zip(LOOPS, SHOTS)):
        bed = load_audio(SAMPLES_DIR / f"{loop}.flac", RATE).astype(np.float64)
        write_reel(root / "lib" / f"rec_{n}.flac", shots, 20.0, seed=n,
                   background=(bed / np.sqrt(np.mean(bed**2)) * 10 ** (-36 / 20)).astype(np.float32))
    r = dg("index", root / "lib", "--index", root / "ix", "--model", "aisfx", "--workers", "0")
    assert r.exit_code == 0, r.output
    return root / "lib", root / "ix"


def hits_of(ix: Path, *args: object) -> list[dict]:
    r = dg("query", "--index", ix, "-k", "4", "--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["hits"]


def test_the_recording_whose_seconds_match_comes_first(library: tuple[Path, Path]) -> None:
    lib, ix = library
    shot = SAMPLES_DIR / "tabla_ghe4.flac"
    plain = hits_of(ix, "--audio", shot)
    pinpointed = hits_of(ix, "--audio", shot, "--pinpoint")
    assert [Path(h["path"]).name for h in plain][:3] == ["rec_0.flac", "rec_2.flac", "rec_1.flac"]
    assert Path(pinpointed[0]["path"]).name == "rec_1.flac"
    assert pinpointed[0]["start_s"] <= middle("tabla_ghe4", 6.2) <= pinpointed[0]["end_s"]
    assert pinpointed[0]["end_s"] - pinpointed[0]["start_s"] <= 1.25
    assert sorted(h["path"] for h in pinpointed) == sorted(h["path"] for h in plain)  # the same hits, reordered
    scores = [h["score"] for h in pinpointed]
    assert scores == sorted(scores, reverse=True) and scores == [h["pinpoint_score"] for h in pinpointed]
    by_path = {h["path"]: h["score"] for h in plain}
    assert all(h["window_score"] == pytest.approx(by_path[h["path"]], abs=1e-6) for h in pinpointed)


def test_a_hybrid_ranking_keeps_its_order(library: tuple[Path, Path]) -> None:
    """``by_seconds`` off (a hybrid ranking: its scores fuse ranks, not cosines): the narrowed hits keep their order
    and their scores; on, the same hits are scored by their spans and ordered by them."""
    from diffgap_search.config import SearchConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search import Query, Searcher

    _, ix = library
    cfg = SearchConfig(top_k=4, pinpoint=True)
    with Searcher(ix, load_encoder) as searcher:
        qvecs = searcher.embed_query(Query(audio=SAMPLES_DIR / "tabla_ghe4.flac"))
        terms = searcher.terms_for("audio", qvecs)
        hits, _, _ = searcher.search_terms(terms, cfg)
        fused, _, _ = searcher.pinpoint(hits, terms, cfg, 0.8, by_seconds=False)
        cosine, _, _ = searcher.pinpoint(hits, terms, cfg, 0.8)
    assert [(h.path, h.score) for h in fused] == [(h.path, h.score) for h in hits]
    assert all(h.window_score is None for h in fused)
    assert [h.score for h in cosine] == sorted((h.pinpoint_score for h in fused), reverse=True)  # type: ignore[misc]
    assert Path(cosine[0].path).name == "rec_1.flac" and Path(hits[0].path).name == "rec_0.flac"
