"""Byte-identical files tie and show once, on real recordings: the library, ``dgsearch query``/``similar``
(``--json``, the table, ``--paths``, ``--all-copies``), keyword and hybrid ranking, the web API and the page
(real headless Chromium) against a real ``dgsearch serve``.

The corpus: Debian's CC0 ``perc_bell`` copied under four names in four folders, beside five other
recordings, indexed in one run with the tiny CLAP in batches of 4 windows. The copy sorted last,
``z/ring.flac``, is embedded alone in the last batch, and its vector differs from the other three by a few
ulps (as a real model's does in another batch): by their own vectors the four would not tie.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cli_runner import wide

from diffgap_search.config import EncoderConfig, IndexingConfig, SearchConfig, SearchMode
from diffgap_search.search import Query, Searcher
from diffgap_search.store.catalog import Catalog
from real_sounds import MISSING_REASON, SAMPLES_DIR
from serve_server import Served, below_library, start_serve

COPIES = ("a/bell.flac", "b/bell_copy.flac", "c/0001.flac", "z/ring.flac")
OTHERS = ("ambi_choir", "bd_haus", "elec_ping", "guit_harmonics", "loop_amen")

dg = wide(250, NO_COLOR="1")


@dataclass(frozen=True)
class Corpus:
    clips: Path
    index: Path

    def path(self, name: str) -> str:
        return str(self.clips / name)

    @property
    def copies(self) -> list[str]:
        return [self.path(n) for n in COPIES]  # already in path order


def loader(cfg: EncoderConfig) -> Any:
    from diffgap_search.encoders.loading import load_encoder

    return load_encoder(cfg, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_clap_dir: Path) -> Corpus:
    from diffgap_search.indexing import index_folder

    if not all((SAMPLES_DIR / f"{s}.flac").is_file() for s in ("perc_bell", *OTHERS)):
        pytest.skip(MISSING_REASON)
    clips = tmp_path_factory.mktemp("copies") / "clips"
    for name in COPIES:
        (clips / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLES_DIR / "perc_bell.flac", clips / name)
    for stem in OTHERS:
        shutil.copyfile(SAMPLES_DIR / f"{stem}.flac", clips / f"{stem}.flac")
    index = clips.parent / "index"
    index_folder(clips, index, load_encoder=loader, encoder_cfg=EncoderConfig(model=str(tiny_clap_dir), device="cpu",
                                                                              batch_size=4),
                 indexing_cfg=IndexingConfig(decode_workers=0))
    return Corpus(clips, index)


def own_scores(corpus: Corpus, query: np.ndarray) -> dict[str, float]:
    """Path -> the best float64 cosine of ``query (Q, D)`` over the file's own stored windows."""
    with Catalog.open(corpus.index) as cat:
        ids, vecs = next(cat.read_vectors("audio"))
        rows = cat.hit_rows(ids.tolist())
    scores: dict[str, float] = {}
    for sid, vec in zip(ids.tolist(), vecs.astype(np.float64)):
        score = float((query.astype(np.float64) @ vec).max())
        scores[rows[sid].path] = max(score, scores.get(rows[sid].path, -np.inf))
    return scores


def semantic(**kw: Any) -> SearchConfig:
    return SearchConfig(mode=SearchMode.SEMANTIC, **kw)


