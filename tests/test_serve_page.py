"""``dgsearch serve``'s page in a real headless Chromium (Selenium), against a real server.

Type a query and see the hits; play a window and watch the audio element's clock advance inside it and stop
at its end; "more like this"; drop a file (a real ``drop`` event carrying a ``File`` built in the page from
the bytes of a recording); the keyboard; shareable URLs; empty and error states; a phone-sized screen. One
test saves a screenshot of a results page (``DGSEARCH_UPDATE_SCREENSHOT=1`` also writes ``docs/serve.png``).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from browser import chromium, page_errors, require_chromium
from fixtures_serve import ServeCorpus
from serve_server import Served, below_library

from diffgap_search.store.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as driver:
        yield driver


def wait_for(driver: Any, script: str, timeout: float = 30.0) -> Any:
    """Poll ``return <script>`` until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script("return " + script)
        if value:
            return value
        time.sleep(0.05)
    status = driver.execute_script("return document.querySelector('#status').textContent")
    raise AssertionError(f"timed out waiting for: {script}; the page says: {status!r}; its console's errors:"
                         f" {page_errors(driver)!r}")


def hits(driver: Any) -> list[dict[str, str]]:
    return driver.execute_script("""return Array.from(document.querySelectorAll('#hits .hit')).map(li => ({
        segment: li.dataset.segment, path: li.querySelector('.path').textContent,
        name: li.querySelector('.path .name').textContent, title: li.querySelector('.path').title,
        caption: li.querySelector('.caption').textContent, score: li.querySelector('.score').textContent,
        time: li.querySelector('.time').textContent, selected: li.classList.contains('selected')}))""")


def api_hits(served: Served, **params: Any) -> list[dict[str, Any]]:
    return httpx.get(served.url + "api/search", params=params).json()["hits"]


def test_type_a_query_and_see_the_hits(browser: Any, served: Served) -> None:
    browser.get(served.url)
    assert browser.execute_script("return !document.querySelector('#empty').hidden")  # the empty state
    wait_for(browser, "document.querySelector('#index-info').textContent.includes('8 files')")
    folder = httpx.get(served.url + "api/info").json()["summary"]["library folder"]
    assert browser.execute_script("return document.querySelector('#index-info').textContent").startswith(
        f"8 files in {folder}, ")
    box = browser.find_element("css selector", "#q")
    box.send_keys("a bell ringing\n")
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results for “a bell ringing”')")
    assert browser.current_url == served.url + "?q=a+bell+ringing"
    shown = hits(browser)
    expected = api_hits(served, q="a bell ringing")
    assert [h["segment"] for h in shown] == [str(h["segment_id"]) for h in expected]
    # below the library folder, as the CLI shows paths below the working directory; the whole path on hover
    assert [h["path"] for h in shown] == [below_library(served, h["path"]) for h in expected]
    assert all(not h["path"].startswith("/") for h in shown)
    # the file's name apart from its folder (in the text's colour)
    assert [h["name"] for h in shown] == [h["path"].rsplit("/", 1)[-1] for h in expected]
    assert [h["title"] for h in shown] == [h["path"] for h in expected]
    assert [h["score"] for h in shown] == [f"{h['score']:.3f}" for h in expected]
    assert [h["caption"] for h in shown] == [h["caption"] or "" for h in expected]
    assert shown[0]["selected"] and not any(h["selected"] for h in shown[1:])
    # every waveform is drawn (peaks fetched): some pixel of each canvas is not transparent
    wait_for(browser, """Array.from(document.querySelectorAll('.wave')).every(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; })""")


