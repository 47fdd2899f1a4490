"""``dgsearch query --audio|--video FILE --timeline``: the hits for each window of the query file.

A 20 s "edit" holds a tabla stroke in its first 10 s and a crow in its second (CC0 one-shots of Debian's
sonic-pi-samples); the library (``oneshot_reels``) holds each in another recording, indexed with the real
aisfx weights. Each query window comes back with its own sound's recording first, scored exactly as a query
of that window alone; a plain query by the whole file mixes both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oneshot_reels import indexed_reels, write_reel

from cli_runner import dg, wide

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")


@pytest.fixture(scope="module")
def edit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(library, index, the 20 s edit: tabla_ghe4 at 3 s, misc_crow at 14 s)."""
    root = tmp_path_factory.mktemp("timeline")
    lib, ix = indexed_reels(root)
    return lib, ix, write_reel(root / "edit.flac", (("tabla_ghe4", 3.0), ("misc_crow", 14.0)), 20.0, seed=7)


def run_json(*args: object) -> dict:
    r = dg("query", *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_each_window_of_the_query_file_gets_its_own_hits(edit: tuple[Path, Path, Path]) -> None:
    lib, ix, clip = edit
    doc = run_json("--index", ix, "--audio", clip, "--timeline", "-k", "2")
    assert doc["query_kind"] == "audio" and doc["mode"] == "semantic"
    assert [(w["start_s"], w["end_s"]) for w in doc["windows"]] == [(0.0, 10.0), (10.0, 20.0)]
    first, second = (w["hits"] for w in doc["windows"])
    assert [(h["path"], h["start_s"]) for h in first] == [(str(lib / "reel_b.flac"), 0.0), (str(lib / "reel_a.flac"), 0.0)]
    assert [(h["path"], h["start_s"]) for h in second] == [(str(lib / "reel_a.flac"), 10.0), (str(lib / "reel_b.flac"), 10.0)]
    for window, hits in ((0, first), (10, second)):  # each window scored as that window queried alone
        alone = run_json("--index", ix, "--audio", clip, "--start", window, "--end", window + 10, "-k", "2")["hits"]
        assert [h["segment_id"] for h in alone] == [h["segment_id"] for h in hits]
        assert [h["score"] for h in alone] == pytest.approx([h["score"] for h in hits], abs=1e-5)
    whole = run_json("--index", ix, "--audio", clip, "-k", "2")["hits"]  # the plain query: best over both windows
    assert [h["score"] for h in whole] == pytest.approx(sorted([first[0]["score"], second[0]["score"]], reverse=True),
                                                        abs=1e-5)


def test_jsonl_rows_carry_their_query_window_and_start_offsets_the_windows(edit: tuple[Path, Path, Path]) -> None:
    lib, ix, clip = edit
    r = dg("query", "--index", ix, "--audio", clip, "--timeline", "-k", "1", "--jsonl")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(row["query_start_s"], row["query_end_s"], row["path"]) for row in rows] == [
        (0.0, 10.0, str(lib / "reel_b.flac")), (10.0, 20.0, str(lib / "reel_a.flac"))]
    late = run_json("--index", ix, "--audio", clip, "--start", "12", "--timeline", "-k", "1")
    assert [(w["start_s"], w["end_s"]) for w in late["windows"]] == [(12.0, 20.0)]  # seconds into the file
    assert late["windows"][0]["hits"][0]["path"] == str(lib / "reel_a.flac")


