"""Keyword ranking by BM25F (``store/bm25f.py``): each column of a file's keyword row normalised by its own length,
so a word of a file's name scores the same however deep the file sits, a short name beats a long one, and a caption
counts in a library where few files have one. The paths are the real ones of Debian's packages (wesnoth-1.16-data,
tuxpaint-stamps-default, scratch, lmms-common), which ranked the other way with FTS5's own ``bm25()``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from diffgap_search.store import fts5_sizes, keywords
from diffgap_search.store.bm25f import B, K1, bm25f
from diffgap_search.store.catalog import Catalog, SegmentInput

WESNOTH = "/usr/share/games/wesnoth/1.16"
TUXPAINT = "/usr/share/tuxpaint/stamps"
REAL = [
    *(f"{TUXPAINT}/naturalforces/explosion_desc_{lang}.ogg" for lang in ("be", "bg", "ca", "da", "el", "es", "fr")),
    f"{WESNOTH}/data/core/sounds/explosion.ogg",
    "/usr/share/scratch/Media/Sounds/Effects/BellToll.wav",
    "/usr/share/lmms/samples/stringsnpads/bell_choir01.ogg",
    "/usr/share/lmms/samples/stringsnpads/bell_choir02.ogg",
    f"{WESNOTH}/sounds/bell.wav",
    f"{TUXPAINT}/household/tools/mallet_metal.ogg",
    f"{TUXPAINT}/clothes/hats/santahat.ogg",
    f"{TUXPAINT}/clothes/hats/hat.ogg",
    "/usr/share/qabcs/abcs/en/sounds/words/hat.ogg",
    "/usr/share/scratch/Media/Sounds/Effects/WaterDrop.mp3",
]
CAPTIONS = {  # tuxpaint's own sentences (first lines of NAME.txt); no other file here has one
    f"{TUXPAINT}/household/tools/mallet_metal.ogg": "A large metal mallet.",
    f"{TUXPAINT}/clothes/hats/santahat.ogg": "A Christmas hat.",
}


def put(cat: Catalog, paths: Sequence[str], captions: dict[str, str] | None = None) -> None:
    """Catalog rows for ``paths`` (no audio decoded: the rows keyword search reads), then their keyword rows."""
    vec = np.ones(4, np.float32) / 2
    start = len(cat.files())
    for i, path in enumerate(paths, start):
        caption = (captions or {}).get(path)
        cat.put_file(path_key=path.encode(), path=path, kind="audio", size=i, mtime_ns=i, sha256=f"{i:064x}",
                     captions=[caption] if caption else [], duration_s=1.0,
                     segments=[SegmentInput(0.0, 1.0, {"audio": vec})])
    keywords.refresh(cat, [f.id for f in cat.files(status="ok")])


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("bm25f") / "ix"
    with Catalog.open(index, create=True) as cat, cat.batch():
        put(cat, REAL, CAPTIONS)
    return index


def ranked(index: Path, text: str, limit: int = 20) -> list[tuple[str, float]]:
    with Catalog.open(index) as cat:
        paths = {f.id: f.path for f in cat.files(status="ok")}
        return [(paths[fid], score) for fid, score in
                keywords.ranked_files(cat, keywords.informative_tokens(cat, text), limit=limit)]


def fts5_order(index: Path, text: str) -> list[str]:
    """The order FTS5's own bm25() gave (one length for the whole row), with the same weights."""
    with Catalog.open(index) as cat:
        weights = ", ".join(str(w) for w in keywords.COLUMN_WEIGHTS)
        expr = keywords.expression_of(keywords.informative_tokens(cat, text))
        return [p for p, in cat.conn.execute(
            f"SELECT f.path FROM keywords k JOIN files f ON f.id = k.rowid WHERE keywords MATCH ?"
            f" ORDER BY bm25(keywords, {weights}), k.rowid", (expr,))]


def test_the_file_named_for_the_word_comes_first_however_deep_it_sits(real: Path) -> None:
    explosion = [p for p, _ in ranked(real, "explosion")]
    assert explosion[0] == f"{WESNOTH}/data/core/sounds/explosion.ogg" and len(explosion) == 8
    assert fts5_order(real, "explosion")[-1] == explosion[0]  # last of 8 by the whole row's length
    bell = [p for p, _ in ranked(real, "bell")]
    assert bell == [f"{WESNOTH}/sounds/bell.wav", "/usr/share/scratch/Media/Sounds/Effects/BellToll.wav",
                    "/usr/share/lmms/samples/stringsnpads/bell_choir01.ogg",
                    "/usr/share/lmms/samples/stringsnpads/bell_choir02.ogg"]


