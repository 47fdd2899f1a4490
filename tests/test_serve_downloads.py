"""Taking a found sound away from ``dgsearch serve``: a hit's window as WAV, or the file itself.

Against a real server (``fixtures_serve``: real CC0 recordings, a 25 s "long take" WAV of three of them, a video
with an AAC soundtrack) through httpx, and the page's "save window" / "save file" links clicked in a real
headless Chromium that saves into a folder.
"""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import soundfile as sf

from browser import chromium, downloaded, require_chromium
from fixtures_serve import ServeCorpus, corpus_file_id
from serve_server import Served

from diffgap_search.errors import UsageError
from diffgap_search.media.cut import window_name
from diffgap_search.media.discover import utf8_name
from diffgap_search.serve import downloads
from diffgap_search.store.catalog import Catalog


def saved_as(r: httpx.Response) -> str:
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment; ")
    return disposition[len("attachment; "):]


def test_a_window_is_the_files_own_samples_at_its_own_rate(served: Served, serve_corpus: ServeCorpus) -> None:
    fid = corpus_file_id(serve_corpus, "long take.wav")
    source, rate = sf.read(serve_corpus.clips / "long take.wav", dtype="int16")
    r = httpx.get(served.url + f"files/{fid}/window", params={"start": 10, "end": 20})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert saved_as(r) == "filename*=utf-8''long%20take%2010-20s.wav"
    cut, cut_rate = sf.read(io.BytesIO(r.content), dtype="int16")
    assert (cut_rate, sf.info(io.BytesIO(r.content)).subtype) == (44_100, "PCM_16")  # 16-bit source: 16-bit cut
    assert np.array_equal(cut, source[10 * rate: 20 * rate])

    # a window that runs past the end is cut at the end; a fraction of a second is kept to the millisecond
    r = httpx.get(served.url + f"files/{fid}/window", params={"start": 20.25, "end": 30})
    assert saved_as(r) == "filename*=utf-8''long%20take%2020.25-25s.wav"
    assert np.array_equal(sf.read(io.BytesIO(r.content), dtype="int16")[0], source[int(20.25 * rate):])


