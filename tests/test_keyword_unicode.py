"""Keyword search finds a name however its letters are spelled in Unicode: macOS's HFS+ wrote (and tools copying
from it keep) ``ê`` as ``e`` + U+0302 (NFD), where a user types the one character (NFC); ``ﬁ`` and full-width
letters are read as their plain letters (NFKC).

Before, Python's ``\\w`` and FTS5's tokenizer both cut ``fore`` + U+0302 + ``t`` in two: "forêt", "tür",
"brûlée" found no NFD-named file at all. Catalogs indexed before keep their old rows until the next ``dgsearch
index`` rebuilds them once.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import unicodedata
from pathlib import Path

import pytest

from cli_runner import dg

from diffgap_search.media.weak_captions import weak_captions
from diffgap_search.store.keywords import query_tokens, words

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "clips"


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def test_words_are_cut_the_same_in_any_normal_form() -> None:
    assert nfd("forêt") != "forêt" and len(nfd("forêt")) == 6
    assert words(nfd("Forêt_Pluie brûlée Tür")) == words("Forêt_Pluie brûlée Tür") == [
        "Forêt", "Pluie", "brûlée", "Tür"]
    assert words("ﬁeld ｄｏｇ") == ["field", "dog"]  # NFKC: a ligature, full-width letters
    assert query_tokens(nfd("CRÈME")) == query_tokens("crème") == ["crème"]
    assert weak_captions(nfd("/lib/Forêt_PluieFine_03.wav")) == weak_captions("/lib/Forêt_PluieFine_03.wav") == [
        "forêt pluie fine"]


@pytest.fixture
def nfd_library(tmp_path: Path) -> Path:
    """Four recordings named as a Mac names them (NFD), one as Linux does (NFC), under an NFD folder."""
    library = tmp_path / "library" / nfd("Extérieurs")
    library.mkdir(parents=True)
    for stem, clip in (("forêt pluie", "glass_rub"), ("Straßenbahn Tür", "bell"), ("crème brûlée fouet", "tabla"),
                       ("café terrasse", "piano")):
        shutil.copy(EXAMPLES / f"{clip}.ogg", library / f"{nfd(stem)}.ogg")
    shutil.copy(EXAMPLES / "crow.ogg", library / "forêt corbeau.ogg")
    return tmp_path / "library"


def _found(ix: Path, text: str) -> list[str]:
    r = dg("query", text, "--index", ix, "--mode", "keyword", "--paths")
    assert r.exit_code == 0, r.output
    return [unicodedata.normalize("NFC", Path(line).name) for line in r.stdout.splitlines()]


def test_nfd_names_and_folders_are_found_by_typed_words(nfd_library: Path, tmp_path: Path,
                                                        tiny_clap_dir: Path) -> None:
    ix = tmp_path / "ix"
    assert dg("index", nfd_library, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    assert _found(ix, "forêt") == _found(ix, "foret") == ["forêt pluie.ogg", "forêt corbeau.ogg"]
    assert _found(ix, "tür") == ["Straßenbahn Tür.ogg"]
    assert _found(ix, "brulee") == _found(ix, "crème") == ["crème brûlée fouet.ogg"]
    assert len(_found(ix, "extérieurs")) == 5  # the NFD folder's word


def test_an_older_catalog_is_rebuilt_once_by_the_next_index_run(nfd_library: Path, tmp_path: Path,
                                                                tiny_clap_dir: Path) -> None:
    """A catalog written before: its rows as the old rule cut them ("fore t pluie"), no ``keyword_words``."""
    ix = tmp_path / "ix"
    assert dg("index", nfd_library, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0
    def old_rule(text: str) -> str:  # Python's \\w stopped at each combining mark
        return " ".join(w for piece in re.split("[\u0300-\u036f]", text) for w in words(piece))

    with sqlite3.connect(ix / "catalog.sqlite") as conn:
        rows = [(old_rule(Path(path).stem), old_rule(str(Path(path).parent)), fid)
                for fid, path in conn.execute("SELECT id, path FROM files")]
        conn.executemany("UPDATE keywords SET name = ?, folders = ? WHERE rowid = ?", rows)
        conn.execute("DELETE FROM meta WHERE key = 'keyword_words'")
    assert _found(ix, "forêt") == ["forêt corbeau.ogg"]  # the NFD file's row holds "fore t pluie"
    again = dg("index", nfd_library, "--index", ix, "--model", tiny_clap_dir, "--workers", "0")
    assert again.exit_code == 0 and "nothing to embed" in again.output
    assert _found(ix, "forêt") == ["forêt pluie.ogg", "forêt corbeau.ogg"]
    with sqlite3.connect(ix / "catalog.sqlite") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'keyword_words'").fetchone() == ("2",)


def test_glob_and_folder_filters_match_nfd_names_as_typed(nfd_library: Path, tmp_path: Path,
                                                          tiny_clap_dir: Path) -> None:
    """``--glob 'forêt*'`` and ``--folder Extérieurs`` (a folder name, or the folder's path typed in NFC)."""
    ix = tmp_path / "ix"
    assert dg("index", nfd_library, "--index", ix, "--model", tiny_clap_dir, "--workers", "0").exit_code == 0

    def passing(*flags: str | Path) -> list[str]:
        r = dg("query", "--audio", EXAMPLES / "crow.ogg", "--index", ix, "-k", 10, "--paths", *flags)
        assert r.exit_code == 0, r.output
        return sorted(unicodedata.normalize("NFC", Path(line).name) for line in r.stdout.splitlines())

    assert passing("--glob", "forêt*") == ["forêt corbeau.ogg", "forêt pluie.ogg"]
    assert passing("--glob", "*/Extérieurs/*brûlée*") == ["crème brûlée fouet.ogg"]
    assert len(passing("--folder", "Extérieurs")) == 5
    assert len(passing("--folder", str(nfd_library / "Extérieurs"))) == 5
