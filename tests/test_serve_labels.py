"""Labels in ``dgsearch serve``: the API (``GET``/``POST /api/labels``, ``label=`` on a search), the page in a real
headless Chromium (put a label on a hit, filter by it, take it off), and the guard against other sites' pages: a
real page served from another loopback port tries to label a file through the browser, every way a page can,
and nothing is written.

The server is the session's (``fixtures_serve.served``): every test leaves the index without labels.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import chromium, require_chromium
from fixtures_serve import ServeCorpus
from serve_server import Served
from test_serve_page import wait_for

from diffgap_search.labels import unlabel_everywhere
from diffgap_search.store.catalog import Catalog


def _labels(served: Served) -> dict[str, int]:
    return {row["label"]: row["files"] for row in httpx.get(served.url + "api/labels").json()["labels"]}


def _file_id(corpus: ServeCorpus, name: str) -> int:
    with Catalog.open(corpus.index) as cat:
        row = cat.file_by_key(str(corpus.clips / name).encode())
    assert row is not None, name
    return row.id


@pytest.fixture
def clean(served: Served, serve_corpus: ServeCorpus) -> Iterator[Served]:
    """The session's server; every label left by the test is taken off afterwards."""
    yield served
    for name in _labels(served):
        unlabel_everywhere(serve_corpus.index, name)
    assert _labels(served) == {}


def test_the_api_labels_files_by_id_and_a_search_filters_by_label(clean: Served, serve_corpus: ServeCorpus) -> None:
    served = clean
    bell, kick = _file_id(serve_corpus, "perc_bell.flac"), _file_id(serve_corpus, "bd_haus.flac")
    r = httpx.post(served.url + "api/labels", json={"label": "Keepers", "file_ids": [bell, kick]})
    assert (r.status_code, r.json()) == (200, {"label": "Keepers", "files": 2, "changed": 2, "removed": False})
    assert _labels(served) == {"Keepers": 2}
    hits = httpx.get(served.url + "api/search", params={"q": "a bell ringing", "label": "KEEPERS"}).json()["hits"]
    assert sorted(Path(h["path"]).name for h in hits) == ["bd_haus.flac", "perc_bell.flac"]
    assert all(h["labels"] == ["Keepers"] for h in hits)
    r = httpx.post(served.url + "api/labels", json={"label": "keepers", "file_ids": [kick], "remove": True})
    assert r.json() == {"label": "Keepers", "files": 1, "changed": 1, "removed": True}
    r = httpx.post(served.url + "api/labels", json={"label": "Keepers", "file_ids": [bell, 999_999]})
    assert (r.status_code, r.json()["exit_code"]) == (404, 3)
    assert r.json()["message"].startswith("no file 999999 in index ")
    assert _labels(served) == {"Keepers": 1}
    r = httpx.post(served.url + "api/labels", json={"label": "  ", "file_ids": [bell]})
    assert (r.status_code, r.json()["message"]) == (400, "a label needs a name: it cannot be empty or only spaces")
    r = httpx.post(served.url + "api/labels", json={"label": "Keepers", "file_ids": []})
    assert (r.status_code, r.json()["message"]) == (
        400, "bad label change file_ids: List should have at least 1 item after validation, not 0")


@pytest.mark.parametrize(("headers", "status", "message"), [
    ({"Content-Type": "text/plain"}, 400, "POST /api/labels takes a JSON body (Content-Type: application/json)"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 400,
     "POST /api/labels takes a JSON body (Content-Type: application/json)"),
    ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403,
     "a change to the index must come from this server's own page ({host}), not from http://evil.example"),
    ({"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, 403,
     "a change to the index must come from this server's own page ({host}), not from another site"),
])
def test_a_write_that_another_page_could_send_is_refused(clean: Served, serve_corpus: ServeCorpus,
                                                         headers: dict[str, str], status: int, message: str) -> None:
    served = clean
    body = '{"label": "pwned", "file_ids": [%d]}' % _file_id(serve_corpus, "perc_bell.flac")
    r = httpx.post(served.url + "api/labels", content=body, headers=headers)
    host = served.url.split("//", 1)[1].rstrip("/")
    assert (r.status_code, r.json()["exit_code"], r.json()["message"]) == (status, 2, message.format(host=host))
    assert _labels(served) == {}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as driver:
        yield driver