def test_pinpoint_narrows_each_windows_hits(edit: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A query window is a scene: its hits descend from the coarsest level while the score holds within 0.02
    (``search/spans.answer``), to 2.5 s holding the whole one-shot (tabla_ghe4 at 6.2-7.0 s, misc_crow at
    13.1-13.58 s); the best-scoring level, as a one-shot query takes it, keeps 5 s for both."""
    from diffgap_search.search import spans

    _, ix, clip = edit
    doc = run_json("--index", ix, "--audio", clip, "--timeline", "-k", "1", "--pinpoint")
    assert [w["hits"][0]["window"] for w in doc["windows"]] == [[0.0, 10.0], [10.0, 20.0]]
    assert [(w["hits"][0]["start_s"], w["hits"][0]["end_s"]) for w in doc["windows"]] == [(5.0, 7.5), (12.5, 15.0)]
    assert doc["timings_ms"]["pinpoint"] > 0
    monkeypatch.setattr(spans, "SCENE_SHARE", 1.01)  # no query window is a scene: the best-scoring level
    best = run_json("--index", ix, "--audio", clip, "--timeline", "-k", "1", "--pinpoint")
    assert [(w["hits"][0]["start_s"], w["hits"][0]["end_s"]) for w in best["windows"]] == [(2.5, 7.5), (10.0, 15.0)]


def test_the_table_groups_hits_under_their_query_window(edit: tuple[Path, Path, Path]) -> None:
    _, ix, clip = edit
    r = wide(160, NO_COLOR="1")("query", "--index", ix, "--audio", clip, "--timeline", "-k", "2")
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stdout.splitlines() if "reel_" in line]
    assert [line.split("│")[0].strip() for line in lines] == ["0:00.0-0:10.0", "", "0:10.0-0:20.0", ""]
    assert [line.split("│")[1].strip() for line in lines] == ["1", "2", "1", "2"]
    empty = wide(160, NO_COLOR="1")("query", "--index", ix, "--audio", clip, "--timeline", "--min-score", "0.9999")
    assert empty.exit_code == 0 and empty.stdout.count("no results") == 2


def test_save_cuts_each_windows_hits_into_a_folder_of_its_own(edit: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Spotting a video: ``--save DIR`` with ``--timeline --pinpoint`` leaves ``DIR/NN A-Bs/RANK NAME S-Es.wav``,
    each cut exactly the pinpointed seconds of the hit its JSON names (the same hit may serve two windows)."""
    import soundfile as sf

    lib, ix, clip = edit
    out = tmp_path / "spotted"
    r = dg("query", "--index", ix, "--audio", clip, "--timeline", "--pinpoint", "-k", "2", "--save", out, "--json")
    assert r.exit_code == 0, r.output
    assert " ".join(r.stderr.split()).endswith(f"saved 4 windows to {out}, in 2 folders: one per query window")
    doc = json.loads(r.stdout)

    def secs(x: float) -> str:
        return f"{x:.3f}".rstrip("0").rstrip(".")

    expected = [out / f"{n:02d} {a}-{b}s" / f"{rank:02d} {Path(h['path']).stem} {secs(h['start_s'])}-{secs(h['end_s'])}s.wav"
                for n, (a, b) in enumerate(((0, 10), (10, 20)), 1) for rank, h in enumerate(doc["windows"][n - 1]["hits"], 1)]
    assert [str(p.relative_to(out)).split(" ")[:3] for p in expected] == [
        ["01", "0-10s/01", "reel_b"], ["01", "0-10s/02", "reel_a"], ["02", "10-20s/01", "reel_a"], ["02", "10-20s/02", "reel_b"]]
    assert sorted(f for f in out.rglob("*") if f.is_file()) == expected
    assert [Path(h["saved"]) for w in doc["windows"] for h in w["hits"]] == expected
    for hit in (h for w in doc["windows"] for h in w["hits"]):
        info = sf.info(hit["saved"])
        assert info.frames == round((hit["end_s"] - hit["start_s"]) * info.samplerate)
        assert hit["end_s"] - hit["start_s"] < 10.0  # pinpointed: the seconds, not the window
    again = dg("query", "--index", ix, "--audio", clip, "--timeline", "-k", "1", "--save", out / "table")
    assert again.exit_code == 0 and "saved 2 windows to" in again.stderr
    assert sorted(p.name for p in (out / "table").iterdir()) == ["01 0-10s", "02 10-20s"]


@pytest.mark.parametrize(("args", "message"), [
    (("a crow", "--timeline"), "--timeline lists hits for each window of a query file: give --audio FILE or --video FILE"),
    (("--like", "1", "--timeline"), "--timeline lists hits for each window of a query file: give --audio FILE or --video FILE"),
    (("--audio", "CLIP", "--timeline", "--paths"), "--timeline lists hits per query window: show them as a table, --json"
                                                    " or --jsonl (not with --paths or --print0; --save puts each window's"
                                                    " cuts in a folder of its own)"),
    (("--audio", "CLIP", "--timeline", "--mode", "keyword"), "--timeline ranks each window of the query file by its sound:"
                                                            " not with --mode keyword"),
])
def test_what_has_no_windows_is_refused(edit: tuple[Path, Path, Path], args: tuple[str, ...], message: str) -> None:
    _, ix, clip = edit
    r = dg("query", "--index", ix, *(str(clip) if a == "CLIP" else a for a in args))
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.stderr.split())


