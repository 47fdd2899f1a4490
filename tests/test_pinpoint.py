"""``--pinpoint`` on a real library: CC0 one-shots of Debian's sonic-pi-samples placed at known seconds in two
20 s recordings over quiet noise, indexed in 10 s windows with the real aisfx weights through the CLI.

Each one-shot, as the query, comes back in its recording narrowed from its 10 s window to a span of at most
1.25 s holding its middle; the ranking and scores are the unpinpointed ones; ``--save`` cuts the narrowed
span; a file gone since indexing is left as it was with the reason; the keyword mode is refused; a hit
spanning its whole file (a keyword hit) is narrowed inside the window the query scores best. ``load_span``
reads a span as the whole file's decode has it.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from oneshot_reels import RATE, REELS, indexed_reels, middle
from real_sounds import SAMPLES_DIR, require_real_sounds

from cli_runner import dg
from diffgap_search.errors import MediaDecodeError
from diffgap_search.media.audio import load_audio, load_span

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")

@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The two recordings (``oneshot_reels.REELS``) and their aisfx index."""
    return indexed_reels(tmp_path_factory.mktemp("pinpoint"))


def query(ix: Path, *args: object) -> dict:
    r = dg("query", "--index", ix, "--segments", "-k", "2", "--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize(("reel", "event"), [(reel, i) for reel in REELS for i in range(2)])
def test_a_one_shot_is_pinpointed_inside_its_window(library: tuple[Path, Path], reel: str, event: int) -> None:
    lib, ix = library
    stem, onset = REELS[reel][event]
    shot = SAMPLES_DIR / f"{stem}.flac"
    plain = query(ix, "--audio", shot)["hits"]
    hits = query(ix, "--audio", shot, "--pinpoint")["hits"]
    window = [0.0, 10.0] if onset < 10 else [10.0, 20.0]
    assert hits[0]["path"] == str(lib / f"{reel}.flac")
    assert [(h["path"], h["segment_id"], h["window_score"]) for h in hits] == [
        (h["path"], h["segment_id"], h["score"]) for h in plain]  # found as without it, in the same order here
    assert [h["score"] for h in hits] == [h["pinpoint_score"] for h in hits]  # scored by their seconds
    assert [plain[0]["start_s"], plain[0]["end_s"]] == window and "window" not in plain[0]
    assert hits[0]["window"] == window
    assert hits[0]["start_s"] <= middle(stem, onset) <= hits[0]["end_s"]
    assert hits[0]["end_s"] - hits[0]["start_s"] <= 1.25
    assert hits[0]["score"] > hits[0]["window_score"]  # the one-shot alone matches better than its 10 s window


def test_save_cuts_the_pinpointed_seconds(library: tuple[Path, Path], tmp_path: Path) -> None:
    _, ix = library
    doc = query(ix, "--audio", SAMPLES_DIR / "tabla_ghe4.flac", "--pinpoint", "--save", tmp_path / "picks")
    hit = doc["hits"][0]
    info = sf.info(hit["saved"])
    assert info.samplerate == RATE
    assert abs(info.frames - (hit["end_s"] - hit["start_s"]) * RATE) <= 1  # 0.625 s: 27,562.5 frames
    saved, _ = sf.read(hit["saved"], dtype="float32")
    source = load_span(Path(hit["path"]), RATE, hit["start_s"], hit["end_s"])
    n = min(len(saved), len(source))
    assert np.corrcoef(saved[:n], source[:n])[0, 1] > 0.999


def test_similar_pinpoints_too(library: tuple[Path, Path]) -> None:
    lib, ix = library
    r = dg("similar", SAMPLES_DIR / "misc_crow.flac", "--index", ix, "--segments", "-k", "1", "--pinpoint", "--json")
    assert r.exit_code == 0, r.output
    hit = json.loads(r.stdout)["hits"][0]
    assert hit["path"] == str(lib / "reel_a.flac") and hit["window"] == [10.0, 20.0]
    assert hit["start_s"] <= middle("misc_crow", 13.1) <= hit["end_s"]


def test_the_keyword_mode_is_refused(library: tuple[Path, Path]) -> None:
    _, ix = library
    r = dg("query", "crow", "--index", ix, "--mode", "keyword", "--pinpoint")
    assert r.exit_code == 2
    assert ("--pinpoint narrows hits by their sound, and --mode keyword loads no model: use --mode hybrid or"
            " semantic with --pinpoint") in " ".join(r.stderr.split())


def test_a_file_gone_since_indexing_is_left_as_it_was_with_the_reason(library: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    lib, ix = library
    copy_lib, copy_ix = tmp_path / "lib", tmp_path / "ix"
    shutil.copytree(lib, copy_lib)
    assert dg("index", copy_lib, "--index", copy_ix, "--model", "aisfx", "--workers", "0").exit_code == 0
    (copy_lib / "reel_b.flac").unlink()
    r = dg("query", "--index", copy_ix, "--audio", SAMPLES_DIR / "tabla_ghe4.flac", "--segments", "-k", "4",
           "--pinpoint", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    first = doc["hits"][0]
    assert first["path"] == str(copy_lib / "reel_b.flac") and [first["start_s"], first["end_s"]] == [0.0, 10.0]
    gone = [h for h in doc["hits"] if h["path"].endswith("reel_b.flac")]
    there = [h for h in doc["hits"] if h["path"].endswith("reel_a.flac")]
    assert len(gone) == len(there) == 2
    assert all("window" not in h and h["end_s"] - h["start_s"] == 10.0 for h in gone)
    assert all("window" in h for h in there)  # the files still there are narrowed
    assert doc["note"].count(f"{copy_lib / 'reel_b.flac'}: not pinpointed: file not found") == 1  # once a file


def test_a_hit_spanning_its_whole_file_is_narrowed_in_the_window_the_query_scores_best(
        library: tuple[Path, Path]) -> None:
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search.pinpoint import pinpoint_hits
    from diffgap_search.search.types import Hit

    lib, ix = library
    with Searcher(ix, load_encoder) as searcher:
        vectors = searcher.embed_query(Query(audio=SAMPLES_DIR / "elec_bong.flac"))
        terms = searcher.terms_for("audio", vectors)
        row = searcher.catalog.file_by_key(bytes(str(lib / "reel_b.flac"), "utf-8"))
        assert row is not None
        whole = Hit(str(lib / "reel_b.flac"), "audio", 0.0, 20.0, 1.0, None, 0, row.id)  # as a keyword hit spans it
        (hit,), notes = pinpoint_hits(searcher.opened, terms, [whole])
    assert notes == []
    assert hit.window == (10.0, 20.0)
    assert hit.start_s <= middle("elec_bong", 15.4) <= hit.end_s


def test_load_span_reads_the_whole_files_samples_from_where_it_is_asked() -> None:
    require_real_sounds()
    path = SAMPLES_DIR / "loop_amen_full.flac"
    whole = load_audio(path, 48_000)
    span = load_span(path, 48_000, 1.0, 2.5)
    assert span.dtype == np.float32 and span.shape == (72_000,)
    assert np.abs(span[2000:-2000] - whole[48_000 + 2000 : 48_000 + 72_000 - 2000]).max() < 1e-5  # resampler edges
    native = load_span(path, RATE, 2.0, 3.0)
    assert np.array_equal(native, load_audio(path, RATE)[2 * RATE : 3 * RATE])  # no resampling: exactly
    tail = load_span(path, RATE, 6.5, 9.0)
    assert len(tail) == len(load_audio(path, RATE)) - int(6.5 * RATE)  # the file ends first: what is there
    with pytest.raises(MediaDecodeError, match="no audio samples decoded"):
        load_span(path, RATE, 30.0, 31.0)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_load_span_through_ffmpeg_lands_within_a_millisecond(tmp_path: Path) -> None:
    import subprocess

    require_real_sounds()
    mka = tmp_path / "amen.mka"  # a container libsndfile cannot read: ffmpeg decodes it, seeking with -ss
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(SAMPLES_DIR / "loop_amen_full.flac"), "-c:a", "pcm_s16le",
                    str(mka)], check=True)
    whole = load_audio(mka, RATE)
    span = load_span(mka, RATE, 1.0, 2.5)
    assert span.shape == (int(1.5 * RATE),)
    lags = [lag for lag in range(-44, 45)
            if np.abs(whole[RATE + lag : RATE + lag + len(span)] - span).max() < 1e-6]
    assert len(lags) == 1  # the same samples, from at most 1 ms (44 samples) away (Matroska's ms timestamps)


def test_the_web_api_and_page_pinpoint_on_request(library: tuple[Path, Path]) -> None:
    """A real ``dgsearch serve`` on loopback: ``pinpoint`` on both search endpoints (real HTTP client), and the
    page's checkbox (real headless Chromium) asks for it, shows the narrowed seconds and keeps it in the URL."""
    import httpx
    from browser import chromium, require_chromium
    from serve_server import start_serve
    from test_serve_page import wait_for

    lib, ix = library
    served = start_serve(ix)
    try:
        with open(SAMPLES_DIR / "tabla_ghe4.flac", "rb") as fh:
            posted = httpx.post(served.url + "api/search/file", files={"file": ("tabla_ghe4.flac", fh)},
                                data={"pinpoint": "true", "k": "1"}, timeout=120).json()
        hit = posted["hits"][0]
        assert hit["path"] == str(lib / "reel_b.flac") and hit["window"] == [0.0, 10.0]
        assert hit["start_s"] <= middle("tabla_ghe4", 6.2) <= hit["end_s"]
        file_id = hit["file_id"]
        span = {"file": file_id, "start": 6.0, "end": 7.2, "k": 1}
        plain = httpx.get(served.url + "api/search", params=span, timeout=120).json()["hits"][0]
        narrowed = httpx.get(served.url + "api/search", params={**span, "pinpoint": "true"}, timeout=120).json()["hits"][0]
        assert "window" not in plain and (plain["start_s"], plain["end_s"]) == (0.0, 10.0)
        assert narrowed["window"] == [0.0, 10.0] and narrowed["start_s"] <= middle("tabla_ghe4", 6.2) <= narrowed["end_s"]
        require_chromium()
        with chromium() as browser:
            browser.get(served.url + f"?file={file_id}&start=6&end=7.2")
            wait_for(browser, "document.querySelector('#status').textContent.includes('result')", timeout=120)
            assert browser.execute_script("return document.querySelector('#hits .hit .time').textContent") == "0:00.0 → 0:10.0"
            browser.find_element("css selector", "#f-pinpoint").click()
            wait_for(browser, "document.querySelector('#hits .hit .time') && document.querySelector('#hits .hit .time').title",
                     timeout=120)
            time_el = "document.querySelector('#hits .hit .time')"
            start, end = (float(x.split(":")[1]) for x in browser.execute_script(f"return {time_el}.textContent").split(" → "))
            tenths = [math.floor(narrowed[k] * 10 + 0.5) / 10 for k in ("start_s", "end_s")]  # as the page rounds
            assert [start, end] == tenths
            assert browser.execute_script(f"return {time_el}.title") == "pinpointed in the window 0:00.0 → 0:10.0"
            assert browser.current_url.endswith(f"?file={file_id}&start=6&end=7.2&pinpoint=true")
    finally:
        served.stop()


def test_hits_are_narrowed_alike_whatever_how_many_share_an_encoder_call(library: tuple[Path, Path],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Regions are read and narrowed ``HITS_PER_CALL`` hits at a time: one at a time gives the same spans."""
    from diffgap_search.config import SearchConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search import pinpoint

    _, ix = library
    cfg = SearchConfig(top_k=4, group_by_file=False, pinpoint=True)
    with Searcher(ix, load_encoder) as searcher:
        together = searcher.search(Query(audio=SAMPLES_DIR / "misc_crow.flac"), cfg).hits
        monkeypatch.setattr(pinpoint, "HITS_PER_CALL", 1)
        apart = searcher.search(Query(audio=SAMPLES_DIR / "misc_crow.flac"), cfg).hits
    assert len(together) == 4 and all(h.window is not None for h in together)
    assert [(h.segment_id, h.start_s, h.end_s) for h in apart] == [(h.segment_id, h.start_s, h.end_s) for h in together]
    assert [h.pinpoint_score for h in apart] == pytest.approx([h.pinpoint_score for h in together], abs=1e-5)


def test_a_sound_cut_by_the_edge_of_two_windows_is_listed_once(tmp_path: Path) -> None:
    """With --segments both windows around a one-shot at 9.7-10.5 s narrow to it: one hit, at the better rank."""
    from oneshot_reels import write_reel

    require_real_sounds()
    (tmp_path / "lib").mkdir()
    write_reel(tmp_path / "lib" / "edge.flac", (("tabla_ghe4", 9.7),), 20.0, seed=3)
    ix = tmp_path / "ix"
    assert dg("index", tmp_path / "lib", "--index", ix, "--model", "aisfx", "--workers", "0").exit_code == 0
    plain = query(ix, "--audio", SAMPLES_DIR / "tabla_ghe4.flac")["hits"]
    assert [(h["start_s"], h["end_s"]) for h in plain] == [(0.0, 10.0), (10.0, 20.0)]  # both windows hold some of it
    (hit,) = query(ix, "--audio", SAMPLES_DIR / "tabla_ghe4.flac", "--pinpoint")["hits"]
    assert hit["segment_id"] == plain[0]["segment_id"] and hit["window"] == [0.0, 10.0]
    assert hit["start_s"] <= middle("tabla_ghe4", 9.7) <= hit["end_s"]


def test_a_one_shot_file_found_by_itself_keeps_its_whole_seconds(tmp_path: Path) -> None:
    """A library of one-shot files (each its own window): querying one by itself finds it first with score 1, and
    --pinpoint keeps it whole — its window scores best; until the window itself was a candidate, each came back
    cut to the half scoring best (magic-holy-1.ogg of Wesnoth: its second half, 0.96 against the whole's 1.0)."""
    require_real_sounds()
    lib = tmp_path / "shots"
    lib.mkdir()
    stems = ("ambi_choir", "bass_hard_c", "drum_cymbal_hard", "elec_filt_snare")  # 1.5-1.7 s each
    for stem in stems:
        shutil.copy(SAMPLES_DIR / f"{stem}.flac", lib)
    ix = tmp_path / "ix"
    r = dg("index", lib, "--index", ix, "--model", "aisfx")
    assert r.exit_code == 0, r.output
    for stem in stems:
        hit = query(ix, "--audio", lib / f"{stem}.flac", "--pinpoint")["hits"][0]
        duration = sf.info(lib / f"{stem}.flac").duration
        assert hit["path"] == str(lib / f"{stem}.flac")
        assert (hit["start_s"], hit["end_s"]) == (0.0, pytest.approx(duration, abs=1e-6)) and hit["window"] == [
            hit["start_s"], hit["end_s"]]
        assert hit["pinpoint_score"] == pytest.approx(hit["score"], abs=1e-4)


def test_the_querys_longest_window_is_what_pinpoint_is_told(library: tuple[Path, Path]) -> None:
    """``search/spans.answer`` descends for a query at least half a window long: a one-shot file is its own
    seconds, a recording its 10 s windows, a stored window (``--like``, ``similar SEGMENT``) its own seconds, an
    indexed file (``similar FILE``) its longest stored window."""
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search.embedding import query_vectors
    from diffgap_search.search.similar import target_vectors

    lib, ix = library
    shot = SAMPLES_DIR / "tabla_ghe4.flac"
    with Searcher(ix, load_encoder) as searcher:
        opened = searcher.opened
        segment = query(ix, "--audio", shot)["hits"][0]["segment_id"]
        assert query_vectors(opened, Query(audio=shot))[1] == pytest.approx(sf.info(shot).duration, abs=1e-3)
        assert query_vectors(opened, Query(audio=lib / "reel_a.flac"))[1] == 10.0
        assert query_vectors(opened, Query(audio=lib / "reel_a.flac", start_s=12.0))[1] == 8.0
        assert query_vectors(opened, Query(segment_id=segment))[1] == 10.0
        assert target_vectors(searcher, str(lib / "reel_b.flac"))[2] == 10.0
        assert target_vectors(searcher, str(segment))[2] == 10.0
        assert target_vectors(searcher, str(shot))[2] == pytest.approx(sf.info(shot).duration, abs=1e-3)
