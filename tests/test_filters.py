"""Search filters (--duration, --sample-rate, --channels, --folder, --tag with --glob and --kind) are applied
before top-k: a filter keeping 3 files of 200 returns exactly those 3 with top_k = 3, in the exact and in
the FAISS paths, for semantic, keyword and hybrid ranking. The catalog is real SQLite, the vectors random
(seeded), searched through real FAISS files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import diffgap_search.search.filters as search_filters
import diffgap_search.search.scoring as search_scoring
from diffgap_search.config import FaissConfig, SearchConfig, SearchMode
from diffgap_search.errors import InputNotFoundError, UsageError
from diffgap_search.media.tags import FileTags
from diffgap_search.search import Searcher
from diffgap_search.search.filters import parse_range, parse_tag
from diffgap_search.search.options import search_options
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.tags import put_file_meta
from diffgap_search.store.vector_index import publish

DIM = 16
N_FILES = 200
RARE = (17, 98, 151)  # the only files at 96 kHz, 6 channels, 40-50 s, under rare/


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """``(index dir, media root, query (1, D))``: 200 files of 2 windows each; the query is nearest to
    files that are not the rare ones (so a post-filter of an unfiltered top-k would miss them)."""
    base = tmp_path_factory.mktemp("filters")
    root = base / "media"
    (root / "rare").mkdir(parents=True)
    (root / "common").mkdir()
    rng = np.random.default_rng(7)
    query = _unit(rng.normal(size=(1, DIM)))
    index_dir = base / "ix"
    with Catalog.open(index_dir, create=True) as cat:
        cat.set_meta({"encoder": {"model": "synthetic", "fingerprint": "0" * 64, "dim": DIM, "sample_rate": 48_000,
                                  "modalities": ["audio", "text"]},
                      "window": {"window_s": 10.0, "hop_s": 10.0, "sample_rate": 48_000}})
        with cat.batch():
            for i in range(N_FILES):
                rare = i in RARE
                folder = "rare" if rare else "common"
                path = root / folder / (f"ZAP_Laser_{i:03d}.wav" if i % 2 else f"take {i:03d}.flac")
                vecs = _unit(rng.normal(size=(2, DIM)))
                if rare:  # far from the query: last in any unfiltered ranking
                    vecs = _unit(-query + 0.05 * rng.normal(size=(2, DIM)))
                duration = 45.0 if rare else 5.0 + (i % 30)
                fid = cat.put_file(path_key=os.fsencode(str(path)), path=str(path), kind="video" if i == 151 else "audio",
                                   size=1000 + i, mtime_ns=i, sha256=f"{i:064x}", duration_s=duration,
                                   segments=[SegmentInput(0.0, 10.0, {"audio": vecs[0]}),
                                             SegmentInput(10.0, duration, {"audio": vecs[1]})])
                put_file_meta(cat, fid, FileTags((("title", f"zap laser {i}"),) if i % 2 else (),
                                                      96_000 if rare else 48_000, 6 if rare else 2))
        publish(index_dir, cat, "audio", DIM, FaissConfig())
    return index_dir, root, query


def _paths(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [Path(h.path).name for h in hits]


RARE_NAMES = ["ZAP_Laser_017.wav", "ZAP_Laser_151.wav", "take 098.flac"]


@pytest.fixture(params=[20_000, 0], ids=["listed", "asked"])
def listing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Filters keeping up to this many files are listed; past it asked about candidates (search/file_filter.py):
    0 asks about every filter's candidates, as a filter keeping most of a 10^6-file library is."""
    monkeypatch.setattr(search_filters, "LISTED_FILES", request.param)
    if request.param == 0:  # and decided on the first file found
        monkeypatch.setattr(search_filters, "PROBE_FILES", 0)
    return int(request.param)