def test_the_web_api_and_page_list_hits_per_window(edit: tuple[Path, Path, Path]) -> None:
    """A real ``dgsearch serve`` on loopback: ``timeline`` on the upload and span endpoints gives the CLI's windows
    (real HTTP client); on the page (real headless Chromium) the "per window" box and a chosen file head each
    window's first hit with the window's seconds, and words are searched as always with the box ticked."""
    import httpx
    from browser import chromium, require_chromium
    from serve_server import start_serve
    from test_serve_page import wait_for

    lib, ix, clip = edit
    cli = run_json("--index", ix, "--audio", clip, "--timeline", "-k", "2")
    served = start_serve(ix)
    try:
        with open(clip, "rb") as fh:
            posted = httpx.post(served.url + "api/search/file", files={"file": ("edit.flac", fh)},
                                data={"timeline": "true", "k": "2"}, timeout=120).json()
        assert [[h["segment_id"] for h in w["hits"]] for w in posted["windows"]] == [
            [h["segment_id"] for h in w["hits"]] for w in cli["windows"]]
        reel_a = posted["windows"][1]["hits"][0]["file_id"]
        span = httpx.get(served.url + "api/search", params={"file": reel_a, "start": 0, "end": 20, "timeline": "true",
                                                            "k": 1}, timeout=120).json()
        assert [(w["start_s"], w["end_s"]) for w in span["windows"]] == [(0.0, 10.0), (10.0, 20.0)]
        words = httpx.get(served.url + "api/search", params={"q": "crow", "timeline": "true"}, timeout=60)
        assert words.status_code == 400 and words.json()["exit_code"] == 2
        require_chromium()
        with chromium() as browser:
            browser.get(served.url + "?timeline=true")
            # the box follows the URL once app.js has run (polled: CI saw it read before that once, stop 62)
            wait_for(browser, "document.querySelector('#f-timeline').checked === true", timeout=30)
            browser.find_element("css selector", "#file").send_keys(str(clip))
            wait_for(browser, "document.querySelectorAll('#hits .query-window').length === 2", timeout=120)
            heads = browser.execute_script(
                "return Array.from(document.querySelectorAll('#hits .hit')).map(li => {"
                " const h = li.querySelector('.query-window'); return [h ? h.textContent : '',"
                " li.querySelector('.path').title || li.querySelector('.path').textContent]; })")
            assert [h for h, _ in heads] == ["For 0:00.0 → 0:10.0 of the query", "", "For 0:10.0 → 0:20.0 of the query", ""]
            assert [p.endswith(name) for (_, p), name in zip(heads, ("reel_b.flac", "reel_a.flac", "reel_a.flac",
                                                                       "reel_b.flac"))] == [True] * 4
            assert browser.execute_script("return document.querySelector('#status').textContent").startswith(
                "4 results for 2 windows of with edit.flac")
            browser.find_element("css selector", "#q").send_keys("crow\n")  # words: one list, the box ignored
            wait_for(browser, "/results? for “crow”/.test(document.querySelector('#status').textContent)", timeout=60)
            assert browser.execute_script("return document.querySelectorAll('#hits .query-window').length") == 0
            assert "Error" not in browser.execute_script("return document.querySelector('#status').textContent")
    finally:
        served.stop()


