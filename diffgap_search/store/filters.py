"""The SQL of search filters: which indexed files pass (duration, sample rate, channels, kind, folder, tag,
label), and their segments."""

from __future__ import annotations

import unicodedata
from collections.abc import Generator, Iterable
from typing import Any

import numpy as np

from diffgap_search.store.catalog import Catalog
from diffgap_search.store.rows import key_range
from diffgap_search.store.vectors import id_chunks


def like_literal(text: str) -> str:
    """``text`` as a LIKE pattern matching exactly it (``%``, ``_`` and the escape ``\\`` escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_sql(
    *,
    kind: str | None = None,
    duration_min: float | None = None,
    duration_max: float | None = None,
    sample_rate: int | None = None,
    channels: int | None = None,
    folder_key: bytes | None = None,
    folder_name: str | None = None,
    tag_key: str | None = None,
    tag_text: str | None = None,
    label_folded: str | None = None,
    form: str = "all",
) -> tuple[str, list[object]]:
    """``("FROM files f ... WHERE ...", args)``: the files indexed ok that pass every given condition (``f`` is
    ``files``), for :func:`filtered_files` and :func:`filtered_file_ids`.

    ``form`` says what the statement will be asked, for the tag condition's shape: ``"all"`` every passing file
    (the matching tags listed once: one pass over ``tags``), ``"among"`` a few given ids (each file's tags looked
    up by ``tags_file``: listing every match for 500 candidates took 221 ms at 10^6 files, the lookups 5.5 ms),
    ``"first"`` the first few found (driven by the scan of ``tags``, which stops when enough files are found: 98
    ms for 20,001 files of a tag on 5 % of 10^6, against 255 ms when every match is listed first; the caller
    selects ``DISTINCT f.id``: a file holding two such tags comes twice).

    ``folder_key`` is a folder's path key ending in ``/`` (files anywhere below it); ``folder_name`` a
    single folder name (files with a folder of that exact name above them). ``tag_text``: some embedded tag's
    value contains it, ignoring the case of ASCII letters as SQLite's ``LIKE`` and ``lower()`` do (others compare
    as written; only tag ``tag_key``'s, compared so too, when given). ``label_folded``:
    the file carries that label (its folded form, ``store/labels.fold``). A file whose sample rate or
    channel count is unknown does not pass a condition on it.

    Each condition is written so SQLite can start from it: a folder is a range of the unique ``path_key`` index,
    a label a lookup of ``labels_folded``, a tag one pass over ``tags``; the files are read in table order. At
    10^6 files (2026-12-07, Zen 4 EPYC) a label took 3.8 s as a subquery per file in path order and takes 1 ms,
    a tag 11.7 s and 0.45 s (0.2 s as ``LIKE`` instead of ``instr(lower())``, the same matches), a kind 4.6 s
    and 0.6 s (``benchmarks/bench_filters.py``).
    """
    where = ["f.status = 'ok'"]
    args: list[object] = []
    if kind is not None:
        where.append("f.kind = ?")
        args.append(kind)
    if duration_min is not None:
        where.append("f.duration_s >= ?")
        args.append(float(duration_min))
    if duration_max is not None:
        where.append("f.duration_s <= ?")
        args.append(float(duration_max))
    if sample_rate is not None:
        where.append("i.sample_rate = ?")
        args.append(int(sample_rate))
    if channels is not None:
        where.append("i.channels = ?")
        args.append(int(channels))
    if folder_key is not None:  # keys starting with the folder's: from it up to its last byte plus one
        where.append("f.path_key >= ? AND f.path_key < ?")
        args.extend(key_range(folder_key))
    if folder_name is not None:  # as typed (NFC) or as macOS's HFS+ wrote it (NFD)
        forms = list(dict.fromkeys(f"/{unicodedata.normalize(nf, folder_name)}/" for nf in ("NFC", "NFD")))
        where.append("(" + " OR ".join(["instr(f.path, ?) > 0"] * len(forms)) + ")")
        args.extend(forms)
    tag_args = [f"%{like_literal(tag_text)}%", *([tag_key] if tag_key is not None else [])] if tag_text else []
    if tag_text is not None and form == "first":
        where.append("t.value LIKE ? ESCAPE '\\'" + (" AND lower(t.key) = lower(?)" if tag_key is not None else ""))
        args.extend(tag_args)
    elif tag_text is not None:
        key_sql = " AND lower(t.key) = lower(?)" if tag_key is not None else ""
        match = f"t.value LIKE ? ESCAPE '\\'{key_sql}"
        where.append(f"EXISTS (SELECT 1 FROM tags t WHERE t.file_id = f.id AND {match})" if form == "among"
                     else f"f.id IN (SELECT t.file_id FROM tags t WHERE {match})")
        args.extend(tag_args)
    if label_folded is not None:
        where.append("f.path_key IN (SELECT l.path_key FROM labels l WHERE l.folded = ?)")
        args.append(label_folded)
    join = " JOIN file_info i ON i.file_id = f.id" if sample_rate is not None or channels is not None else ""
    # CROSS JOIN: SQLite keeps tags the outer loop (it chose files: 230 ms instead of 98 at 10^6 files)
    start = "tags t CROSS JOIN files f ON f.id = t.file_id" if tag_text is not None and form == "first" else "files f"
    return f"FROM {start}{join} WHERE " + " AND ".join(where), args


def _among(body: str, args: list[object], among: Iterable[int] | None) -> tuple[str, list[object]]:
    """``body`` restricted to the file ids ``among`` (one JSON array: any number of ids in one statement, each
    looked up by rowid)."""
    if among is None:
        return body, args
    return body + " AND f.id IN (SELECT value FROM json_each(?))", [*args, "[" + ",".join(map(str, among)) + "]"]


def filtered_files(catalog: Catalog, *, among: Iterable[int] | None = None,
                   **conditions: Any) -> Generator[tuple[int, str], None, None]:
    """``(file id, display path)`` of the files indexed ok that pass every condition (:func:`filter_sql`'s
    keywords), only those of ``among`` when given, in no set order, read as they are asked for (a caller may stop
    early)."""
    body, args = _among(*filter_sql(**conditions, form="all" if among is None else "among"), among)
    for i, p in catalog.conn.execute("SELECT f.id, f.path " + body, args):
        yield int(i), p


def filtered_file_ids(catalog: Catalog, *, among: Iterable[int] | None = None, **conditions: Any) -> np.ndarray:
    """(n,) int64: the ids of the files indexed ok that pass every condition (:func:`filter_sql`'s keywords), only
    those of ``among`` when given, in no set order; read as one text (a filter passing 10^6 files: no row object,
    no path string per file). The first few found, without reading the rest: :class:`IdProbe`."""
    body, args = _among(*filter_sql(**conditions, form="all" if among is None else "among"), among)
    (text,) = catalog.conn.execute("SELECT group_concat(f.id) " + body, args).fetchone()
    return np.fromstring(text, dtype=np.int64, sep=",") if text else np.zeros(0, np.int64)


class IdProbe:
    """The ids of the files passing every condition (:func:`filter_sql`'s keywords), read only as far as asked: the
    ``first`` up to ``probe`` + 1 found at once (the statement stops there), the rest, from the same statement,
    only if :meth:`rest` is called (a filter found to keep few files is listed without reading them twice).
    :meth:`close` (or :meth:`rest`) ends the statement."""

    def __init__(self, catalog: Catalog, probe: int, **conditions: Any) -> None:
        body, args = filter_sql(**conditions, form="first")
        select = "SELECT DISTINCT f.id " if conditions.get("tag_text") is not None else "SELECT f.id "
        self._cursor: Any = catalog.conn.execute(select + body, args)
        self.first = np.array([row[0] for row in self._cursor.fetchmany(probe + 1)], dtype=np.int64)
        if len(self.first) <= probe:
            self.close()

    def rest(self) -> np.ndarray:
        """(n,) int64: every passing file's id, the first ones included, in the order found."""
        if self._cursor is None:
            return self.first
        more = np.array([row[0] for row in self._cursor.fetchall()], dtype=np.int64)
        self.close()
        return np.concatenate([self.first, more])

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None


def file_id_range(catalog: Catalog) -> tuple[int, int]:
    """``(lowest, highest)`` file id of the catalog (``(0, -1)`` when it has none): two rowid lookups (one
    statement asking both scans the table: SQLite's min/max shortcut takes a lone aggregate only; 99 ms at 10^6)."""
    (lo,) = catalog.conn.execute("SELECT min(id) FROM files").fetchone()
    (hi,) = catalog.conn.execute("SELECT max(id) FROM files").fetchone()
    return (int(lo), int(hi)) if lo is not None else (0, -1)


def segments_of_files(catalog: Catalog, file_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(segment ids (n,) int64 ascending, their file ids (n,) int64)`` of ``file_ids``."""
    ids = sorted({int(i) for i in file_ids})
    out: list[tuple[int, int]] = []
    for chunk in id_chunks(ids, 900):
        marks = ",".join("?" * len(chunk))
        out.extend(catalog.conn.execute(f"SELECT id, file_id FROM segments WHERE file_id IN ({marks})", chunk))
    out.sort()
    return (np.array([s for s, _ in out], dtype=np.int64).reshape(-1),
            np.array([f for _, f in out], dtype=np.int64).reshape(-1))


def first_segments(catalog: Catalog, file_ids: Iterable[int]) -> dict[int, tuple[int, str, str, float, bytes]]:
    """file id -> ``(first segment id, path, kind, duration_s, path_key)`` for files indexed ok that have a
    segment (``path`` the display form, ``path_key`` the exact bytes)."""
    ids = sorted({int(i) for i in file_ids})
    out: dict[int, tuple[int, str, str, float, bytes]] = {}
    for chunk in id_chunks(ids, 900):
        marks = ",".join("?" * len(chunk))
        for fid, sid, path, kind, dur, key in catalog.conn.execute(
            "SELECT f.id, (SELECT s.id FROM segments s WHERE s.file_id = f.id ORDER BY s.seq LIMIT 1), f.path,"
            f" f.kind, coalesce(f.duration_s, 0), f.path_key FROM files f WHERE f.id IN ({marks})"
            " AND f.status = 'ok'",
            chunk,
        ):
            if sid is not None:
                out[int(fid)] = (int(sid), path, kind, float(dur), bytes(key))
    return out