def test_label_a_hit_in_the_page_filter_by_it_and_take_it_off(browser: Any, clean: Served) -> None:
    from selenium.webdriver.common.keys import Keys

    served = clean
    browser.get(served.url + "?q=a+bell+ringing")
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('8 results for')")
    first = httpx.get(served.url + "api/search", params={"q": "a bell ringing"}).json()["hits"][0]
    browser.find_element("css selector", "#hits .hit .label-open").click()
    box = browser.find_element("css selector", "#hits .hit .label-add input")
    box.send_keys("Keepers", Keys.ENTER)
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('Labelled “Keepers”')")
    assert browser.execute_script("return document.querySelector('#hits .hit .chips').textContent") == "Keepers×"
    assert _labels(served) == {"Keepers": 1}
    # the key l labels the selected hit (the second, after ↓); the box offers the index's labels
    browser.find_element("css selector", "body").send_keys(Keys.ARROW_DOWN, "l")
    wait_for(browser, "document.activeElement.matches('#hits .hit.selected .label-add input')")
    assert browser.execute_script("return Array.from(document.querySelectorAll('#label-names option')).map(o => o.value)") == ["Keepers"]
    browser.switch_to.active_element.send_keys("keepers", Keys.ENTER)  # any case: the index's spelling
    wait_for(browser, "document.querySelectorAll('#hits .chip').length === 2")
    assert _labels(served) == {"Keepers": 2}
    # the filter bar's label box: the two labelled files, in the URL too
    browser.find_element("css selector", "#f-label").send_keys("keepers", Keys.TAB)
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('2 results for')")
    assert browser.current_url == served.url + "?q=a+bell+ringing&label=keepers"
    # × takes it off: the chip goes, the index forgets it; Undo puts it back, once
    browser.find_element("css selector", "#hits .hit .chip .unlabel").click()
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('Took “Keepers” off')")
    assert _labels(served) == {"Keepers": 1}
    assert browser.execute_script("return document.querySelectorAll('#hits .chip').length") == 1
    browser.find_element("css selector", "#status .undo").click()
    wait_for(browser, "document.querySelector('#status').textContent.startsWith('Undone: “Keepers” is back on')")
    assert _labels(served) == {"Keepers": 2}
    assert browser.execute_script("return document.querySelectorAll('#hits .chip').length") == 2
    assert browser.execute_script("return document.querySelector('#status .undo')") is None
    # putting on a label a file carries already changes nothing, and offers nothing to undo
    browser.find_element("css selector", "#hits .hit .label-open").click()
    browser.find_element("css selector", "#hits .hit .label-add input").send_keys("KEEPERS", Keys.ENTER)
    wait_for(browser, "document.querySelector('#status').textContent.endsWith('carries “Keepers” already')")
    assert browser.execute_script("return document.querySelector('#status .undo')") is None
    assert first["labels"] == []


class _Attacker(http.server.BaseHTTPRequestHandler):
    """Serves one page that tries to label file 1 of the dgsearch server at ``target`` every way a page can."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        page = f"""<!doctype html><title>start</title><body>
<form id="f" method="POST" enctype="text/plain" action="{self.target}api/labels" target="sink">
<input name='{{"label": "pwned-form", "file_ids": [1], "x": "' value='"}}'></form>
<iframe name="sink"></iframe>
<script>
const body = JSON.stringify({{label: "pwned-fetch", file_ids: [1]}});
const tries = [
  fetch("{self.target}api/labels", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body}}),
  fetch("{self.target}api/labels", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}}),
  fetch("{self.target}api/labels", {{method: "POST", mode: "no-cors", body: new Blob([body], {{type: "application/json"}})}}),
];
Promise.allSettled(tries).then((r) => {{
  document.querySelector("iframe").addEventListener("load", () => {{
    document.title = "done " + r.map((x) => x.status).join(",");  // the form's answer has come back too
  }});
  document.getElementById("f").submit();
}});
</script></body>"""
        data = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_page_of_another_origin_cannot_label_files_through_the_browser(browser: Any, clean: Served) -> None:
    served = clean
    _Attacker.target = served.url
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    thread = threading.Thread(target=attacker.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{attacker.server_address[1]}/")
        wait_for(browser, "document.title.startsWith('done')")
        # the JSON fetch needs a preflight the server never grants; the no-cors ones arrive without a JSON type
        assert browser.title == "done rejected,fulfilled,fulfilled"
    finally:
        attacker.shutdown()
        attacker.server_close()
    assert _labels(served) == {}