def test_a_caption_counts_where_few_files_have_one(real: Path) -> None:
    """Two captions among 17 files: their column's average is taken over those two, not over all 17 (0.4 tokens),
    so "A Christmas hat." finds the file it describes before the files named hat."""
    assert [p for p, _ in ranked(real, "A Christmas hat.")][:3] == [
        f"{TUXPAINT}/clothes/hats/santahat.ogg", f"{TUXPAINT}/clothes/hats/hat.ogg",
        "/usr/share/qabcs/abcs/en/sounds/words/hat.ogg"]
    with Catalog.open(real) as cat:
        sizes = fts5_sizes.column_sizes(cat)
    assert sizes.rows == len(REAL) and sizes.averages[2] == pytest.approx((4 + 3) / 2)  # "A large metal mallet."


def test_a_word_of_the_name_scores_the_same_at_any_depth(tmp_path: Path) -> None:
    paths = ["/lib/door.wav", "/lib/a/b/c/d/e/f/g/h/door.wav", "/lib/car.wav", "/lib/x/bus.wav", "/lib/tram.wav"]
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        put(cat, paths)
    scores = dict(ranked(tmp_path / "ix", "door"))
    assert list(scores) == paths[:2] and scores[paths[0]] == scores[paths[1]]  # equal: ties by file id


def test_scores_equal_the_formula_worked_by_hand(tmp_path: Path) -> None:
    """Five rows; "door" is in two. name sizes 2, 1, 1, 1, 1 (avg 1.2); folders "lib" or "lib sfx" (2 of 5 have
    "sfx": sizes 1, 2, 1, 2, 1, avg 1.4); one caption of 3 tokens (avg 3, over the one row holding it)."""
    paths = ["/lib/door_slam.wav", "/lib/sfx/door.wav", "/lib/car.wav", "/lib/sfx/bus.wav", "/lib/tram.wav"]
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        put(cat, paths, {"/lib/sfx/door.wav": "a wooden door"})
    idf = math.log((5 - 2 + 0.5) / (2 + 0.5))
    w_name, _, w_caption, _ = keywords.COLUMN_WEIGHTS

    def saturate(tf: float) -> float:
        return -idf * tf * (K1 + 1) / (K1 + tf)

    door_slam = w_name * 1 / ((1 - B) + B * 2 / 1.2)
    door = w_name * 1 / ((1 - B) + B * 1 / 1.2) + w_caption * 1 / ((1 - B) + B * 3 / 3)
    got = dict(ranked(tmp_path / "ix", "door"))
    assert list(got) == ["/lib/sfx/door.wav", "/lib/door_slam.wav"]
    assert got["/lib/sfx/door.wav"] == pytest.approx(saturate(door), rel=1e-12)
    assert got["/lib/door_slam.wav"] == pytest.approx(saturate(door_slam), rel=1e-12)


def test_words_are_cut_and_folded_as_match_cuts_them(tmp_path: Path) -> None:
    """``tur`` counts ``Tür``; a word the tokenizer cuts in two (a New Tai Lue vowel sign is a letter to Python,
    a separator to unicode61) is the phrase MATCH makes of it: only rows holding "a b" in that order."""
    paths = ["/lib/Tür_knarrt.wav", "/lib/a_b.wav", "/lib/b_a.wav", "/lib/zz_a.wav", "/lib/yy.wav", "/lib/a_a.wav"]
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        put(cat, paths)
    assert dict(ranked(tmp_path / "ix", "tur")) == pytest.approx(dict(ranked(tmp_path / "ix", "TÜR")))
    assert [p for p, _ in ranked(tmp_path / "ix", "tur")] == ["/lib/Tür_knarrt.wav"]
    assert [p for p, _ in ranked(tmp_path / "ix", "a\u19b0b")] == ["/lib/a_b.wav"]
    assert [p for p, _ in ranked(tmp_path / "ix", "a\u19b0a")] == ["/lib/a_a.wav"]  # its one token twice: "a a"


def test_an_open_transaction_ranks_as_the_committed_rows_do(tmp_path: Path) -> None:
    paths = ["/lib/door_slam.wav", "/lib/sfx/door.wav", "/lib/car.wav", "/lib/sfx/bus.wav", "/lib/tram.wav"]
    with Catalog.open(tmp_path / "ix", create=True) as cat:
        with cat.batch():
            put(cat, paths)
            inside = keywords.ranked_files(cat, ["door", "car"], limit=10)
        assert keywords.ranked_files(cat, ["door", "car"], limit=10) == inside
        assert [fid for fid, _ in inside] == [3, 2, 1]  # car: a rarer word than door; door.wav's shorter name


