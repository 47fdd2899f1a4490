"""The SQLite catalog: schema, files/segments/vectors round trips, renames, cascades, versions."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffgap_search.errors import CorruptIndexError, IncompatibleIndexError, IndexNotFoundError
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.schema import SCHEMA_VERSION


def unit(rng: np.random.Generator, d: int = 8) -> np.ndarray:
    v = rng.standard_normal(d).astype(np.float32)
    return v / np.linalg.norm(v)


def put(cat: Catalog, name: str, n_seg: int, rng: np.random.Generator, sha: str = "x") -> int:
    segs = [SegmentInput(i * 10.0, i * 10.0 + 10.0, {"audio": unit(rng)}) for i in range(n_seg)]
    return cat.put_file(path_key=f"/c/{name}".encode(), path=f"/c/{name}", kind="audio", size=1, mtime_ns=1,
                        sha256=sha, segments=segs, captions=[f"cap {name}"], duration_s=10.0 * n_seg)


def test_missing_index_is_refused_with_hint(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match=r"^no index at .*nope: run `dgsearch index FOLDER --index"):
        Catalog.open(tmp_path / "nope")


def test_roundtrip_vectors_and_hits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with Catalog.open(tmp_path, create=True) as cat:
        a = put(cat, "a.wav", 2, rng)
        b = put(cat, "b.wav", 3, rng)
        ids, vecs = next(cat.read_vectors("audio", dim=8))
        assert ids.tolist() == [1, 2, 3, 4, 5]
        assert vecs.shape == (5, 8) and vecs.dtype == np.float32
        hits = cat.hit_rows([2, 3, 99])
        assert sorted(hits) == [2, 3]
        assert (hits[2].file_id, hits[2].start_s, hits[2].end_s) == (a, 10.0, 20.0)
        assert (hits[3].file_id, hits[3].path) == (b, "/c/b.wav")
        assert cat.captions_of([a, b]) == {a: ["cap a.wav"], b: ["cap b.wav"]}
        assert cat.stats()["segments"] == 5


def test_replacing_a_file_never_reuses_segment_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with Catalog.open(tmp_path, create=True) as cat:
        put(cat, "a.wav", 2, rng)
        put(cat, "a.wav", 2, rng)  # changed content: old segments 1, 2 go, new ones are 3, 4
        assert cat.live_ids("audio").tolist() == [3, 4]
        cat.delete_files([cat.file_by_key(b"/c/a.wav").id])  # type: ignore[union-attr]
        assert cat.live_ids("audio").tolist() == []
        assert cat.conn.execute("SELECT count(*) FROM captions").fetchone()[0] == 0
        put(cat, "b.wav", 1, rng)
        assert cat.live_ids("audio").tolist() == [5]


def test_move_keeps_vectors_and_copy_duplicates_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with Catalog.open(tmp_path, create=True) as cat:
        fid = put(cat, "a.wav", 2, rng, sha="abc")
        before = next(cat.read_vectors("audio"))[1].copy()
        cat.move_file(fid, b"/c/moved.wav", "/c/moved.wav", 1, 2)
        row = cat.file_by_key(b"/c/moved.wav")
        assert row is not None and row.id == fid and cat.file_by_key(b"/c/a.wav") is None
        dup = cat.put_file(path_key=b"/c/dup.wav", path="/c/dup.wav", kind="audio", size=1, mtime_ns=1, sha256="abc")
        cat.copy_segments(fid, dup)
        ids, vecs = next(cat.read_vectors("audio"))
        assert ids.tolist() == [1, 2, 3, 4]
        np.testing.assert_array_equal(vecs[:2], before)
        np.testing.assert_array_equal(vecs[2:], before)
        assert [f.path for f in cat.ok_files_by_sha("abc")] == ["/c/moved.wav", "/c/dup.wav"]


def test_files_under_matches_prefix_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with Catalog.open(tmp_path, create=True) as cat:
        for name in ["x/1.wav", "x/sub/2.wav", "xy/3.wav"]:
            put(cat, name, 1, rng)
        assert [f.path for f in cat.files_under(b"/c/x/")] == ["/c/x/1.wav", "/c/x/sub/2.wav"]


def test_error_files_are_recorded(tmp_path: Path) -> None:
    with Catalog.open(tmp_path, create=True) as cat:
        cat.put_file(path_key=b"/c/bad.wav", path="/c/bad.wav", kind="audio", size=3, mtime_ns=1, sha256=None,
                     error="not an audio file")
        assert [(f.path, f.status, f.error) for f in cat.files(status="error")] == [
            ("/c/bad.wav", "error", "not an audio file")
        ]
        assert cat.stats()["failed_files"] == 1 and cat.stats()["files"] == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Catalog.open(tmp_path, create=True).close()
    conn = sqlite3.connect(tmp_path / "catalog.sqlite")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(IncompatibleIndexError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        Catalog.open(tmp_path)


def test_garbage_catalog_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "catalog.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptIndexError, match="cannot be read as a catalog"):
        Catalog.open(tmp_path)


def test_meta_roundtrip(tmp_path: Path) -> None:
    with Catalog.open(tmp_path, create=True) as cat:
        cat.set_meta({"encoder": {"model": "m", "dim": 8}})
        assert cat.get_meta("encoder") == {"model": "m", "dim": 8}
        assert cat.get_meta("absent", 5) == 5


def test_a_new_catalog_keeps_a_512_float_vector_in_its_row_and_an_old_one_keeps_its_pages(tmp_path: Path) -> None:
    """16 KB pages: a D = 512 vector (2 048 bytes) is stored inline, ≈ 2.3 KB per window on disk (4.7 KB with
    SQLite's default 4 KB pages, where every vector spilled into an overflow page of its own). A catalog
    made with 4 KB pages opens and is written as before."""
    rng = np.random.default_rng(3)
    with Catalog.open(tmp_path / "new", create=True) as cat:
        with cat.batch():
            for f in range(40):
                cat.put_file(path_key=f"/c/{f}".encode(), path=f"/c/{f}", kind="audio", size=1, mtime_ns=1,
                             sha256=str(f), segments=[SegmentInput(s * 10.0, s * 10.0 + 10.0, {"audio": unit(rng, 512)})
                                                      for s in range(50)])
        page = cat.conn.execute("PRAGMA page_size").fetchone()[0]
        overflow = cat.conn.execute("SELECT count(*) FROM dbstat WHERE name = 'vectors' AND pagetype = 'overflow'"
                                    ).fetchone()[0]
        table = cat.conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = 'vectors'").fetchone()[0]
    assert (page, overflow) == (16_384, 0)
    assert 2048 < table / 2000 < 2400
    import diffgap_search.store.catalog as catalog_module

    with pytest.MonkeyPatch.context() as mp:  # made as releases before 16 KB pages made it
        mp.setattr(catalog_module, "PAGE_SIZE", 4096)
        with Catalog.open(tmp_path / "old", create=True) as cat:
            put(cat, "a.wav", 2, rng)
    with Catalog.open(tmp_path / "old") as cat:
        put(cat, "b.wav", 1, rng)
        assert cat.conn.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert next(cat.read_vectors("audio", dim=8))[0].tolist() == [1, 2, 3]


def test_a_writer_imports_sqlite_utils_without_pandas(tmp_path: Path) -> None:
    """sqlite-utils would import pandas (0.45 s) only to map pandas values, which the catalog never writes: a
    writing process imports neither, and ``import pandas`` still works after it (a fresh interpreter)."""
    code = ("import sys\nfrom pathlib import Path\nfrom diffgap_search.store.catalog import Catalog\n"
            f"with Catalog.open(Path({str(tmp_path)!r}), create=True) as cat:\n"
            "    with cat.batch():\n        cat.set_meta({'probe': {'ok': 1}})\n"
            "print('sqlite_utils' in sys.modules, 'pandas' in sys.modules)\n"
            "import importlib, importlib.util\nprint(importlib.util.find_spec('pandas') is None or"
            " bool(importlib.import_module('pandas').__version__))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True"]
