"""Keyword search over the catalog: one SQLite FTS5 row per indexed file, ranked by BM25.

A file's row (``keywords``, rowid = file id) has four columns:

- ``name``: the words of its file name without the extension, split on ``_ - . space`` (and every other
  non-letter, non-digit character) and at camelCase and letter/digit boundaries; a part that splits is kept
  whole too, so ``DoorSlam03.wav`` gives ``DoorSlam03 Door Slam 03`` and both ``doorslam03`` and
  ``door slam`` find it;
- ``folders``: the names of the folders above it, split the same way;
- ``captions``: its captions; ``tags``: its embedded tags' values (``media/tags.py``), then the user's labels
  (``store/labels.py``).

Every text is NFKC-normalised first (:func:`normal`): a name written on macOS's HFS+ (or copied from it) spells
``ê`` as ``e`` + U+0302 (NFD), which Python's ``\\w`` and FTS5's tokenizer both cut in two (``fore`` ``t``:
"forêt" never found it); NFKC also reads ``ﬁ`` as ``fi`` and full-width ``ｄｏｇ`` as ``dog``. FTS5's
``unicode61`` tokenizer (``remove_diacritics 2``) then lower-cases and folds accents, so ``tur`` finds ``Tür``.
Catalogs whose rows were cut before that (``meta.keyword_words`` below :data:`WORDS_VERSION`) are rebuilt once
by the next ``dgsearch index`` (:func:`upgrade_words`).

User text is always words, never FTS5 syntax: it is cut into runs of letters and digits, and each run becomes a
quoted string joined by ``OR`` — quotes, ``*``, ``-``, ``NEAR``, ``AND``, ``NOT``, ``:`` and parentheses are
separators or plain words. A file matches when it holds any of the words; BM25F
(column weights :data:`COLUMN_WEIGHTS`, each column normalised by its own length: ``store/bm25f.py``) ranks
files holding more, rarer words in shorter fields first; equal scores are ordered by file id.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import numpy as np

from diffgap_search.store.bm25f import bm25f
from diffgap_search.store.label_rows import labels_by_file
from diffgap_search.store.rows import Connected
from diffgap_search.store.vectors import id_chunks

WORDS_VERSION = 2  # 2: text NFKC-normalised before it is cut (``meta.keyword_words``; absent: 1)
# name, folders, captions, tags: a word of the file name counts most, then captions and tags, then folders
COLUMN_WEIGHTS = (4.0, 1.0, 2.0, 2.0)

_PARTS = re.compile(r"[^\W_]+")  # runs of letters and digits (any script); '_' is a separator
# English function words, Lucene's EnglishAnalyzer stop set (the 33 of ENGLISH_STOP_WORDS_SET): in a query
# beside a word that says something, they only match every file whose name, folder, caption or tag happens to
# hold them ("Sing-me-a-song.mp3" came 4th for "a bell ringing" on Debian's 743 sounds)
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with",
))


def normal(text: str) -> str:
    """``text`` NFKC-normalised: what every text is before it is cut into words (module docstring)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def words(text: str) -> list[str]:
    """``text`` split into words for the index: each part of letters/digits, then its camelCase pieces
    when it has more than one (``"DOOR_WoodSlam-03"`` -> ``DOOR WoodSlam Wood Slam 03``)."""
    out: list[str] = []
    for part in _PARTS.findall(normal(text)):
        out.append(part)
        pieces = _pieces(part)
        if len(pieces) > 1:
            out.extend(pieces)
    return out


def _pieces(part: str) -> list[str]:
    """A part cut at camelCase and letter/digit boundaries, in any script with case:
    ``"HTTPServer2Go"`` -> ``HTTP Server 2 Go``; ``"Tür"`` stays whole."""
    out: list[str] = []
    current = ""
    for i, ch in enumerate(part):
        if current:
            prev = current[-1]
            after = part[i + 1] if i + 1 < len(part) else ""
            if (prev.isdigit() != ch.isdigit() or (prev.islower() and ch.isupper())
                    or (prev.isupper() and ch.isupper() and after.islower())):
                out.append(current)
                current = ""
        current += ch
    out.append(current)
    return out