def test_allowed_and_limit_keep_the_order_and_ties_go_by_file_id(tmp_path: Path) -> None:
    paths = [f"/lib/rain_{i}.wav" for i in range(6)] + ["/lib/x.wav", "/lib/y.wav", "/lib/z.wav"]
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        put(cat, paths)
        assert [fid for fid, _ in keywords.ranked_files(cat, ["rain"], limit=4)] == [1, 2, 3, 4]
        assert [fid for fid, _ in keywords.ranked_files(cat, ["rain"], limit=2, allowed={6, 2, 9})] == [2, 6]
        asked: list[list[int]] = []  # a filter asked about the best matches first, only as many as it takes

        def passes(ids: np.ndarray) -> np.ndarray:
            asked.append(ids.tolist())
            return np.isin(ids, [6, 2, 9])

        assert [fid for fid, _ in keywords.ranked_files(cat, ["rain"], limit=2, passes=passes)] == [2, 6]
        assert asked == [[1, 2, 3, 4, 5, 6]]
        assert keywords.ranked_files(cat, ["rain"], limit=0) == [] and keywords.ranked_files(cat, [], limit=5) == []


def test_sizes_of_128_tokens_and_more_are_read_as_varints(tmp_path: Path) -> None:
    long_caption = " ".join(f"word{i}" for i in range(300))
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        put(cat, ["/lib/long.wav", "/lib/short.wav"], {"/lib/long.wav": long_caption})
    assert fts5_sizes.varints(bytes([0x82, 0x2C, 0x05])) == [300, 5]
    with Catalog.open(tmp_path / "ix") as cat:
        sizes = fts5_sizes.read_sizes(cat)
    assert sizes.ids.tolist() == [1, 2] and sizes.sizes[:, 2].tolist() == [300, 0]
    assert sizes.averages[2] == 300.0 and sizes.averages[0] == 1.0


def test_remembered_sizes_follow_another_writers_commit(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        put(cat, ["/lib/a.wav", "/lib/b.wav"])
    with Catalog.open(tmp_path / "ix") as reader:
        assert fts5_sizes.column_sizes(reader).rows == 2
        assert fts5_sizes.column_sizes(reader) is fts5_sizes.column_sizes(reader)  # remembered while unchanged
        with Catalog.open(tmp_path / "ix") as writer, writer.batch():
            put(writer, ["/lib/c.wav"])
        assert fts5_sizes.column_sizes(reader).rows == 3
        ids, scores = bm25f(reader, ["c"], keywords.COLUMN_WEIGHTS)
        assert ids.tolist() == [3] and scores[0] < 0


@pytest.mark.parametrize(("deleted", "long_caption"), [((), False), ((2, 9), False), ((1, 16), True)])
def test_sizes_read_whole_equal_each_row_parsed_alone(tmp_path: Path, deleted: tuple[int, ...], long_caption: bool) -> None:
    """Both ways of reading (every size in a byte: the blobs end to end; else varints row by row), with file ids
    dense or not (files deleted), give each row's own varints."""
    captions = dict(CAPTIONS)
    if long_caption:
        captions[REAL[5]] = " ".join(f"word{i}" for i in range(200))
    with Catalog.open(tmp_path / "ix", create=True) as cat, cat.batch():
        put(cat, REAL, captions)
    with Catalog.open(tmp_path / "ix") as cat:
        cat.delete_files(list(deleted))
        sizes = fts5_sizes.read_sizes(cat)
        rows = [(i, fts5_sizes.varints(sz)) for i, sz in cat.conn.execute("SELECT id, sz FROM keywords_docsize ORDER BY id")]
    assert sizes.ids.tolist() == [i for i, _ in rows] == [i for i in range(1, len(REAL) + 1) if i not in deleted]
    assert sizes.sizes.tolist() == [v for _, v in rows]
    assert sizes.ids.dtype == np.int64 and sizes.sizes.dtype == np.int32 and sizes.sizes.flags.writeable
    held = [[v[c] for _, v in rows if v[c]] for c in range(4)]
    assert sizes.averages.tolist() == [sum(h) / len(h) if h else 0.0 for h in held]
    assert (sizes.sizes[:, 2].max() >= 128) == long_caption