def test_similar_lists_the_neighbours_of_each_window_of_its_target(edit: tuple[Path, Path, Path]) -> None:
    lib, ix, clip = edit
    r = dg("similar", lib / "reel_b.flac", "--index", ix, "--timeline", "--segments", "-k", "2", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [(w["start_s"], w["end_s"]) for w in doc["windows"]] == [(0.0, 10.0), (10.0, 20.0)]
    own = json.loads(dg("query", "--index", ix, "--audio", lib / "reel_b.flac", "--segments", "--json").stdout)["hits"]
    own_ids = {h["start_s"]: h["segment_id"] for h in own if h["path"] == str(lib / "reel_b.flac")}
    for window in doc["windows"]:  # each window's list is that window's own "similar SEGMENT_ID"
        assert all(h["path"] == str(lib / "reel_a.flac") for h in window["hits"])  # its own file left out
        alone = json.loads(dg("similar", own_ids[window["start_s"]], "--index", ix, "--segments", "-k", "2",
                              "--json").stdout)["hits"]
        assert [(h["segment_id"], h["score"]) for h in window["hits"]] == [(h["segment_id"], h["score"]) for h in alone]
    outside = dg("similar", clip, "--index", ix, "--timeline", "-k", "2", "--json")  # not indexed: embedded
    assert outside.exit_code == 0, outside.output
    by_query = run_json("--index", ix, "--audio", clip, "--timeline", "-k", "2")
    assert [[h["segment_id"] for h in w["hits"]] for w in json.loads(outside.stdout)["windows"]] == [
        [h["segment_id"] for h in w["hits"]] for w in by_query["windows"]]


def test_a_long_query_file_is_streamed_not_held_whole(edit: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A 20-minute query file (211 MB decoded at 44.1 kHz, as much again windowed) is decoded, windowed and
    embedded a dozen windows at a time: the arrays Python holds at once stay below the decoded file's size
    (``tracemalloc`` sees NumPy's buffers: 94 MB measured, 635 MB when the file was decoded and windowed whole),
    and the window holding the tabla stroke still finds its recording."""
    import tracemalloc

    import numpy as np
    import soundfile as sf

    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.media.audio import load_audio
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search.timeline import search_timeline
    from diffgap_search.config import SearchConfig

    lib, ix, _ = edit
    rate = 8_000  # a small file to write; the decoder resamples it to the index's 44.1 kHz
    rng = np.random.default_rng(1)
    long = (1e-3 * rng.standard_normal(20 * 60 * rate)).astype(np.float32)
    shot = load_audio(Path("/usr/share/sonic-pi/samples/tabla_ghe4.flac"), rate)
    long[601 * rate : 601 * rate + len(shot)] += shot
    path = tmp_path / "long.flac"
    sf.write(str(path), long, rate)
    del long
    with Searcher(ix, load_encoder) as searcher:
        searcher.search(Query(audio=path, start_s=0.0, end_s=1.0))  # the model loaded outside the measure
        tracemalloc.start()
        try:
            timeline = search_timeline(searcher, Query(audio=path), SearchConfig(top_k=1))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(timeline.windows) == 120
    assert peak < 150e6, f"{peak / 1e6:.0f} MB held at once"  # measured 94 MB (a batch inside the encoder); whole: 635
    (spot,) = [w for w in timeline.windows if w.start_s == 600.0]
    assert spot.hits[0].path == str(lib / "reel_b.flac")