def name_words(path: str) -> str:
    """The words of a path's file name, without its extension."""
    name = path.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return " ".join(words(stem))


def folder_words(path: str) -> str:
    """The words of the folder names above a path."""
    return _words_of_folders(path.rsplit("/", 1)[0] if "/" in path else "")


@lru_cache(maxsize=4096)
def _words_of_folders(folders: str) -> str:
    """``folder_words``' work, once per folder: a library's files share a few thousand folders (following a moved
    library refreshes every file's row: 10,883 files' folder words took 1.1 s, computed once per folder 0.1 s)."""
    return " ".join(words(folders))


def match_expression(text: str) -> str | None:
    """An FTS5 MATCH expression for user ``text``: every word quoted, joined by OR; None without words."""
    return expression_of(query_tokens(text))


def expression_of(tokens: Sequence[str]) -> str | None:
    """``"dog" OR "bark"``: each token quoted (FTS5 syntax in it is plain text), joined by OR; None for none."""
    if not tokens:
        return None
    return " OR ".join('"' + token.replace('"', '""') + '"' for token in tokens)


def query_tokens(text: str) -> list[str]:
    """The distinct lower-cased words of user ``text`` that a MATCH expression is built from."""
    return list(dict.fromkeys(token.lower() for token in _PARTS.findall(normal(text))))


def informative_tokens(catalog: Connected, text: str) -> list[str]:
    """The words of ``text`` that say something about this library: those held by fewer than half of the files
    with a keyword row, the words BM25 gives a positive weight (FTS5's idf ``log((N - n + 0.5) / (n + 0.5))``
    is 0 or less from half on, and FTS5 then scores the word 1e-6), and not English function words
    (:data:`STOP_WORDS`). A word in half the library or more ("a", "the", a folder every file sits in) adds
    nothing to any file's score, yet under OR it made every file holding it a match: "a bell ringing" listed
    every captioned file; a function word held by fewer files (a library where few captions start "a") made
    every file holding it a match all the same. Those words are dropped when another word of the query is
    informative; a query of function words alone keeps those under half the library ("the who"), and when no
    word is under half (a drum library asked for "drum kit"), every word is kept. One count per word, with the
    ranking's tokenizer (``tur`` counts ``Tür``)."""
    tokens = query_tokens(text)
    if len(tokens) < 2:
        return tokens
    total = catalog.conn.execute("SELECT count(*) FROM keywords_docsize").fetchone()[0]
    rare = [t for t in tokens if 2 * catalog.conn.execute(
        "SELECT count(*) FROM keywords WHERE keywords MATCH ?", (expression_of([t]),)).fetchone()[0] < total]
    return [t for t in rare if t not in STOP_WORDS] or rare or tokens


def coverage(catalog: Connected, terms: Sequence[str], file_ids: Sequence[int]) -> dict[int, float]:
    """file id -> the share of the query's ``terms`` (``informative_tokens``) its keyword row holds (0..1), for
    ``file_ids``: one MATCH per word, restricted to those files (the same tokenizer as the ranking, so ``tur``
    holds ``Tür``)."""
    ids = sorted({int(i) for i in file_ids})
    if not terms or not ids:
        return {}
    held = dict.fromkeys(ids, 0)
    for token in terms:
        expr = expression_of([token])
        for chunk in id_chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for (fid,) in catalog.conn.execute(
                    f"SELECT rowid FROM keywords WHERE keywords MATCH ? AND rowid IN ({marks})", (expr, *chunk)):
                held[int(fid)] += 1
    return {fid: n / len(terms) for fid, n in held.items()}


