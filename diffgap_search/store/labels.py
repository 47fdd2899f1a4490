"""The user's own labels on indexed files (``dgsearch label``, ``dgsearch labels``): the ``labels`` table.

A label is kept per path (``files.path_key``), compared by its folded form (:func:`fold`: NFKC, case-folded, so
``Favourites`` and ``FAVOURITES`` are one label) and shown as first written: adding a label whose folded form the
index already holds takes that spelling. Labels are keyword text (``store/keywords.py`` puts them in the
``tags`` column), so adding or removing one refreshes the files' keyword rows in the same transaction.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from diffgap_search.errors import UsageError
from diffgap_search.store import keywords
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.label_rows import labels_by_file
from diffgap_search.store.vectors import id_chunks


@dataclass(frozen=True)
class LabelCount:
    """One label of the index: as written, and how many files indexed ok carry it."""

    label: str
    files: int


MAX_LABEL_CHARS = 100


def _now() -> str:
    """The current UTC time, ISO 8601 to the microsecond: the order labels were put on a file (``labels_of``)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def clean_label(text: str) -> str:
    """A label as the user wrote it, its runs of white space made one space and its ends trimmed; UsageError
    when that leaves nothing, is longer than :data:`MAX_LABEL_CHARS` or holds a control character."""
    label = " ".join(text.split())
    if not label:
        raise UsageError("a label needs a name: it cannot be empty or only spaces")
    if len(label) > MAX_LABEL_CHARS:
        raise UsageError(f"a label is at most {MAX_LABEL_CHARS} characters; {label[:40]!r}... has {len(label)}")
    if any(unicodedata.category(ch) == "Cc" for ch in label):
        raise UsageError(f"a label cannot hold control characters: {label!r}")
    return label


def fold(label: str) -> str:
    """The form labels are compared in: white space as :func:`clean_label` leaves it, NFKC-normalised, then
    case-folded (``"Straße"`` -> ``"strasse"``)."""
    return unicodedata.normalize("NFKC", " ".join(label.split())).casefold()


def spelling(catalog: Catalog, label: str) -> str:
    """How the index already writes ``label`` (its folded form's first spelling), else ``label`` itself."""
    row = catalog.conn.execute("SELECT label FROM labels WHERE folded = ? ORDER BY added_at, path_key LIMIT 1",
                               (fold(label),)).fetchone()
    return str(row[0]) if row else label


def add_label(catalog: Catalog, label: str, file_ids: Sequence[int]) -> int:
    """Label the files ``file_ids`` with ``label`` (in :func:`spelling`'s form) in one transaction; returns how many
    did not carry it yet. Ids of files no longer in the index are skipped."""
    written = spelling(catalog, label)
    added = 0
    with catalog.batch():
        for chunk in id_chunks(sorted(set(file_ids)), 500):
            marks = ",".join("?" * len(chunk))
            cur = catalog.conn.execute(
                f"INSERT OR IGNORE INTO labels (path_key, folded, label, added_at) SELECT path_key, ?, ?, ?"
                f" FROM files WHERE id IN ({marks}) ORDER BY id", (fold(label), written, _now(), *chunk))
            added += max(cur.rowcount, 0)
        keywords.refresh(catalog, file_ids)
    return added


def remove_label(catalog: Catalog, label: str, file_ids: Sequence[int] | None) -> int:
    """Take ``label`` off the files ``file_ids`` (None: off every file) in one transaction; returns how many
    carried it."""
    folded = fold(label)
    with catalog.batch():
        if file_ids is None:
            ids = [int(r[0]) for r in catalog.conn.execute(
                "SELECT f.id FROM labels l JOIN files f ON f.path_key = l.path_key WHERE l.folded = ?", (folded,))]
            cur = catalog.conn.execute("DELETE FROM labels WHERE folded = ?", (folded,))
            removed = max(cur.rowcount, 0)
        else:
            ids = sorted(set(file_ids))
            removed = 0
            for chunk in id_chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                cur = catalog.conn.execute(
                    f"DELETE FROM labels WHERE folded = ? AND path_key IN (SELECT path_key FROM files WHERE id IN ({marks}))",
                    (folded, *chunk))
                removed += max(cur.rowcount, 0)
        keywords.refresh(catalog, ids)
    return removed


def carry_labels(catalog: Catalog, from_key: bytes, to_key: bytes) -> int:
    """Put the labels of the path ``from_key`` on the path ``to_key`` too (those it carries already, by folded
    form, stay as they are), with the time each was first put on; returns how many were added. The caller
    refreshes ``to_key``'s keyword row (inside its own transaction)."""
    cur = catalog.conn.execute(
        "INSERT OR IGNORE INTO labels (path_key, folded, label, added_at) SELECT ?, folded, label, added_at"
        " FROM labels WHERE path_key = ?", (to_key, from_key))
    return max(cur.rowcount, 0)


def labels_of(catalog: Catalog, file_ids: Iterable[int]) -> dict[int, list[str]]:
    """file id -> its labels, in the order they were added (files without labels are absent)."""
    return labels_by_file(catalog, file_ids)


def label_counts(catalog: Catalog) -> list[LabelCount]:
    """Every label carried by a file indexed ok, with its count of files, most files first (then by label)."""
    rows = catalog.conn.execute(
        "SELECT min(l.label), count(*) AS n FROM labels l JOIN files f ON f.path_key = l.path_key"
        " WHERE f.status = 'ok' GROUP BY l.folded ORDER BY n DESC, l.folded")
    return [LabelCount(str(label), int(n)) for label, n in rows]


def first_labels(catalog: Catalog) -> dict[int, str]:
    """File id -> its first label (the one put on first), for files indexed ok that carry one."""
    rows = catalog.conn.execute("SELECT f.id, l.label FROM labels l JOIN files f ON f.path_key = l.path_key"
                                " WHERE f.status = 'ok' ORDER BY l.added_at DESC, l.folded DESC")
    return {int(f): str(v) for f, v in rows}  # the first label is written last, and stays


def labelled_files(catalog: Catalog, label: str) -> list[tuple[int, str, bytes]]:
    """``[(file id, display path, path key)]`` of the files indexed ok that carry ``label``, by path."""
    return [(int(i), str(p), bytes(k)) for i, p, k in catalog.conn.execute(
        "SELECT f.id, f.path, f.path_key FROM labels l JOIN files f ON f.path_key = l.path_key"
        " WHERE l.folded = ? AND f.status = 'ok' ORDER BY f.path_key", (fold(label),))]