@pytest.mark.parametrize("exact_limit", [20_000, 0], ids=["exact-over-filtered", "faiss-growing-k"])
@pytest.mark.parametrize("flt", [
    {"sample_rate": 96_000}, {"channels": 6}, {"duration_min": 40.0, "duration_max": 50.0}, {"folder": "rare"},
])
def test_a_filter_keeping_3_of_200_files_returns_exactly_them(
    library: tuple[Path, Path, np.ndarray], flt: dict, exact_limit: int, monkeypatch: pytest.MonkeyPatch,
    listing: int,
) -> None:
    index_dir, _, query = library
    monkeypatch.setattr(search_scoring, "EXACT_FILTER_SEGMENTS", exact_limit)
    with Searcher(index_dir, load_encoder=None) as s:  # type: ignore[arg-type]
        unfiltered, _, _ = s.search_vectors(query, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=N_FILES))
        assert sorted(_paths(unfiltered)[-3:]) == RARE_NAMES  # last of all 200 without the filter
        hits, _, _ = s.search_vectors(query, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=3, **flt))
    assert sorted(_paths(hits)) == sorted(RARE_NAMES)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filters_combine_with_glob_kind_and_folder_path(library: tuple[Path, Path, np.ndarray], listing: int) -> None:
    index_dir, root, query = library
    with Searcher(index_dir, load_encoder=None) as s:  # type: ignore[arg-type]
        def names(**kw: object) -> list[str]:
            hits, _, _ = s.search_vectors(query, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=10, **kw))  # type: ignore[arg-type]
            return sorted(_paths(hits))

        assert names(sample_rate=96_000, path_glob="*.flac") == ["take 098.flac"]
        assert names(sample_rate=96_000, kind="video") == ["ZAP_Laser_151.wav"]
        assert names(sample_rate=96_000, kind="audio", path_glob="ZAP_*") == ["ZAP_Laser_017.wav"]
        assert names(folder=str(root / "rare")) == sorted(RARE_NAMES)
        assert names(folder=str(root / "rare") + "/", channels=2) == []
        assert names(duration_max=5.0) == ["take 000.flac", "take 030.flac", "take 060.flac", "take 090.flac",
                                           "take 120.flac", "take 150.flac", "take 180.flac"]
        assert names(sample_rate=44_100) == []
        # tags: every odd file has title "zap laser I"; value contains, any case; KEY=TEXT looks at that key only
        assert names(tag="ZAP LASER 17", channels=6) == ["ZAP_Laser_017.wav"]
        assert names(tag="title=laser 15", sample_rate=96_000) == ["ZAP_Laser_151.wav"]
        assert names(tag="artist=laser") == []
        assert names(tag="laser 19") == ["ZAP_Laser_019.wav", "ZAP_Laser_191.wav", "ZAP_Laser_193.wav",
                                         "ZAP_Laser_195.wav", "ZAP_Laser_197.wav", "ZAP_Laser_199.wav"]
        with pytest.raises(InputNotFoundError, match="--folder /no/such/dir: no such folder"):
            names(folder="/no/such/dir")


def test_keyword_and_hybrid_ranking_filter_before_top_k(library: tuple[Path, Path, np.ndarray], listing: int) -> None:
    """Every odd file is named and tagged "zap laser": the filter leaves one of them, which comes back alone."""
    index_dir, _, _ = library
    with Searcher(index_dir, load_encoder=None) as s:  # type: ignore[arg-type]
        from diffgap_search.search.keyword import search_keyword

        got = search_keyword(s.catalog, "zap laser", SearchConfig(mode=SearchMode.SEMANTIC, top_k=1, sample_rate=96_000))
        assert _paths(got.hits) == ["ZAP_Laser_017.wav"]
        cfg = SearchConfig(mode=SearchMode.SEMANTIC, top_k=5, folder="common", duration_min=34.0)
        for allowed in (search_filters.allowed_file_ids(s.catalog, cfg),  # listed, and asked (as a FileFilter)
                        search_filters.allowed_file_ids(s.catalog, cfg, may_ask=True)):
            got = search_keyword(s.catalog, "zap laser", cfg, allowed)
            assert _paths(got.hits) == ["ZAP_Laser_029.wav", "ZAP_Laser_059.wav", "ZAP_Laser_089.wav",
                                        "ZAP_Laser_119.wav", "ZAP_Laser_149.wav"]


@pytest.mark.parametrize(("text", "expected"), [("0.5..3", (0.5, 3.0)), ("2..", (2.0, None)), ("..10", (None, 10.0))])
def test_duration_ranges_parse(text: str, expected: tuple) -> None:  # type: ignore[type-arg]
    assert parse_range(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("foley", (None, "foley")), ("genre=Foley", ("genre", "Foley")),
                                              (" a = b c ", ("a", "b c"))])
def test_tags_parse(text: str, expected: tuple) -> None:  # type: ignore[type-arg]
    assert parse_tag(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "genre=", "=foley"])
