"""Select a span on a hit's waveform: it plays, "search like this" searches with it, "save selection" saves it.

The API's span query (``/api/search?file=ID&start=S&end=E``) against ``dgsearch query --audio FILE --start S
--end E --json`` on the same index, and the page in a real headless Chromium: a pointer drag across the "long
take" hit's waveform (the bell, 10-20 s), the audio clock inside the span, the shareable URL, and the WAV saved.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx
import numpy as np
import pytest
import soundfile as sf

from browser import chromium, downloaded, require_chromium
from fixtures_serve import ServeCorpus, corpus_file_id
from serve_server import Served
from test_serve_api import cli_json, same_hits

LONG_TAKE = "long take.wav"  # 25 s at 44.1 kHz: amen 0-10 s, the bell 10-20 s, the choir 20-25 s


def test_a_span_of_an_indexed_file_is_dgsearch_query_audio_with_start_and_end(
        served: Served, serve_corpus: ServeCorpus) -> None:
    fid = corpus_file_id(serve_corpus, LONG_TAKE)
    r = httpx.get(served.url + "api/search", params={"file": fid, "start": 10, "end": 14, "k": 5})
    assert r.status_code == 200, r.text
    same_hits(r.json(), cli_json("--audio", serve_corpus.clips / LONG_TAKE, "--start", "10", "--end", "14", "-k", "5",
                                 "--index", serve_corpus.index))
    whole = httpx.get(served.url + "api/search", params={"file": fid, "k": 3}).json()
    assert whole["query_kind"] == "audio" and whole["hits"][0]["path"].endswith(LONG_TAKE)


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"start": 1, "end": 2}, 400, "start and end need file (the file_id of an indexed file)"),
    ({"file": "999999", "start": 1}, 404, "no file with id '999999' in index {index}"),
    ({"file": "{fid}", "start": 30}, 400, "start=30.0 s is past the end of file {fid} (25.000 s)"),
    ({"file": "{fid}", "start": 5, "end": 4}, 400, "a window needs 0 <= start < end, in seconds (got start=5.0, end=4.0)"),
])
def test_a_bad_span_query_says_why(served: Served, serve_corpus: ServeCorpus, params: dict[str, Any], status: int,
                                   message: str) -> None:
    fid = corpus_file_id(serve_corpus, LONG_TAKE)
    sent = {k: str(v).format(fid=fid) for k, v in params.items()}
    r = httpx.get(served.url + "api/search", params=sent)
    assert (r.status_code, r.json()["message"]) == (status, message.format(fid=fid, index=serve_corpus.index))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    require_chromium()
    folder = tmp_path_factory.mktemp("downloads")
    with chromium(downloads=folder) as driver:
        yield driver, folder


def wait_for(driver: Any, script: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := driver.execute_script("return " + script):
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def drag_across(driver: Any, canvas: Any, start_s: float, end_s: float, duration_s: float) -> None:
    """A pointer drag on ``canvas`` from ``start_s`` to ``end_s`` of a file ``duration_s`` long."""
    from selenium.webdriver.common.action_chains import ActionChains

    width = canvas.size["width"]
    x0 = round(width * start_s / duration_s) - width // 2  # offsets from the canvas's centre
    x1 = round(width * end_s / duration_s) - width // 2
    ActionChains(driver).move_to_element_with_offset(canvas, x0, 0).click_and_hold() \
        .move_by_offset((x1 - x0) // 2, 0).move_by_offset(x1 - x0 - (x1 - x0) // 2, 0).release().perform()


def long_take_hit(driver: Any, served: Served, corpus: ServeCorpus) -> tuple[int, int, Any]:
    """``(its file id, its index among the hits, its element)``: the long take's hit for words of its caption,
    once its waveform (and so its duration) has arrived."""
    fid = corpus_file_id(corpus, LONG_TAKE)
    driver.get(served.url + "?q=" + quote("a drum break, a bell, a choir"))
    wait_for(driver, "document.querySelectorAll('#hits .hit').length > 0")
    index = driver.execute_script("return Array.from(document.querySelectorAll('#hits .hit .path'))"
                                  ".findIndex(p => p.title.endsWith('long take.wav'))")
    wait_for(driver, f"window.dgsearch.duration({fid}) > 0")
    return fid, index, driver.find_elements("css selector", "#hits .hit")[index]


def test_drag_a_span_to_hear_it_search_with_it_and_save_it(browser: tuple[Any, Path], served: Served,
                                                           serve_corpus: ServeCorpus) -> None:
    driver, downloads = browser
    fid, index, hit = long_take_hit(driver, served, serve_corpus)
    assert hit.find_element("css selector", ".span-actions").get_attribute("hidden") is not None

    drag_across(driver, hit.find_element("css selector", ".wave"), 11.0, 13.0, 25.0)
    wait_for(driver, "!document.querySelectorAll('#hits .hit .span-actions')[%d].hidden" % index)
    href = hit.find_element("css selector", ".span-save").get_attribute("href")
    span = {k: float(v[0]) for k, v in parse_qs(urlparse(href).query).items()}
    assert urlparse(href).path == f"/files/{fid}/window"
    assert 10.8 < span["start"] < 11.2 and 12.8 < span["end"] < 13.2  # a pixel is 25 s / the canvas's width
    assert hit.find_element("css selector", ".span-time").text == (
        f"selection {time_code(span['start'])} → {time_code(span['end'])}")
    # it plays at once, inside the span, and stops at its end
    wait_for(driver, "document.querySelector('#player').paused && document.querySelector('#player').currentTime > 12")
    assert driver.execute_script("return document.querySelector('#player').currentTime") == pytest.approx(span["end"])

    hit.find_element("css selector", ".span-save").click()
    (saved,) = downloaded(downloads)
    source, rate = sf.read(serve_corpus.clips / LONG_TAKE, dtype="int16")
    assert np.array_equal(sf.read(saved, dtype="int16")[0],
                          source[round(span["start"] * rate): round(span["end"] * rate)])

    hit.find_element("css selector", ".span-search").click()
    wait_for(driver, "document.querySelector('#status').textContent.includes('results for sounds like file')")
    shared = parse_qs(urlparse(driver.current_url).query)
    assert {k: float(v[0]) for k, v in shared.items()} == {"file": fid, **span}
    api = httpx.get(served.url + "api/search", params={"file": fid, "start": span["start"], "end": span["end"]}).json()
    shown = driver.execute_script("return Array.from(document.querySelectorAll('#hits .hit .path')).map(p => p.title)")
    assert shown == [h["path"] for h in api["hits"]]
    driver.refresh()  # the URL is the search: a reload (or a shared link) runs it again
    wait_for(driver, "document.querySelector('#status').textContent.includes('results for sounds like file')")
    assert driver.execute_script("return Array.from(document.querySelectorAll('#hits .hit .path'))"
                                 ".map(p => p.title)") == shown


def time_code(s: float) -> str:
    """The page's timecode: minutes and seconds to a tenth (JavaScript's Math.round: halves up, not to even)."""
    t = math.floor(s * 10 + 0.5)
    return f"{t // 600}:{(t % 600) / 10:04.1f}"


def test_space_plays_the_selection_and_escape_drops_it(browser: tuple[Any, Path], served: Served,
                                                       serve_corpus: ServeCorpus) -> None:
    driver, _ = browser
    _, index, hit = long_take_hit(driver, served, serve_corpus)
    drag_across(driver, hit.find_element("css selector", ".wave"), 21.0, 22.0, 25.0)
    wait_for(driver, "document.querySelector('#player').paused && document.querySelector('#player').currentTime > 21.5")
    href = hit.find_element("css selector", ".span-save").get_attribute("href")
    span = {k: float(v[0]) for k, v in parse_qs(urlparse(href).query).items()}
    body = driver.find_element("css selector", "body")

    body.send_keys(" ")  # the selected hit has a selection: space plays it, from its start to its end
    wait_for(driver, "!document.querySelector('#player').paused")
    now = driver.execute_script("return document.querySelector('#player').currentTime")
    assert span["start"] - 0.05 <= now < span["start"] + 0.5
    wait_for(driver, "document.querySelector('#player').paused")
    assert driver.execute_script("return document.querySelector('#player').currentTime") == pytest.approx(span["end"])

    body.send_keys("\ue00c")  # Escape: the selection is gone; space plays the hit's window again
    wait_for(driver, "document.querySelectorAll('#hits .hit .span-actions')[%d].hidden" % index)
    window_start = driver.execute_script(f"return window.dgsearch.hits()[{index}].start_s")
    body.send_keys(" ")
    wait_for(driver, "!document.querySelector('#player').paused")
    now = driver.execute_script("return document.querySelector('#player').currentTime")
    assert window_start - 0.05 <= now < window_start + 0.5 and window_start != span["start"]
    body.send_keys(" ")  # and stops it
    wait_for(driver, "document.querySelector('#player').paused")