def test_byte_identical_files_tie_by_path_and_show_once(corpus: Corpus) -> None:
    with Searcher(corpus.index, loader) as s:
        query = s.embed_query(Query(audio=Path(corpus.path("z/ring.flac"))))
        apart = s.search(Query(audio=Path(corpus.path("z/ring.flac"))), semantic(top_k=9, all_copies=True)).hits
        once = s.search(Query(audio=Path(corpus.path("z/ring.flac"))), semantic(top_k=3)).hits
        every = s.search(Query(audio=Path(corpus.path("a/bell.flac"))), semantic(top_k=10)).hits
        windows = s.search(Query(audio=Path(corpus.path("a/bell.flac"))), semantic(top_k=2, group_by_file=False)).hits
    own = own_scores(corpus, query)
    assert len({own[p] for p in corpus.copies}) == 2  # z/ring's own vector is a few ulps off the others'
    # apart: the four copies first, one score bit for bit, by path; then the other five by their scores
    assert [h.path for h in apart[:4]] == corpus.copies
    assert len({h.score for h in apart[:4]}) == 1 and abs(apart[0].score - own[corpus.path("a/bell.flac")]) < 1e-12
    others = sorted((p for p in own if p not in corpus.copies), key=lambda p: (-own[p], p))
    assert [h.path for h in apart[4:]] == others and len(apart) == 9
    assert all(abs(h.score - own[h.path]) < 1e-12 for h in apart[4:]) and all(h.copies == [] for h in apart)
    # once: the bell is one hit, its best by path, listing the other three; k = 3 counts three sounds
    assert [(h.path, h.copies) for h in once] == [(corpus.copies[0], corpus.copies[1:]), (others[0], []),
                                                  (others[1], [])]
    assert [h.score for h in once] == [apart[0].score, apart[4].score, apart[5].score]
    assert len(every) == 6 and sum(1 for h in every if h.copies) == 1  # all six sounds of the library
    assert (windows[0].path, windows[0].copies, windows[0].start_s) == (corpus.copies[0], corpus.copies[1:], 0.0)