def test_bad_tags_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as err:
        search_options(tag=text)
    assert str(err.value) == f"--tag takes TEXT or KEY=TEXT (e.g. genre=foley), not {text!r}"


def test_a_tag_text_longer_than_any_tag_is_a_usage_error() -> None:
    assert parse_tag("x" * 1000) == (None, "x" * 1000)
    with pytest.raises(UsageError) as err:
        search_options(tag="title=" + "x" * 1001)
    assert str(err.value) == "--tag looks for at most 1000 characters, not 1001"


@pytest.mark.parametrize(("text", "message"), [
    ("3", "--duration takes MIN..MAX, MIN.. or ..MAX in seconds (e.g. 0.5..3), not '3'"),
    ("a..b", "--duration takes MIN..MAX, MIN.. or ..MAX in seconds (e.g. 0.5..3), not 'a..b'"),
    ("..", "--duration needs a bound: MIN..MAX, MIN.. or ..MAX, not '..'"),
    ("5..1", "--duration 5..1: the minimum is above the maximum"),
])
def test_bad_duration_ranges_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_range(text)
    assert str(err.value) == message


def test_a_filter_past_the_listing_limit_is_asked_about_ids(library: tuple[Path, Path, np.ndarray],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Listed, the filter is the exact set of ids; past the limit, a FileFilter answering for any ids as the set
    would (a glob too)."""
    index_dir, _, _ = library
    from diffgap_search.search import file_filter
    from diffgap_search.search.file_filter import FileFilter
    from diffgap_search.search.filters import allowed_file_ids

    with Catalog.open(index_dir) as cat:
        for cfg in (SearchConfig(kind="audio"), SearchConfig(duration_min=20.0, path_glob="ZAP_*"),
                    SearchConfig(tag="laser 1")):
            monkeypatch.setattr(search_filters, "LISTED_FILES", 20_000)
            listed = allowed_file_ids(cat, cfg, may_ask=True)
            assert isinstance(listed, set) and 0 < len(listed) < N_FILES
            every = list(range(1, N_FILES + 1))
            monkeypatch.setattr(search_filters, "PROBE_FILES", 0)
            monkeypatch.setattr(search_filters, "LISTED_FILES", 0)
            for ask_at_most in (20_000, 60):  # 60: asked about more in all, it lists every passing file instead
                monkeypatch.setattr(file_filter, "ASK_AT_MOST", ask_at_most)
                asked = allowed_file_ids(cat, cfg, may_ask=True)
                assert isinstance(asked, FileFilter)
                assert allowed_file_ids(cat, cfg) == listed  # a keyword ranking lists
                assert asked.allows(every[:50]) == listed & set(every[:50])
                assert asked.allows(every) == listed  # half remembered, half asked
                assert asked.allows([N_FILES + 7, max(listed)]) == {max(listed)}
                assert asked.mask(np.array(every, np.int64)).tolist() == [i in listed for i in every]
            monkeypatch.setattr(search_filters, "PROBE_FILES", len(listed))  # the probe found them all: listed
            assert allowed_file_ids(cat, cfg, may_ask=True) == listed


def test_whether_a_filter_is_listed_is_estimated_from_the_first_files_found(library: tuple[Path, Path, np.ndarray],
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Probing 11 files: a kind 199 of the 200 files have is estimated at about 200 (past 50: asked about), a
    duration 3 files have is found whole (listed); a filter found whole is listed whatever the limit."""
    index_dir, _, _ = library
    from diffgap_search.search.file_filter import FileFilter
    from diffgap_search.search.filters import allowed_file_ids

    monkeypatch.setattr(search_filters, "PROBE_FILES", 10)
    monkeypatch.setattr(search_filters, "LISTED_FILES", 50)
    with Catalog.open(index_dir) as cat:
        assert isinstance(allowed_file_ids(cat, SearchConfig(kind="audio"), may_ask=True), FileFilter)
        assert isinstance(allowed_file_ids(cat, SearchConfig(path_glob="*.wav"), may_ask=True), FileFilter)
        assert len(allowed_file_ids(cat, SearchConfig(duration_min=40.0, duration_max=50.0), may_ask=True)) == 3
        monkeypatch.setattr(search_filters, "LISTED_FILES", 500)  # estimated under it: listed, every one
        listed = allowed_file_ids(cat, SearchConfig(kind="audio"), may_ask=True)
        assert isinstance(listed, set) and len(listed) == N_FILES - 1
