"""Words held by half the library or more ("a", "the", a folder every file sits in) score nothing in BM25; they
no longer make every file a keyword match when the query has a word that says something. The library is the
captions shipped in examples/clips (one per recording, each starting "a" or "an")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffgap_search.store import keywords
from diffgap_search.store.catalog import Catalog, SegmentInput

CLIPS = Path(__file__).resolve().parent.parent / "examples" / "clips"


@pytest.fixture(scope="module")
def captioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog of the example recordings' names and captions (no audio decoded: the rows keyword search reads)."""
    index = tmp_path_factory.mktemp("common-words") / "ix"
    vec = np.ones(4, np.float32) / 2
    with Catalog.open(index, create=True) as cat, cat.batch():
        for i, caption in enumerate(sorted(CLIPS.glob("*.txt"))):
            path = str(caption.with_suffix(".ogg"))
            cat.put_file(path_key=path.encode(), path=path, kind="audio", size=i, mtime_ns=i, sha256=f"{i:064x}",
                         captions=caption.read_text().splitlines()[:1], duration_s=1.0,
                         segments=[SegmentInput(0.0, 1.0, {"audio": vec})])
        keywords.refresh(cat, [f.id for f in cat.files(status="ok")])
    return index


def _found(index: Path, text: str) -> list[str]:
    with Catalog.open(index) as cat:
        names = {f.id: Path(f.path).stem for f in cat.files(status="ok")}
        return [names[fid] for fid, _ in keywords.ranked_files(cat, keywords.informative_tokens(cat, text), limit=20)]


def test_a_word_in_every_caption_is_dropped_beside_words_that_say_something(captioned: Path) -> None:
    assert _found(captioned, "a bell ringing") == ["bell", "bell_testcard"]  # 12 files before: every "a ..."
    assert sorted(_found(captioned, "a drum")) == ["bass_drum", "snare", "tabla"]
    with Catalog.open(captioned) as cat:
        assert keywords.informative_tokens(cat, "a bell ringing") == ["bell", "ringing"]
        # "a" is in 12 of the 14 rows, "an" in 2: a function word goes however few files hold it
        assert keywords.informative_tokens(cat, "an open drum") == ["open", "drum"]
        assert keywords.informative_tokens(cat, "a drum") == ["drum"]
        ids = {Path(f.path).stem: f.id for f in cat.files(status="ok")}
        cover = keywords.coverage(cat, keywords.informative_tokens(cat, "a bell ringing"),
                                  [ids["bell"], ids["bell_testcard"], ids["crow"]])
    assert cover == {ids["bell"]: 1.0, ids["bell_testcard"]: 0.5, ids["crow"]: 0.0}


def test_a_query_of_common_words_only_still_finds_them(captioned: Path) -> None:
    assert len(_found(captioned, "a")) == 12  # "an electric guitar ...", "an open hi-hat ...": no "a"
    with Catalog.open(captioned) as cat:
        assert keywords.informative_tokens(cat, "a A") == ["a"]
        # function words alone: those under half the library are kept ("the" is in 2 rows of 14, "a" in 12)
        assert keywords.informative_tokens(cat, "a the") == ["the"]
    assert sorted(_found(captioned, "a the")) == ["glass_rub", "guitar_slide"]


def test_when_every_word_is_common_every_word_is_kept(tmp_path: Path) -> None:
    """A drum library asked for "drum kit": both words in every file, so both are kept and every file matches."""
    vec = np.ones(4, np.float32) / 2
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        for i, name in enumerate(("drum_kit_01", "drum_kit_02", "drum_kit_snare")):
            path = f"/lib/{name}.wav"
            cat.put_file(path_key=path.encode(), path=path, kind="audio", size=i, mtime_ns=i, sha256=f"{i:064x}",
                         duration_s=1.0, segments=[SegmentInput(0.0, 1.0, {"audio": vec})])
        keywords.refresh(cat, [f.id for f in cat.files(status="ok")])
        assert keywords.informative_tokens(cat, "drum kit snare") == ["snare"]
        assert keywords.informative_tokens(cat, "drum kit") == ["drum", "kit"]
        assert len(keywords.ranked_files(cat, keywords.informative_tokens(cat, "drum kit"), limit=10)) == 3


def test_a_function_word_held_by_few_files_is_dropped_beside_words_that_say_something(tmp_path: Path) -> None:
    """Real file names of Debian's packages, where no caption holds "a": before, "a bell ringing" also matched
    "Sing-me-a-song.mp3" (4th of 8 on the 743 sounds) through its "a"."""
    vec = np.ones(4, np.float32) / 2
    names = ("BellToll", "bell_choir01", "Sing-me-a-song", "door_knock", "rain", "wind")
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        for i, name in enumerate(names):
            path = f"/lib/{name}.ogg"
            cat.put_file(path_key=path.encode(), path=path, kind="audio", size=i, mtime_ns=i, sha256=f"{i:064x}",
                         duration_s=1.0, segments=[SegmentInput(0.0, 1.0, {"audio": vec})])
        keywords.refresh(cat, [f.id for f in cat.files(status="ok")])
        ids = {Path(f.path).stem: f.id for f in cat.files(status="ok")}
        assert keywords.informative_tokens(cat, "a bell ringing") == ["bell", "ringing"]
        found = [fid for fid, _ in keywords.ranked_files(cat, keywords.informative_tokens(cat, "a bell ringing"), limit=10)]
        assert sorted(found) == sorted([ids["BellToll"], ids["bell_choir01"]])
        assert keywords.informative_tokens(cat, "a song") == ["song"]
        assert keywords.informative_tokens(cat, "the a") == ["the", "a"]  # function words alone: those under half kept