def refresh(catalog: Connected, file_ids: Iterable[int]) -> None:
    """Rebuild the keyword rows of ``file_ids`` from the catalog (caller's transaction): a file that is
    gone or failed loses its row."""
    conn = catalog.conn
    ids = sorted({int(i) for i in file_ids})
    for chunk in id_chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM keywords WHERE rowid IN ({marks})", chunk)
        paths = dict(conn.execute(f"SELECT id, path FROM files WHERE id IN ({marks}) AND status = 'ok'", chunk))
        if not paths:
            continue
        captions: dict[int, list[str]] = {}
        for fid, text in conn.execute(f"SELECT file_id, text FROM captions WHERE file_id IN ({marks}) ORDER BY id",
                                      chunk):
            captions.setdefault(fid, []).append(text)
        tags: dict[int, list[str]] = {}
        for fid, value in conn.execute(f"SELECT file_id, value FROM tags WHERE file_id IN ({marks}) ORDER BY id",
                                       chunk):
            tags.setdefault(fid, []).append(value)
        for fid, labels in labels_by_file(catalog, chunk).items():
            tags.setdefault(fid, []).extend(labels)
        conn.executemany(
            "INSERT INTO keywords (rowid, name, folders, captions, tags) VALUES (?, ?, ?, ?, ?)",
            [(fid, name_words(path), folder_words(path), normal("\n".join(captions.get(fid, []))),
              normal("\n".join(tags.get(fid, [])))) for fid, path in paths.items()],
        )


def ranked_files(catalog: Connected, terms: Sequence[str], *, limit: int, allowed: set[int] | None = None,
                 passes: Callable[[np.ndarray], np.ndarray] | None = None) -> list[tuple[int, float]]:
    """``[(file id, score)]`` of the files matching any of the query's ``terms`` (``informative_tokens``, counted
    once per query by the caller), best first: BM25F with :data:`COLUMN_WEIGHTS`, each column normalised by its
    own length (``store/bm25f.py``; negative, lower is a better match, as FTS5's ``bm25()``), ties by file id
    (the order files were indexed in); at most ``limit``, only ``allowed`` file ids when given, only those
    ``passes`` lets through when given (asked about the best matches first, in growing slices, until ``limit``
    pass: ``(n,) int64 -> (n,) bool``, ``search/file_filter.FileFilter.mask``). Only files indexed ok have a row
    (``refresh``; the trigger removes a deleted file's), so no join with ``files`` is needed: scoring every match
    is the cost."""
    if not terms or limit < 1:
        return []
    ids, scores = bm25f(catalog, terms, COLUMN_WEIGHTS)
    if allowed is not None:
        keep = np.isin(ids, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, scores))  # by score, then by file id
    if passes is None:
        order = order[:limit]
    else:
        kept: list[np.ndarray] = []
        start, step = 0, max(4 * limit, 256)
        while start < len(order) and sum(len(k) for k in kept) < limit:
            part = order[start : start + step]
            kept.append(part[passes(ids[part])])
            start, step = start + step, step * 4
        order = np.concatenate(kept)[:limit] if kept else order[:0]
    return [(int(ids[i]), float(scores[i])) for i in order]


def upgrade_words(catalog: Connected) -> bool:
    """Rebuild every keyword row where the catalog's rows were cut by an older rule (``meta.keyword_words``
    below :data:`WORDS_VERSION`), and record the rule (caller's transaction; the caller holds the index's writer
    lock); True when it did."""
    row = catalog.conn.execute("SELECT value FROM meta WHERE key = 'keyword_words'").fetchone()
    if row is not None and int(json.loads(row[0])) >= WORDS_VERSION:
        return False
    rebuild_all(catalog)
    catalog.conn.execute("INSERT INTO meta (key, value) VALUES ('keyword_words', ?) ON CONFLICT(key)"
                         " DO UPDATE SET value = excluded.value", (json.dumps(WORDS_VERSION),))
    return True


def rebuild_all(catalog: Connected) -> int:
    """Rebuild every keyword row (caller's transaction); returns the number of files indexed."""
    ids = [r[0] for r in catalog.conn.execute("SELECT id FROM files WHERE status = 'ok' ORDER BY id")]
    catalog.conn.execute("DELETE FROM keywords")
    refresh(catalog, ids)
    return len(ids)