def test_query_and_similar_commands(corpus: Corpus) -> None:
    r = dg("query", "--audio", corpus.path("a/bell.flac"), "--index", corpus.index, "-k", "3", "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    assert (hits[0]["path"], hits[0]["copies"]) == (corpus.copies[0], corpus.copies[1:])
    assert len(hits) == 3 and [h["copies"] for h in hits[1:]] == [[], []]
    apart = json.loads(dg("query", "--audio", corpus.path("a/bell.flac"), "--index", corpus.index, "-k", "4", "--json",
                          "--all-copies").stdout)["hits"]
    assert [h["path"] for h in apart] == corpus.copies and len({h["score"] for h in apart}) == 1
    lines = dg("query", "--audio", corpus.path("a/bell.flac"), "--index", corpus.index, "-k", "2", "--jsonl").stdout
    assert json.loads(lines.splitlines()[0])["copies"] == corpus.copies[1:] and len(lines.splitlines()) == 2
    table = dg("query", "--audio", corpus.path("a/bell.flac"), "--index", corpus.index, "-k", "3").stdout
    assert f"{corpus.copies[0]} (+3 copies)" in table and table.count("copies)") == 1
    paths = dg("query", "--audio", corpus.path("a/bell.flac"), "--index", corpus.index, "-k", "3", "--paths").stdout
    assert paths.splitlines() == [h["path"] for h in hits]
    # similar: its own file is no hit and no copy; its three copies at other paths are one hit
    near = json.loads(dg("similar", corpus.path("a/bell.flac"), "--index", corpus.index, "-k", "2", "--json").stdout)
    assert (near["hits"][0]["path"], near["hits"][0]["copies"]) == (corpus.copies[1], corpus.copies[2:])
    assert near["hits"][1]["path"] == hits[1]["path"]
    near_apart = json.loads(dg("similar", corpus.path("z/ring.flac"), "--index", corpus.index, "-k", "4", "--json",
                               "--all-copies").stdout)["hits"]
    assert [h["path"] for h in near_apart[:3]] == corpus.copies[:3] and len({h["score"] for h in near_apart[:3]}) == 1
    assert near_apart[3]["path"] == hits[1]["path"]
    one = dg("similar", corpus.path("z/ring.flac"), "--index", corpus.index, "-k", "1").stdout
    assert f"{corpus.copies[0]} (+2 copies)" in one


def test_keyword_and_hybrid_count_sounds_not_files(corpus: Corpus) -> None:
    with Searcher(corpus.index, loader) as s:
        words = s.search(Query(text="bell"), SearchConfig(mode=SearchMode.KEYWORD, top_k=10)).hits
        words_apart = s.search(Query(text="bell"),
                               SearchConfig(mode=SearchMode.KEYWORD, top_k=10, all_copies=True)).hits
        fused = s.search(Query(text="bell"), SearchConfig(mode=SearchMode.HYBRID, top_k=3)).hits
        fused_apart = s.search(Query(text="bell"), SearchConfig(mode=SearchMode.HYBRID, top_k=2, all_copies=True)).hits
        ranked = s.search(Query(text="bell"), semantic(top_k=6)).hits
    # keyword: the names holding "bell" (a/bell.flac best: the shorter name) are one hit listing every copy
    matched = [h.path for h in words_apart if h.path in corpus.copies]
    assert matched[:2] == corpus.copies[:2]
    assert [(h.path, h.copies, h.ranks) for h in words[:1]] == [(corpus.copies[0], corpus.copies[1:], {"keyword": 1})]
    assert [h.path for h in words[1:]] == [h.path for h in words_apart if h.path not in corpus.copies]
    assert [h.ranks["keyword"] for h in words] == list(range(1, len(words) + 1))
    # hybrid: the ranks count sounds; the copies named "bell" hold the keyword term, a/bell.flac wins by path
    assert (fused[0].path, fused[0].copies) == (corpus.copies[0], corpus.copies[1:]) and len(fused) == 3
    bell_rank = next(i for i, h in enumerate(ranked, 1) if h.path == corpus.copies[0])
    assert fused[0].ranks == {"semantic": bell_rank, "keyword": 1}
    assert not {h.path for h in fused[1:]} & set(corpus.copies)
    assert [h.path for h in fused_apart] == corpus.copies[:2]


@pytest.fixture(scope="module")
def served(corpus: Corpus) -> Iterator[Served]:
    server = start_serve(corpus.index)
    yield server
    server.stop()


def test_api_collapses_copies_as_the_cli_does(served: Served, corpus: Corpus) -> None:
    like = json.loads(dg("query", "--audio", corpus.path("a/bell.flac"), "--index", corpus.index, "-k", "1",
                         "--json").stdout)["hits"][0]["segment_id"]
    api = httpx.get(served.url + "api/search", params={"like": like, "k": 3}).json()
    cli = json.loads(dg("query", "--like", str(like), "--index", corpus.index, "-k", "3", "--json").stdout)
    assert api["hits"] == cli["hits"] and api["hits"][0]["copies"] == corpus.copies[1:]
    apart = httpx.get(served.url + "api/search", params={"like": like, "k": 3, "all_copies": "true"}).json()["hits"]
    assert [h["path"] for h in apart] == corpus.copies[:3] and [h["copies"] for h in apart] == [[], [], []]
    with open(corpus.path("c/0001.flac"), "rb") as f:
        data = f.read()
    for flag, expected in (("false", [corpus.copies[0]]), ("true", corpus.copies)):
        r = httpx.post(served.url + "api/search/file", files={"file": ("0001.flac", data, "audio/flac")},
                       data={"k": str(len(expected)), "all_copies": flag})
        assert r.status_code == 200, r.text
        assert [h["path"] for h in r.json()["hits"]][: len(expected)] == expected


def test_page_shows_the_copies_of_a_hit(served: Served, corpus: Corpus) -> None:
    from browser import chromium, require_chromium

    require_chromium()
    like = httpx.get(served.url + "api/search", params={"q": "bell", "k": 1}).json()["hits"][0]["segment_id"]
    with chromium() as browser:
        browser.get(f"{served.url}?like={like}")
        status = "return document.querySelector('#status').textContent"
        deadline = time.monotonic() + 30
        while not browser.execute_script(status).startswith("6 results") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert browser.execute_script(status).startswith(f"6 results for sounds like segment {like}")
        # paths are shown below the library folder once /api/info has named it; the whole path on hover
        folder = httpx.get(served.url + "api/info").json()["summary"]["library folder"]
        while f" in {folder}," not in browser.execute_script("return document.querySelector('#index-info').textContent"):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        shown = browser.execute_script("""return Array.from(document.querySelectorAll('#hits .hit')).map(li => {
            const c = li.querySelector('.copies');
            return [li.querySelector('.path').textContent, c.hidden, c.querySelector('summary').textContent,
                    c.open]; })""")
        assert shown[0] == [below_library(served, corpus.copies[0]), False, "+3 copies", False]
        assert all(hidden for _, hidden, _, _ in shown[1:]) and len(shown) == 6
        browser.find_element("css selector", "#hits .hit .copies summary").click()
        listed = browser.execute_script("""const c = document.querySelector('#hits .hit .copies');
            return [c.open, Array.from(c.querySelectorAll('li')).map(li => [li.textContent, li.title])]""")
        assert listed == [True, [[below_library(served, p), p] for p in corpus.copies[1:]]]