def test_play_exactly_the_window(browser: Any, served: Served) -> None:
    middle = next(h for h in api_hits(served, q="drum", segments="true", k=50)
                  if h["path"].endswith("long take.wav") and h["start_s"] == 10.0)
    browser.get(f"{served.url}?like={middle['segment_id']}")
    wait_for(browser, "document.querySelectorAll('#hits .hit').length > 0 && !document.querySelector('#hits').ariaBusy")
    first = hits(browser)[0]
    assert (first["segment"], first["time"]) == (str(middle["segment_id"]), "0:10.0 → 0:20.0")
    browser.execute_script("const p = document.querySelector('#player'); p.defaultPlaybackRate = 4; p.playbackRate = 4;")
    browser.find_element("css selector", "#hits .hit .play").click()
    samples = browser.execute_async_script("""
        const done = arguments[arguments.length - 1], p = document.querySelector('#player'), seen = [];
        const t0 = performance.now();
        (function poll() {
          seen.push([p.currentTime, p.paused]);
          if ((seen.length > 20 && p.paused) || performance.now() - t0 > 20000) done(seen); else setTimeout(poll, 20);
        })();""")
    started = next(i for i, (_, paused) in enumerate(samples) if not paused)  # play() called, from the window's start
    times = [t for t, paused in samples[started:] if not paused]
    assert len(times) > 10, samples[-20:]  # it played, for a while
    assert times[-1] - times[0] > 5, samples[-20:]  # and its clock advanced through the window (4x speed)
    # never outside the window: the page stops it on a timer aimed at the end, and the media clock runs on
    # while that timer fires (at 4x speed, a 10 ms late timer is 40 ms of media), so a sample taken just
    # then may lie past the end, before the page sets the clock back to it: 0.1 s is a 25 ms late timer, seen on a
    # quiet machine; under load (CI on 2 busy cores) timers ran 50 ms late, so 0.25 s (62 ms) is allowed
    outside = [t for t, _ in samples[started:] if not 10.0 <= t <= 20.25]
    assert not outside, outside
    final = browser.execute_script("const p = document.querySelector('#player'); return [p.currentTime, p.paused]")
    assert final == [20.0, True]
    assert not browser.execute_script("return document.querySelector('.hit.playing')")
    browser.execute_script("const p = document.querySelector('#player'); p.defaultPlaybackRate = 1; p.playbackRate = 1;")


def test_more_like_this(browser: Any, served: Served) -> None:
    browser.get(served.url + "?q=" + quote("a choir singing"))
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results')")
    second = hits(browser)[1]
    browser.find_elements("css selector", "#hits .hit .like")[1].click()
    wait_for(browser, f"document.querySelector('#status').textContent.includes('sounds like segment {second['segment']}')"
                      " && document.querySelector('#status').textContent.includes('results')")
    assert browser.current_url == f"{served.url}?like={second['segment']}"
    shown = hits(browser)
    assert shown[0]["segment"] == second["segment"] and shown[0]["score"] == "1.000"
    assert [h["segment"] for h in shown] == [str(h["segment_id"]) for h in api_hits(served, like=second["segment"])]
    browser.back()  # the URL is the state: back shows the text query again
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results for “a choir singing”')")
    assert browser.find_element("css selector", "#q").get_attribute("value") == "a choir singing"