def test_a_window_of_a_stereo_flac_keeps_its_channels(served: Served, serve_corpus: ServeCorpus) -> None:
    fid = corpus_file_id(serve_corpus, "perc_bell.flac")
    source, rate = sf.read(serve_corpus.clips / "perc_bell.flac", dtype="int16", always_2d=True)
    r = httpx.get(served.url + f"files/{fid}/window", params={"start": 0.5, "end": 1.5})
    cut, cut_rate = sf.read(io.BytesIO(r.content), dtype="int16", always_2d=True)
    assert (cut_rate, cut.shape[1]) == (rate, source.shape[1]) and source.shape[1] == 2
    assert np.array_equal(cut, source[rate // 2: rate * 3 // 2])


def test_the_original_is_the_file_itself_under_its_own_name(served: Served, serve_corpus: ServeCorpus) -> None:
    for name, kind in (("perc_bell.flac", "audio/flac"), ("testsrc.mp4", "video/mp4")):
        r = httpx.get(served.url + f"files/{corpus_file_id(serve_corpus, name)}/original")
        assert (r.status_code, r.headers["content-type"]) == (200, kind)
        assert saved_as(r) == f'filename="{name}"'
        assert r.content == (serve_corpus.clips / name).read_bytes()


@pytest.mark.parametrize(("params", "message"), [
    ({"start": 5, "end": 1}, "a window needs 0 <= start < end, in seconds (got start=5.0, end=1.0)"),
    ({"start": -1, "end": 1}, "a window needs 0 <= start < end, in seconds (got start=-1.0, end=1.0)"),
    ({"start": "nan", "end": 1}, "a window needs 0 <= start < end, in seconds (got start=nan, end=1.0)"),
    ({"start": 25, "end": 26}, "start=25.0 s is past the end of file {fid} (25.000 s)"),
    ({"start": 0}, "bad parameter end: Field required"),
])
def test_a_bad_window_is_400_with_its_reason(served: Served, serve_corpus: ServeCorpus, params: dict[str, Any],
                                             message: str) -> None:
    fid = corpus_file_id(serve_corpus, "long take.wav")
    r = httpx.get(served.url + f"files/{fid}/window", params=params)
    assert (r.status_code, r.json()) == (400, {"exit_code": 2, "error": "usage", "message": message.format(fid=fid)})


def test_names_and_the_longest_window(serve_corpus: ServeCorpus) -> None:
    assert utf8_name(os.fsdecode(b"caf\xe9.wav")) == "caf\ufffd.wav"  # not UTF-8: shown as U+FFFD
    assert window_name(Path("/a/dog bark.mp3"), 1.5, 2.0) == "dog bark 1.5-2s.wav"
    with Catalog.open(serve_corpus.index) as catalog:
        row = catalog.file_by_key(os.fsencode(serve_corpus.clips / "long take.wav"))
    assert row is not None
    hour = replace(row, duration_s=3600.0)
    assert downloads.checked_span(hour, 100.0, 700.0) == (100.0, 700.0)
    with pytest.raises(UsageError) as exc:
        downloads.checked_span(hour, 100.0, 700.5)
    assert str(exc.value) == "a window is at most 600 s long (asked for 600.5 s): save the whole file instead"


def test_the_page_saves_a_hits_window_and_its_file(served: Served, serve_corpus: ServeCorpus, tmp_path: Path) -> None:
    require_chromium()
    hit = httpx.get(served.url + "api/search", params={"q": "a drum break, a bell, a choir"}).json()["hits"][0]
    assert os.path.basename(hit["path"]) == "long take.wav"
    start, end = hit["start_s"], hit["end_s"]
    folder = tmp_path / "downloads"
    folder.mkdir()
    with chromium(downloads=folder) as browser:
        browser.get(served.url + "?q=" + quote("a drum break, a bell, a choir"))
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.querySelector('#hits .hit')"))
        first = browser.find_elements("css selector", "#hits .hit")[0]
        first.find_element("css selector", ".save-window").click()
        (window,) = downloaded(folder)
        assert window.name == window_name(Path(hit["path"]), start, end)
        source, rate = sf.read(serve_corpus.clips / "long take.wav", dtype="int16")
        assert np.array_equal(sf.read(window, dtype="int16")[0], source[round(start * rate): round(end * rate)])
        window.unlink()
        first.find_element("css selector", ".save-file").click()
        (whole,) = downloaded(folder)
        assert (whole.name, whole.read_bytes()) == ("long take.wav", (serve_corpus.clips / "long take.wav").read_bytes())


def test_a_hits_window_drags_out_of_the_page_as_its_wav(served: Served, serve_corpus: ServeCorpus) -> None:
    """Dragging "save window" out of the page (onto a DAW's track, a folder) hands Chromium a DownloadURL: the
    server's own name for the cut and the link that serves it (a real Chromium runs the page's handler on a
    dragstart carrying a real DataTransfer; the URL is then fetched over HTTP)."""
    require_chromium()
    words = "a drum break, a bell, a choir"
    hit = httpx.get(served.url + "api/search", params={"q": words}).json()["hits"][0]
    with chromium() as browser:
        browser.get(served.url + "?q=" + quote(words))
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.querySelector('#hits .hit')"))
        data = browser.execute_script(
            "const dt = new DataTransfer(), link = document.querySelector('#hits .hit .save-window');"
            "link.dispatchEvent(new DragEvent('dragstart', {dataTransfer: dt, bubbles: true, cancelable: true}));"
            "return dt.getData('DownloadURL');")
    kind, name, url = data.split(":", 2)
    assert (kind, name) == ("audio/wav", window_name(Path(hit["path"]), hit["start_s"], hit["end_s"]))
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{served.url}files/{hit['file_id']}/window"
    asked = parse_qs(parts.query)
    assert (float(asked["start"][0]), float(asked["end"][0])) == (hit["start_s"], hit["end_s"])
    got = httpx.get(url)
    assert got.status_code == 200 and got.headers["content-type"] == "audio/wav"
    info = sf.info(io.BytesIO(got.content))
    assert abs(info.frames - (hit["end_s"] - hit["start_s"]) * info.samplerate) <= 1
