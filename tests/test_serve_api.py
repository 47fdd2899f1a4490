"""``dgsearch serve``'s JSON API through httpx, against a real server (subprocess, uvicorn on loopback).

The index holds real CC0 recordings and a video's AAC soundtrack (``fixtures_serve``). Results are
compared with ``dgsearch query --json`` run on the same index: one library function serves both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from fixtures_serve import ServeCorpus
from serve_server import Served, start_serve

runner = CliRunner()


def cli_json(*args: str | Path) -> dict:
    r = runner.invoke(app, ["query", *(str(a) for a in args), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def cli_error(*args: str | Path) -> tuple[int, str]:
    r = runner.invoke(app, ["query", *(str(a) for a in args)])
    assert r.stderr.startswith("dgsearch: error: ")
    return r.exit_code, r.stderr[len("dgsearch: error: "):].rstrip("\n")


def same_hits(api: dict, cli: dict) -> None:
    """The same hits in the same order, every field equal but the score, equal within 1e-6: a one-shot
    `dgsearch query` embeds its words with the text tower's ONNX export, the server with the torch tower."""
    assert api["query_kind"] == cli["query_kind"]
    def unscored(hits: list[dict]) -> list[dict]:
        return [{k: v for k, v in h.items() if k != "score"} for h in hits]
    assert unscored(api["hits"]) == unscored(cli["hits"]) and len(api["hits"]) > 0
    assert [h["score"] for h in api["hits"]] == pytest.approx([h["score"] for h in cli["hits"]], abs=1e-6)
    assert set(api["timings_ms"]) == set(cli["timings_ms"])


def file_ids(served: Served) -> dict[str, int]:
    hits = httpx.get(served.url + "api/search", params={"q": "sound", "k": 100}).json()["hits"]
    return {os.path.basename(h["path"]): h["file_id"] for h in hits}


def test_text_search_is_dgsearch_query_json(served: Served, serve_corpus: ServeCorpus) -> None:
    r = httpx.get(served.url + "api/search", params={"q": "a bell ringing", "k": 3})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    same_hits(r.json(), cli_json("a bell ringing", "-k", "3", "--index", serve_corpus.index))
    every = httpx.get(served.url + "api/search", params={"q": "drum", "k": 50, "segments": "true", "glob": "*.[fw]*",
                                                         "min_score": -1}).json()
    same_hits(every, cli_json("drum", "-k", "50", "--segments", "--glob", "*.[fw]*", "--min-score", "-1",
                              "--index", serve_corpus.index))
    assert sorted((os.path.basename(h["path"]), h["start_s"]) for h in every["hits"]) == [
        ("ambi_choir.flac", 0.0), ("bd_haus.flac", 0.0), ("elec_ping.flac", 0.0), ("guit_harmonics.flac", 0.0),
        ("long take.wav", 0.0), ("long take.wav", 10.0), ("long take.wav", 15.0), ("loop_amen.flac", 0.0),
        ("perc_bell.flac", 0.0)]
    videos = httpx.get(served.url + "api/search", params={"q": "tone", "kind": "video"}).json()["hits"]
    assert [(os.path.basename(h["path"]), h["kind"]) for h in videos] == [("testsrc.mp4", "video")]
    # the CLI's defaults (hybrid) and its ranking modes and filters, through the same search_options
    for params, flags in (({"q": "bell"}, ["bell"]),
                          ({"q": "perc bell", "mode": "keyword"}, ["perc bell", "--mode", "keyword"]),
                          ({"q": "drum", "mode": "semantic", "duration": "..5"},
                           ["drum", "--mode", "semantic", "--duration", "..5"])):
        got = httpx.get(served.url + "api/search", params=params).json()
        want = cli_json(*flags, "--index", serve_corpus.index)
        same_hits(got, want)
        assert got["mode"] == want["mode"] == params.get("mode", "hybrid")
    keyword = httpx.get(served.url + "api/search", params={"q": "perc bell", "mode": "keyword"}).json()
    assert os.path.basename(keyword["hits"][0]["path"]) == "perc_bell.flac"
    bad = httpx.get(served.url + "api/search", params={"q": "bell", "mode": "fuzzy"})
    assert bad.status_code == 400 and bad.json()["exit_code"] == 2
    assert bad.json()["message"] == "--mode must be one of hybrid, semantic, keyword, got 'fuzzy'"