def test_drop_a_file_to_search_with_it(browser: Any, served: Served, serve_corpus: ServeCorpus) -> None:
    browser.get(served.url)
    wait_for(browser, "document.querySelector('#index-info').textContent.includes('8 files')")  # the page's code runs
    data = base64.b64encode((serve_corpus.clips / "elec_ping.flac").read_bytes()).decode()
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'dropped ping.flac', {type: 'audio/flac'}));
        for (const type of ['dragenter', 'dragover', 'drop'])
          document.body.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
        """, data)
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results for with dropped ping.flac')")
    assert browser.execute_script("return document.querySelector('#drop').hidden")
    shown = hits(browser)
    assert shown[0]["name"] == "elec_ping.flac" and shown[0]["score"] == "1.000"
    with open(serve_corpus.clips / "elec_ping.flac", "rb") as fh:
        expected = httpx.post(served.url + "api/search/file", files={"file": ("x.flac", fh)}).json()["hits"]
    assert [h["segment"] for h in shown] == [str(h["segment_id"]) for h in expected]


def test_filters_change_the_hits_and_the_url_and_a_reload_restores_them(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select

    browser.get(served.url + "?q=" + quote("a bell ringing"))
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results for “a bell ringing”')")
    Select(browser.find_element("css selector", "#f-kind")).select_by_value("audio")
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('7 results for')")
    assert browser.current_url == served.url + "?q=a+bell+ringing&kind=audio"
    browser.find_element("css selector", "#f-channels").send_keys("1", Keys.TAB)
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('3 results for')")
    mono = api_hits(served, q="a bell ringing", kind="audio", channels=1)
    assert sorted(h["path"].rsplit("/", 1)[-1] for h in mono) == ["elec_ping.flac", "guit_harmonics.flac", "long take.wav"]
    assert [h["segment"] for h in hits(browser)] == [str(h["segment_id"]) for h in mono]
    browser.find_element("css selector", "#f-dmax").send_keys("3", Keys.TAB)  # the page says ..3 seconds
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('1 result for')")
    assert browser.current_url == served.url + "?q=a+bell+ringing&kind=audio&duration=..3&channels=1"
    short = api_hits(served, q="a bell ringing", kind="audio", channels=1, duration="..3")
    assert [h["path"].rsplit("/", 1)[-1] for h in short] == ["elec_ping.flac"]
    assert [h["segment"] for h in hits(browser)] == [str(h["segment_id"]) for h in short]
    browser.refresh()  # the URL is the state: a reload shows the same search, its filters in their controls
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('1 result for “a bell ringing”')")
    assert browser.execute_script("return ['#q', '#f-kind', '#f-dmin', '#f-dmax', '#f-channels', '#f-rate', '#f-tag']"
                                  ".map(s => document.querySelector(s).value)") == ["a bell ringing", "audio", "", "3", "1", "", ""]
    assert [h["segment"] for h in hits(browser)] == [str(h["segment_id"]) for h in short]
    browser.find_element("css selector", "#f-clear").click()
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results for')")
    assert browser.current_url == served.url + "?q=a+bell+ringing"


def _isolated_point(browser: Any, apart_px: float = 12.0) -> dict[str, Any]:
    """A point of the map drawn at least ``apart_px`` from every other (so the pointer finds it alone)."""
    points = browser.execute_script("return window.dgsearchMap.points()")
    for p in points:
        if all((p["x"] - o["x"]) ** 2 + (p["y"] - o["y"]) ** 2 >= apart_px ** 2 for o in points if o is not p):
            return p  # type: ignore[no-any-return]
    raise AssertionError(f"no point of the map stands alone: {points}")


def test_the_map_shows_every_window_hover_plays_it_and_a_click_searches(browser: Any, served: Served,
                                                                         serve_corpus: ServeCorpus) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    doc = httpx.get(served.url + "api/map").json()
    with Catalog.open(serve_corpus.index) as catalog:  # every audio window of the index, once
        windows = catalog.live_ids("audio").tolist()
    assert doc["segment_id"] == windows and doc["count"] == doc["total"] == len(windows) == 10
    assert (doc["method"], doc["stale"], doc["keys"]) == ("pca", False, ["clips"])
    browser.get(served.url)
    wait_for(browser, f"document.querySelector('#map').dataset.points === '{len(windows)}'")
    assert sorted(p["segment"] for p in browser.execute_script("return window.dgsearchMap.points()")) == windows
    assert browser.execute_script("""const c = document.querySelector('#map'), d = c.getContext('2d')
        .getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
        return n""") > 10 * 10  # every point is a dot of some pixels
    canvas = browser.find_element("css selector", "#map")
    size = canvas.size
    point = _isolated_point(browser)

    def at(p: dict[str, Any]) -> ActionChains:
        return ActionChains(browser).move_to_element_with_offset(canvas, round(p["x"] - size["width"] / 2),
                                                                 round(p["y"] - size["height"] / 2))

    at(point).perform()  # hover: the window plays, from its start
    wait_for(browser, f"""(() => {{ const p = document.querySelector('#player');
        return !p.paused && p.currentTime >= {point['start']} && p.currentTime < {point['end']}
               && p.dataset.src.endsWith('/files/{point['file']}/audio'); }})()""")
    assert browser.execute_script("return window.dgsearchMap.playing().segment") == point["segment"]
    ActionChains(browser).move_to_element(browser.find_element("css selector", "#q")).perform()  # leave: it stops
    wait_for(browser, "document.querySelector('#player').paused && !window.dgsearchMap.playing()")
    at(point).click().perform()  # click: more like this window
    wait_for(browser, f"document.querySelector('#status').textContent.startsWith('8 results for sounds like segment {point['segment']}')")
    assert browser.current_url == f"{served.url}?like={point['segment']}"
    shown = [int(h["segment"]) for h in hits(browser)]
    assert shown[0] == point["segment"]
    # the hits light up on the map: all eight (each hit is a window of the map)
    wait_for(browser, "document.querySelector('#map').dataset.lit === '8'")
    assert sorted(browser.execute_script("return window.dgsearchMap.lit()")) == sorted(shown)


def test_keyboard(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.keys import Keys

    browser.get(served.url + "?q=drum")
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results')")
    body = browser.find_element("css selector", "body")
    selected = "Array.from(document.querySelectorAll('#hits .hit')).findIndex(li => li.classList.contains('selected'))"
    body.send_keys(Keys.ARROW_DOWN)
    body.send_keys(Keys.ARROW_DOWN)
    assert browser.execute_script("return " + selected) == 2
    body.send_keys(Keys.ARROW_UP)
    assert browser.execute_script("return " + selected) == 1
    body.send_keys(Keys.SPACE)
    wait_for(browser, "document.querySelector('#player').currentTime > 0.05 && !document.querySelector('#player').paused")
    assert browser.execute_script("return document.querySelector('.hit.playing').dataset.index") == "1"
    body.send_keys(Keys.SPACE)
    wait_for(browser, "document.querySelector('#player').paused && !document.querySelector('.hit.playing')")
    second = hits(browser)[1]["segment"]
    body.send_keys("m")
    wait_for(browser, f"location.search === '?like={second}' && document.querySelector('#status').textContent.includes('results')")
    body.send_keys("/")
    assert browser.execute_script("return document.activeElement.id") == "q"


def test_error_state_and_a_phone_screen(browser: Any, served: Served) -> None:
    browser.get(served.url + "?like=999999")
    wait_for(browser, "document.querySelector('#status').classList.contains('error')")
    text = browser.execute_script("return document.querySelector('#status').textContent")
    assert text.startswith("Error (exit code 3): segment 999999 is not in index ")
    browser.set_window_size(390, 844)
    try:
        browser.get(served.url + "?q=" + quote("a bell ringing"))
        wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results')")
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        width = browser.execute_script("return document.querySelector('.wave').getBoundingClientRect().width")
        assert width > 200
    finally:
        browser.set_window_size(1280, 900)


def test_a_file_gone_since_indexing_is_marked_and_offers_nothing_to_play(browser: Any, served: Served,
                                                                         serve_corpus: ServeCorpus) -> None:
    gone = serve_corpus.clips / "elec_ping.flac"
    file_id = next(h["file_id"] for h in api_hits(served, q="a bell ringing") if h["path"] == str(gone))
    moved = gone.with_name("elec_ping.moved")
    gone.rename(moved)  # moved away after indexing: the index still lists it until the next `dgsearch index`
    try:
        browser.get(served.url + "?q=" + quote("a bell ringing"))
        wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results')")
        wait_for(browser, "document.querySelector('.hit.gone')")
        marked = browser.execute_script("""return Array.from(document.querySelectorAll('#hits .hit.gone')).map(li =>
            [li.querySelector('.path').textContent, li.querySelector('.gone-note').textContent,
             li.querySelector('.play').disabled, li.querySelector('.play-file').disabled])""")
        told = (f"file {file_id} ({gone}) is no longer on disk: `dgsearch index` its folder again, or `dgsearch forget`"
                " a folder gone for good (`dgsearch info --missing` lists them)")
        assert marked == [[below_library(served, str(gone)), told, True, True]]
        assert not browser.execute_script("return document.querySelector('#status').classList.contains('error')")
        # the keyboard plays the selected hit: select the gone one, press space
        index = browser.execute_script("return Array.from(document.querySelectorAll('#hits .hit'))"
                                       ".findIndex(li => li.classList.contains('gone'))")
        browser.find_elements("css selector", "#hits .hit")[index].click()
        browser.find_element("css selector", "body").send_keys(" ")
        wait_for(browser, "document.querySelector('#status').classList.contains('error')")
        assert browser.execute_script("return document.querySelector('#status').textContent") == "Cannot play: " + told
        assert browser.execute_script("return document.querySelector('#player').paused")
    finally:
        moved.rename(gone)


def test_screenshot_of_a_results_page(browser: Any, served: Served, tmp_path: Path) -> None:
    browser.set_window_size(1100, 820)
    try:
        browser.get(served.url + "?q=" + quote("a bell ringing"))
        wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results')")
        wait_for(browser, """Array.from(document.querySelectorAll('.wave')).every(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; })""")
        wait_for(browser, "document.querySelector('#map').dataset.lit === '8'")  # the map, its hits lit
        wait_for(browser, "document.querySelector('#index-info').textContent.includes('8 files')")  # paths below it
        time.sleep(0.3)
        shot = tmp_path / "serve.png"
        assert browser.save_screenshot(str(shot))
        png = shot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
        if os.environ.get("DGSEARCH_UPDATE_SCREENSHOT"):
            (ROOT / "docs").mkdir(exist_ok=True)
            (ROOT / "docs" / "serve.png").write_bytes(png)
    finally:
        browser.set_window_size(1280, 900)
