"""Schema versions 2 and 3: a catalog written with version 1's SQL opens, is upgraded in one transaction (its files
become searchable by name and caption at once), keeps every row, and its next `dgsearch index` reads the
files' tags without decoding or embedding anything. A migration that fails leaves the catalog at version 1.
A version-2 catalog gains the labels table (version 3) and can be labelled at once."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from diffgap_search.config import EncoderConfig, SearchConfig, SearchMode
from diffgap_search.errors import CorruptIndexError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.schema import SCHEMA_V1, SCHEMA_V2_ADDITIONS, SCHEMA_VERSION
from fixtures_index import INLINE, CountingLoader
from fixtures_tags import needs_ffmpeg, tag_mp3, encode


def _v1_catalog(index_dir: Path, files: list[tuple[Path, str | None]]) -> None:
    """A catalog exactly as version 1 created it, holding ``files`` (path, caption) with one window each."""
    index_dir.mkdir(parents=True)
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript("BEGIN;" + SCHEMA_V1 + "INSERT INTO meta VALUES ('schema_version', '1');COMMIT;")
    for i, (path, caption) in enumerate(files, 1):
        st = path.stat() if path.exists() else None
        conn.execute(
            "INSERT INTO files (id, path_key, path, kind, size, mtime_ns, sha256, status, duration_s, indexed_at)"
            " VALUES (?, ?, ?, 'audio', ?, ?, ?, 'ok', 1.0, '2025-01-01T00:00:00+00:00')",
            (i, os.fsencode(str(path)), str(path), st.st_size if st else 1, st.st_mtime_ns if st else 1, f"{i:064x}"),
        )
        conn.execute("INSERT INTO segments (id, file_id, seq, start_s, end_s) VALUES (?, ?, 0, 0.0, 1.0)", (i, i))
        conn.execute("INSERT INTO vectors VALUES ('audio', ?, ?)", (i, np.ones(4, "<f4").tobytes()))
        if caption:
            conn.execute("INSERT INTO captions (file_id, text, source) VALUES (?, ?, 'sidecar')", (i, caption))
    conn.commit()
    conn.close()


def _tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}
    finally:
        conn.close()


def test_a_version_1_catalog_is_upgraded_in_place_and_searchable_by_words(tmp_path: Path) -> None:
    from diffgap_search.search.keyword import search_keyword

    ix = tmp_path / "ix"
    _v1_catalog(ix, [(tmp_path / "lib" / "Metal_Gate_Creak.wav", None),
                     (tmp_path / "lib" / "birds" / "dawnChorus02.flac", "songbirds at dawn")])
    assert SCHEMA_VERSION == 3
    with Catalog.open(ix) as cat:
        assert cat.get_meta("schema_version") == 3
        assert [f.path for f in cat.files()] == [str(tmp_path / "lib" / "Metal_Gate_Creak.wav"),
                                                 str(tmp_path / "lib" / "birds" / "dawnChorus02.flac")]
        assert cat.count_vectors("audio") == 2 and cat.captions_of([2]) == {2: ["songbirds at dawn"]}
        assert [h.file_id for h in search_keyword(cat, "gate", SearchConfig(mode=SearchMode.SEMANTIC)).hits] == [1]
        assert [h.file_id for h in search_keyword(cat, "chorus", SearchConfig(mode=SearchMode.SEMANTIC)).hits] == [2]
        assert [h.file_id for h in search_keyword(cat, "songbirds birds", SearchConfig(mode=SearchMode.SEMANTIC)).hits] == [2]
    assert {"file_info", "tags", "keywords", "files_keywords_delete"} <= _tables(ix / "catalog.sqlite")
    with Catalog.open(ix) as cat:  # opening again changes nothing
        assert cat.get_meta("schema_version") == 3
        cat.delete_files([1])
        assert search_keyword(cat, "gate", SearchConfig(mode=SearchMode.SEMANTIC)).hits == []  # the trigger removed its keyword row


def test_a_failed_migration_leaves_version_1_whole(tmp_path: Path) -> None:
    """A version-1 catalog that already holds a table named ``tags`` cannot be upgraded: the error names
    the cause and nothing of version 2 is left behind."""
    ix = tmp_path / "ix"
    _v1_catalog(ix, [(tmp_path / "a.wav", None)])
    conn = sqlite3.connect(ix / "catalog.sqlite")
    conn.execute("CREATE TABLE tags (x)")
    conn.commit()
    conn.close()
    with pytest.raises(CorruptIndexError, match="table tags already exists"):
        Catalog.open(ix)
    tables = _tables(ix / "catalog.sqlite")
    assert "file_info" not in tables and "keywords" not in tables
    conn = sqlite3.connect(ix / "catalog.sqlite")
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    conn.close()


@needs_ffmpeg
def test_the_next_index_run_reads_tags_of_upgraded_files_without_embedding(tmp_path: Path, tiny_clap_dir: Path) -> None:
    """Index with the tiny model, turn the catalog back into version 1 (drop what version 2 added), and index
    again: no model is loaded, no window embedded, and the tags are there."""
    from diffgap_search.indexing import index_folder
    from diffgap_search.search.keyword import search_keyword

    lib = tmp_path / "lib"
    mp3 = encode(lib / "take_01.mp3", seconds=0.5)
    tag_mp3(mp3, title="Glass shatter", comment="bottle smashed on concrete")
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8)
    ix = tmp_path / "ix"
    index_folder(lib, ix, load_encoder=CountingLoader(), encoder_cfg=cfg, indexing_cfg=INLINE)
    conn = sqlite3.connect(ix / "catalog.sqlite")
    conn.executescript("DROP TRIGGER files_keywords_delete; DROP TABLE keywords; DROP TABLE tags;"
                       " DROP TABLE file_info; DROP TABLE labels; UPDATE meta SET value = '1' WHERE key = 'schema_version';")
    conn.close()
    loader = CountingLoader()
    report = index_folder(lib, ix, load_encoder=loader, encoder_cfg=cfg, indexing_cfg=INLINE)
    assert (loader.loads, loader.windows, report.embedded_files, report.unchanged) == (0, 0, 0, 1)
    with Catalog.open(ix) as cat:
        hits = search_keyword(cat, "shatter", SearchConfig(mode=SearchMode.SEMANTIC)).hits
        assert [Path(h.path).name for h in hits] == ["take_01.mp3"]
        assert hits[0].tags == {"title": ["Glass shatter"], "comment": ["bottle smashed on concrete"]}


def test_a_version_2_catalog_gains_the_labels_table_and_keeps_its_keyword_rows(tmp_path: Path) -> None:
    from diffgap_search.search.keyword import search_keyword
    from diffgap_search.store.labels import add_label, labels_of

    ix = tmp_path / "ix"
    _v1_catalog(ix, [(tmp_path / "lib" / "Metal_Gate_Creak.wav", None), (tmp_path / "lib" / "rain.wav", "steady rain")])
    conn = sqlite3.connect(ix / "catalog.sqlite")  # version 2 exactly as it was created: version 1 + its additions
    conn.executescript("BEGIN;" + SCHEMA_V2_ADDITIONS + "UPDATE meta SET value = '2' WHERE key = 'schema_version';"
                       "INSERT INTO keywords (rowid, name, folders, captions, tags) VALUES"
                       " (1, 'Metal Gate Creak', 'lib', '', ''), (2, 'rain', 'lib', 'steady rain', '');COMMIT;")
    conn.close()
    assert "labels" not in _tables(ix / "catalog.sqlite")
    with Catalog.open(ix) as cat:
        assert cat.get_meta("schema_version") == 3
        semantic = SearchConfig(mode=SearchMode.SEMANTIC)
        assert [h.file_id for h in search_keyword(cat, "gate", semantic).hits] == [1]  # rows kept, not rebuilt
        assert add_label(cat, "Spooky", [1]) == 1
        assert labels_of(cat, [1, 2]) == {1: ["Spooky"]}
        assert [h.file_id for h in search_keyword(cat, "spooky", semantic).hits] == [1]
    assert "labels" in _tables(ix / "catalog.sqlite")