def test_search_by_uploaded_audio_is_query_by_example(served: Served, serve_corpus: ServeCorpus) -> None:
    bell = serve_corpus.clips / "perc_bell.flac"
    with open(bell, "rb") as fh:
        r = httpx.post(served.url + "api/search/file", files={"file": ("my bell.flac", fh, "audio/flac")},
                       data={"k": "4"})
    assert r.status_code == 200, r.text
    doc = r.json()
    same_hits(doc, cli_json("--audio", bell, "-k", "4", "--index", serve_corpus.index))
    assert os.path.basename(doc["hits"][0]["path"]) == "perc_bell.flac"
    assert doc["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    with open(bell, "rb") as fh:  # a span of the file, as --start/--end
        span = httpx.post(served.url + "api/search/file", files={"file": ("b.flac", fh)},
                          data={"start": "1", "end": "3", "k": "2"}).json()
    same_hits(span, cli_json("--audio", bell, "--start", "1", "--end", "3", "-k", "2", "--index", serve_corpus.index))


def test_uploaded_video_needs_a_bridge_like_the_cli(served: Served, serve_corpus: ServeCorpus) -> None:
    with open(serve_corpus.video, "rb") as fh:
        r = httpx.post(served.url + "api/search/file", files={"file": ("clip.mp4", fh, "video/mp4")})
    code, message = cli_error("--video", serve_corpus.video, "--index", serve_corpus.index)
    assert (r.status_code, r.json()) == (409, {"exit_code": code, "error": "no bridge", "message": message})
    assert code == 10


def test_more_like_this_from_a_segment(served: Served, serve_corpus: ServeCorpus) -> None:
    first = httpx.get(served.url + "api/search", params={"q": "a drum loop", "k": 6}).json()["hits"]
    amen = next(h for h in first if h["path"].endswith("loop_amen.flac"))
    r = httpx.get(served.url + "api/search", params={"like": amen["segment_id"], "k": 5})
    assert r.status_code == 200
    doc = r.json()
    assert doc["query_kind"] == "segment"
    assert (doc["hits"][0]["segment_id"], doc["hits"][0]["score"]) == (amen["segment_id"], pytest.approx(1.0, abs=1e-5))
    same_hits(doc, cli_json("--like", str(amen["segment_id"]), "-k", "5", "--index", serve_corpus.index))
    by_example = cli_json("--audio", serve_corpus.clips / "loop_amen.flac", "-k", "5", "--index", serve_corpus.index)
    assert [h["segment_id"] for h in doc["hits"]] == [h["segment_id"] for h in by_example["hits"]]


def test_info_docs_and_openapi(served: Served, serve_corpus: ServeCorpus) -> None:
    info = httpx.get(served.url + "api/info").json()
    r = runner.invoke(app, ["info", "--index", str(serve_corpus.index), "--json"])
    expected = json.loads(r.stdout)
    assert info["summary"] == expected["summary"]
    assert (info["summary"]["files"], info["summary"]["audio files"], info["summary"]["video files"]) == (8, 7, 1)
    spec = httpx.get(served.url + "openapi.json").json()
    assert {"/api/search", "/api/search/file", "/api/info", "/api/labels", "/files/{file_id}/audio",
            "/files/{file_id}/peaks", "/files/{file_id}/original", "/files/{file_id}/window"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/labels"]) == {"get", "post"}
    body = spec["paths"]["/api/labels"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert (set(body["properties"]), body["required"]) == ({"label", "file_ids", "remove"}, ["label", "file_ids"])
    params = {p["name"] for p in spec["paths"]["/api/search"]["get"]["parameters"]}
    assert params == {"q", "like", "file", "start", "end", "k", "min_score", "kind", "glob", "segments", "no_bridge",
                      "mode", "duration", "sample_rate", "channels", "folder", "all_copies", "tag", "label", "pinpoint",
                      "timeline"}
    docs = httpx.get(served.url + "docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text and "swagger" in docs.text.lower()
    # /docs works offline: every script and style it names is served by this server, none from a CDN
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert sorted(assets) == ["/docs-assets/favicon-32x32.png", "/docs-assets/swagger-ui-bundle.js",
                              "/docs-assets/swagger-ui.css"]
    for asset in assets:
        got = httpx.get(served.url + asset.lstrip("/"))
        assert got.status_code == 200 and len(got.content) > 500
    assert httpx.get(served.url + "docs-assets/index.html").status_code == 404
    assert httpx.get(served.url + "docs-assets/..%2F__init__.py").status_code == 404
    page = httpx.get(served.url)
    assert page.status_code == 200 and '<ol id="hits"' in page.text
    for script in ("app.js", "map.js", "selection.js"):
        assert httpx.get(served.url + "static/" + script).headers["content-type"].startswith("text/javascript")


def test_the_map_is_the_stored_projection_of_every_window(served: Served, serve_corpus: ServeCorpus) -> None:
    from diffgap_search.store.catalog import Catalog
    from diffgap_search.store.library_map import read_map

    doc = httpx.get(served.url + "api/map").json()
    stored = read_map(serve_corpus.index)  # written by `dgsearch index` when it published the audio space
    assert stored is not None and stored.method == "pca"
    with Catalog.open(serve_corpus.index) as catalog:
        rows = catalog.hit_rows(stored.ids.tolist())
    assert doc["segment_id"] == stored.ids.tolist() and (doc["count"], doc["total"], doc["stale"]) == (10, 10, False)
    assert doc["x"] == [round(float(v), 5) for v in stored.xy[:, 0]] and doc["y"] == [round(float(v), 5) for v in stored.xy[:, 1]]
    assert doc["file_id"] == [rows[s].file_id for s in doc["segment_id"]]
    assert doc["start_s"] == [rows[s].start_s for s in doc["segment_id"]]
    assert doc["keys"] == ["clips"] and set(doc["key"]) == {0}
    few = httpx.get(served.url + "api/map", params={"cap": 4, "colour": "tag"}).json()
    assert (few["count"], few["total"], few["colour"]) == (4, 10, "tag")
    assert few["segment_id"] == [doc["segment_id"][i] for i in (0, 3, 6, 9)]
    bad = httpx.get(served.url + "api/map", params={"colour": "../../etc/passwd"})
    assert (bad.status_code, bad.json()["message"]) == (400, "colour must be one of folder, tag, label, got '../../etc/passwd'")
    assert httpx.get(served.url + "api/map", params={"cap": 0}).status_code == 400


def test_range_requests_serve_exact_bytes(served: Served, serve_corpus: ServeCorpus) -> None:
    fid = file_ids(served)["perc_bell.flac"]
    data = (serve_corpus.clips / "perc_bell.flac").read_bytes()
    url = f"{served.url}files/{fid}/audio"
    whole = httpx.get(url)
    assert (whole.status_code, whole.content, whole.headers["content-type"]) == (200, data, "audio/flac")
    assert whole.headers["accept-ranges"] == "bytes"
    part = httpx.get(url, headers={"Range": "bytes=1000-1999"})
    assert (part.status_code, part.content) == (206, data[1000:2000])
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert part.headers["content-length"] == "1000"
    tail = httpx.get(url, headers={"Range": "bytes=-100"})
    assert (tail.status_code, tail.content) == (206, data[-100:])
    open_ended = httpx.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert (open_ended.status_code, open_ended.content) == (206, data[-10:])
    beyond = httpx.get(url, headers={"Range": f"bytes={len(data) + 5}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"


def test_video_soundtrack_is_transcoded_and_cached(served: Served, serve_corpus: ServeCorpus, tmp_path: Path) -> None:
    fid = file_ids(served)["testsrc.mp4"]
    r = httpx.get(f"{served.url}files/{fid}/audio", timeout=120)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
    (tmp_path / "a.mp3").write_bytes(r.content)
    samples, rate = sf.read(tmp_path / "a.mp3", dtype="float32")
    assert rate == 16_000 and 2.9 <= len(samples) / rate <= 3.15  # the 3 s 440 Hz soundtrack (+ MP3 padding)
    spectrum = np.abs(np.fft.rfft(samples[: rate]))
    assert abs(np.argmax(spectrum) * rate / rate - 440) <= 2  # 1 s of samples: 1 Hz bins
    cached = sorted((serve_corpus.index / ".serve-cache").glob(f"audio-{fid}-*.mp3"))
    assert len(cached) == 1 and cached[0].read_bytes() == r.content
    part = httpx.get(f"{served.url}files/{fid}/audio", headers={"Range": "bytes=100-199"})
    assert (part.status_code, part.content) == (206, r.content[100:200])


def test_an_audiobook_is_sent_as_it_is(tmp_path: Path, tiny_clap_dir: Path) -> None:
    """.m4b (and .m4r) is AAC in MP4, as .m4a: sent as the file itself with audio/mp4, not transcoded on a click
    (an audiobook runs for hours: minutes of ffmpeg). The recording is the CC0 bell of examples/clips."""
    import subprocess

    from cli_runner import dg
    from fixtures_media import FFMPEG

    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    library = tmp_path / "library"
    library.mkdir()
    book = library / "chapter 1.m4b"
    bell = Path(__file__).resolve().parents[1] / "examples" / "clips" / "bell.ogg"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", bell, "-c:a", "aac", "-f", "mp4", book], check=True)
    assert dg("index", library, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    server = start_serve(tmp_path / "ix")
    try:
        (hit,) = httpx.get(server.url + "api/search", params={"q": "chapter", "k": 5}).json()["hits"]
        sent = httpx.get(f"{server.url}files/{hit['file_id']}/audio", timeout=60)
        assert (sent.status_code, sent.headers["content-type"], sent.content) == (200, "audio/mp4", book.read_bytes())
    finally:
        server.stop()
    assert not list((tmp_path / "ix" / ".serve-cache").glob("audio-*"))  # nothing transcoded


def test_waveform_peaks(served: Served, serve_corpus: ServeCorpus) -> None:
    fid = file_ids(served)["perc_bell.flac"]
    doc = httpx.get(f"{served.url}files/{fid}/peaks").json()
    info = sf.info(serve_corpus.clips / "perc_bell.flac")
    assert doc["file_id"] == fid and doc["duration_s"] == pytest.approx(info.duration, abs=1e-3)
    assert len(doc["peaks"]) == 1000 and all(0 <= p <= 1 for p in doc["peaks"])
    audio, _ = sf.read(serve_corpus.clips / "perc_bell.flac", dtype="float32")
    mono = np.abs(audio.mean(axis=1) if audio.ndim == 2 else audio)
    assert max(doc["peaks"]) == pytest.approx(float(mono.max()), abs=0.05)  # resampled to 16 kHz
    assert doc["peaks"][0] > 10 * doc["peaks"][-1]  # a bell: struck, then it decays
    cached = list((serve_corpus.index / ".serve-cache").glob(f"peaks-v1-{fid}-*.json"))
    assert len(cached) == 1
    assert httpx.get(f"{served.url}files/{fid}/peaks").json() == doc


def test_errors_are_the_cli_errors(served: Served, serve_corpus: ServeCorpus, tmp_path: Path) -> None:
    ix = str(serve_corpus.index)
    cases = [
        ({"q": "   "}, ["   "], 400),
        ({"like": "999999"}, ["--like", "999999"], 404),
        ({"q": "x", "kind": "midi"}, ["x", "--kind", "midi"], 400),
        ({"q": "x", "like": "1"}, ["x", "--like", "1"], 400),
        ({}, [], 400),
    ]
    for params, args, status in cases:
        r = httpx.get(served.url + "api/search", params=params)
        code, message = cli_error(*args, "--index", ix)
        assert r.status_code == status
        assert r.json() == {"exit_code": code, "error": {2: "usage", 3: "input not found"}[code], "message": message}
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    with open(text, "rb") as fh:
        r = httpx.post(served.url + "api/search/file", files={"file": ("notes.wav", fh)})
    code, message = cli_error("--audio", text, "--index", ix)
    assert (r.status_code, r.json()["exit_code"], code) == (422, 11, 11)
    assert r.json()["message"] == message.replace(str(text), "notes.wav")


def test_new_generation_and_new_bridge_without_restart(serve_corpus: ServeCorpus, tmp_path: Path) -> None:
    """While the server runs: ``dgsearch index`` adds a file (a new FAISS generation), then ``dgsearch train``
    commits a bridge; the next queries see both, without a restart."""
    clips, index = tmp_path / "clips", tmp_path / "index"
    shutil.copytree(serve_corpus.clips, clips)
    shutil.copytree(serve_corpus.index, index)
    server = start_serve(index)
    try:
        def search(**params: str) -> dict:
            r = httpx.get(server.url + "api/search", params={"k": "20", **params})
            assert r.status_code == 200, r.text
            return r.json()

        before = search(q="a drum")
        assert len(before["hits"]) == 8
        assert before["hits"] == search(q="a drum", no_bridge="true")["hits"]  # no bridge yet
        shutil.copyfile(serve_corpus.clips / "bd_haus.flac", clips / "kick again.flac")
        from real_sounds import SAMPLES_DIR

        shutil.copyfile(SAMPLES_DIR / "tabla_na.flac", clips / "tabla_na.flac")
        r = runner.invoke(app, ["index", str(clips), "--index", str(index), "--workers", "0"])  # another process
        assert r.exit_code == 0, r.output
        after = search(q="a drum", all_copies="true")
        names = {os.path.basename(h["path"]) for h in after["hits"]}
        # the copied catalog names the original folder's 8 files; the new folder adds its 10 (8 copies + 2 new)
        assert len(after["hits"]) == 18 and {"tabla_na.flac", "kick again.flac"} <= names
        once = search(q="a drum")["hits"]  # by default: 9 sounds, bd_haus's hit lists its two copies
        assert len(once) == 9 and sorted(len(h["copies"]) for h in once) == [0] + [1] * 7 + [2]
        kicks = next(h for h in once if len(h["copies"]) == 2)
        assert {os.path.basename(p) for p in [kicks["path"], *kicks["copies"]]} == {"bd_haus.flac", "kick again.flac"}
        rng = np.random.default_rng(0)
        audio = rng.normal(size=(64, 32)).astype(np.float32)
        text = audio + 0.5 * rng.normal(size=(64, 32)).astype(np.float32)
        pairs = tmp_path / "pairs.npz"
        np.savez(pairs, audio=audio / np.linalg.norm(audio, axis=1, keepdims=True),
                 text=text / np.linalg.norm(text, axis=1, keepdims=True), group=np.arange(64))
        t = runner.invoke(app, ["train", "--pairs-file", str(pairs), "--index", str(index), "--epochs", "2",
                                "--batch-size", "16"])
        assert t.exit_code == 0, t.output
        fused = search(q="a drum", all_copies="true")
        raw = search(q="a drum", no_bridge="true", all_copies="true")
        assert raw["hits"] == after["hits"]
        assert [h["score"] for h in fused["hits"]] != [h["score"] for h in raw["hits"]]
        # the server's bridge is the one the CLI loads
        assert fused["hits"] == cli_json("a drum", "-k", "20", "--all-copies", "--index", index)["hits"]
    finally:
        server.stop()


def test_help_imports_no_web_framework() -> None:
    """``dgsearch --help`` and ``dgsearch serve --help`` import neither fastapi/uvicorn nor torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from diffgap_search.cli.app import app\n"
        "for args in (['--help'], ['serve', '--help'], ['query', '--help']):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 0 and '--index' in r.output or args == ['--help'], r.output\n"
        "print(','.join(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'torch', 'faiss') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_searches_run_on_one_thread_of_their_own(serve_corpus: ServeCorpus) -> None:
    """Whatever pool thread takes a request, the Searcher (torch, FAISS: their OpenMP teams) runs on the
    server's one search thread; its answers and its errors come back to the caller."""
    import threading

    from diffgap_search.config import SearchConfig, SearchMode
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.errors import DGSearchError
    from diffgap_search.search import Query
    from diffgap_search.serve.state import ServeConfig, SharedSearcher

    shared = SharedSearcher(ServeConfig(index_dir=serve_corpus.index, device="cpu"),
                            lambda c: load_encoder(c, progress=False), None)
    seen: list[str] = []
    inner = shared.searcher.search

    def spy(q: Query, c: SearchConfig):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return inner(q, c)

    shared.searcher.search = spy  # type: ignore[method-assign]
    try:
        shared.warm_up()
        cfg = SearchConfig(mode=SearchMode.SEMANTIC, top_k=3)
        answers: dict[int, list[int]] = {}

        def ask(i: int) -> None:
            answers[i] = [h.segment_id for h in shared.search(Query(text="a bell ringing"), cfg).hits]

        callers = [threading.Thread(target=ask, args=(i,), name=f"caller-{i}") for i in range(4)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        assert seen == ["dgsearch-search_0"] * 4
        assert len(answers) == 4 and all(a == answers[0] and len(a) == 3 for a in answers.values())
        with pytest.raises(DGSearchError, match="segment 999999 is not in index"):
            shared.search(Query(segment_id=999999), cfg)
    finally:
        shared.close()
