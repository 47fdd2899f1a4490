"""BM25F over the FTS5 keyword rows: each column's term count normalised by that column's own length.

FTS5's ``bm25()`` normalises a row by its whole length, every column together, so a file whose folders or
captions are long ranked below one whose are short for the same word of its name: on Debian's 10,140
sounds, "explosion" put nine of Tux Paint's spoken descriptions (``explosion_desc_bg.ogg`` ...) above Wesnoth's
``explosion.ogg`` (five folders deeper), and "bell" put ``BellToll.wav`` and ``bell_choir01.ogg`` above
``bell.wav``. BM25F (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009,
§3.5) weighs and normalises each column apart, then saturates once:

    tf~(t, d) = sum over columns c of  w_c * tf(t, d, c) / ((1 - b) + b * len(d, c) / avglen(c))
    score(d)  = sum over terms t of  idf(t) * tf~ * (k1 + 1) / (k1 + tf~)

with avglen(c) over the rows whose column c holds text (``store/fts5_sizes.py``), FTS5's own idf
(``log((N - n + 0.5) / (n + 0.5))``, 1e-6 where that is not positive), k1 = 1.2 and b = 0.75 as FTS5 has
them. A word of a file's name scores the same however deep its folders are, and more in a short name than in
a long one. Scores are returned negated, as ``bm25()`` returns them (lower is better).

All is read from the FTS5 table itself (no extra table, no migration): per word, its count in each column of
each row from an ``fts5vocab`` table of type ``instance`` (created in the connection's ``temp`` schema), the
rows' column sizes from ``keywords_docsize``. The query's words are cut by the table's own tokenizer (an
in-memory FTS5 table with the same ``tokenize`` clause), so ``tur`` counts ``Tür`` exactly as MATCH finds it.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
from collections.abc import Sequence

import numpy as np

from diffgap_search.store.fts5_sizes import COLUMNS, column_sizes
from diffgap_search.store.rows import Connected

K1 = 1.2
B = 0.75
_TOKENIZE = re.compile(r"tokenize\s*=\s*'((?:[^']|'')*)'", re.IGNORECASE)
_TOKENIZERS: dict[str, sqlite3.Connection] = {}  # tokenize clause -> an in-memory FTS5 table cutting with it
_TOKENIZERS_LOCK = threading.Lock()
_COLUMN_INDEX = "CASE col " + " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(COLUMNS)) + " END"


def index_tokens(catalog: Connected, terms: Sequence[str]) -> list[list[str]]:
    """Each of ``terms`` cut into the tokens the ``keywords`` table stores (its own tokenizer: case and accents
    folded as it folds them), by an FTS5 table with the same ``tokenize`` clause in a private in-memory
    database (nothing is written through the catalog's connection, which must not open a transaction)."""
    sql = catalog.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'keywords'").fetchone()
    found = _TOKENIZE.search(sql[0] if sql else "")
    spec = found.group(1) if found else "unicode61"
    with _TOKENIZERS_LOCK:
        conn = _TOKENIZERS.get(spec)
        if conn is None:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.execute(f"CREATE VIRTUAL TABLE words USING fts5(q, tokenize = '{spec}')")
            conn.execute("CREATE VIRTUAL TABLE tokens USING fts5vocab(words, instance)")
            _TOKENIZERS[spec] = conn
        conn.execute("DELETE FROM words")
        conn.executemany("INSERT INTO words (rowid, q) VALUES (?, ?)", [(i + 1, t) for i, t in enumerate(terms)])
        out: list[list[str]] = [[] for _ in terms]
        for doc, token in conn.execute("SELECT doc, term FROM tokens ORDER BY doc, offset"):
            out[int(doc) - 1].append(str(token))
    return out


def token_counts(catalog: Connected, token: str) -> np.ndarray:
    """(M, 3) int64: ``(file id, column index, count)`` for each column of each keyword row holding ``token``
    (an index token), ordered by file id. One text of ``file id * 4 + column`` per occurrence comes back
    (``group_concat``: half the time of a row per occurrence) and numpy counts them."""
    conn = catalog.conn
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.dgsearch_keyword_instances"
                 " USING fts5vocab(main, keywords, instance)")
    width = len(COLUMNS)
    (text,) = conn.execute(f"SELECT group_concat(doc * {width} + {_COLUMN_INDEX}) FROM"
                           " temp.dgsearch_keyword_instances WHERE term = ?", (token,)).fetchone()
    if not text:
        return np.zeros((0, 3), np.int64)
    codes, counts = np.unique(np.array(text.split(","), dtype=np.int64), return_counts=True)
    return np.stack([codes // width, codes % width, counts], axis=1)


def _word_counts(catalog: Connected, tokens: Sequence[str]) -> np.ndarray:
    """``token_counts`` of a query word: of its one token, or, for a word the tokenizer cuts in several (MATCH
    takes it as a phrase), its rarest token's counts in the rows holding the phrase."""
    if len(tokens) == 1:
        return token_counts(catalog, tokens[0])
    counts = min((token_counts(catalog, t) for t in dict.fromkeys(tokens)), key=lambda c: len(np.unique(c[:, 0])))
    phrase = '"' + " ".join(tokens).replace('"', '""') + '"'
    held = [r for (r,) in catalog.conn.execute("SELECT rowid FROM keywords WHERE keywords MATCH ?", (phrase,))]
    return counts[np.isin(counts[:, 0], np.array(held, dtype=np.int64))]


def bm25f(catalog: Connected, terms: Sequence[str], weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(file ids, scores)``: (M,) int64 ascending and (M,) float64, the negated BM25F score (lower is better)
    of every keyword row holding any of ``terms`` (user words, ``keywords.informative_tokens``), its columns
    weighted by ``weights`` (name, folders, captions, tags)."""
    sizes = column_sizes(catalog)
    if sizes.rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    weight = np.asarray(weights, dtype=np.float64)
    ids_parts: list[np.ndarray] = []
    score_parts: list[np.ndarray] = []
    for tokens in index_tokens(catalog, terms):
        if not tokens:
            continue
        counts = _word_counts(catalog, tokens)
        if len(counts) == 0:
            continue
        docs, inverse = np.unique(counts[:, 0], return_inverse=True)
        idf = math.log((sizes.rows - len(docs) + 0.5) / (len(docs) + 0.5))
        cols = counts[:, 1]
        length = sizes.of(counts[:, 0])[np.arange(len(counts)), cols]
        average = sizes.averages[cols]
        norm = (1 - B) + B * np.divide(length, average, out=np.ones(len(counts)), where=average > 0)
        tf = np.bincount(inverse, weights=weight[cols] * counts[:, 2] / norm, minlength=len(docs))
        ids_parts.append(docs)
        score_parts.append((idf if idf > 0 else 1e-6) * tf * (K1 + 1) / (K1 + tf))
    if not ids_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    ids, inverse = np.unique(np.concatenate(ids_parts), return_inverse=True)
    return ids, -np.bincount(inverse, weights=np.concatenate(score_parts), minlength=len(ids))
