"""The files a search's filters let through when they are too many to list: asked about, not listed.

A filter that keeps few files is best listed once (``search/filters.allowed_file_ids`` returns their ids, and a
ranking scores exactly their windows); one that keeps most of a large library is not. At 10^6 files, listing the
files of ``--kind audio`` or ``--glob '*.wav'`` took 190-1,330 ms of SQL and a set of up to 10^6 ints, for a search
that then looks at a few hundred candidates (7 ms unfiltered). :class:`FileFilter` answers for the candidates a
ranking brings instead, in one statement per batch, and remembers the answers: the FAISS ranking asks about its
candidates' files round by round, a keyword ranking about its best matches slice by slice (``store/keywords.
ranked_files``).

``Allowed`` is what every ranking takes: None (every file passes), a set of ids (listed), or a FileFilter.
"""

from __future__ import annotations

import fnmatch
import unicodedata
from collections.abc import Iterable
from typing import Any, Union

import numpy as np

from diffgap_search.store.catalog import Catalog
from diffgap_search.store.filters import filtered_file_ids, filtered_files


def glob_match(path: str, pattern: str) -> bool:
    """``pattern`` against the whole path, or against the file name when it has no ``/``; both NFC-normalised (a
    name written on macOS's HFS+ spells ``ê`` as ``e`` + U+0302, a typed pattern as one character)."""
    if not path.isascii():
        path = unicodedata.normalize("NFC", path)
    if not pattern.isascii():
        pattern = unicodedata.normalize("NFC", pattern)
    if "/" in pattern:
        return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, "*/" + pattern.lstrip("/"))
    return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


# Ids asked about in all past which every passing file is listed once instead: asking costs 2-11 us an id at 10^6
# files, listing a broad filter's files 170-230 ms, so a filter none of the best candidates pass (a query's words
# matching no file of the folder it is filtered to) costs at most ~45 ms more than listing (bench_filters.py).
ASK_AT_MOST = 4_096


class FileFilter:
    """The filter ``conditions`` (``store/filters.filter_sql``'s keywords) and, when not None, the ``glob`` a
    path must match (:func:`glob_match`), asked about file ids."""

    def __init__(self, catalog: Catalog, conditions: dict[str, Any], glob: str | None) -> None:
        self._catalog = catalog
        self._conditions = conditions
        self._glob = glob
        self._known: dict[int, bool] = {}
        self._asked = 0  # ids asked about so far
        self._all: np.ndarray | None = None  # every passing id, sorted: once ASK_AT_MOST have been asked

    def allows(self, file_ids: Iterable[int]) -> set[int]:
        """Those of ``file_ids`` that pass (one SQL statement for those not asked about before; every passing
        file listed once when more than :data:`ASK_AT_MOST` would have been asked in all)."""
        ids = {int(i) for i in file_ids}
        ask = [i for i in ids if i not in self._known] if self._all is None else []
        if self._asked + len(ask) > ASK_AT_MOST:
            self._list_all()
        if self._all is not None:
            asked = np.fromiter(ids, np.int64, len(ids))
            return set(asked[np.isin(asked, self._all, assume_unique=True)].tolist())
        if ask:
            self._asked += len(ask)
            passing = self._passing(sorted(ask))
            self._known.update((i, i in passing) for i in ask)
        return {i for i in ids if self._known[i]}

    def mask(self, file_ids: np.ndarray) -> np.ndarray:
        """``(n,) bool``: which of ``file_ids (n,) int64`` pass (a keyword ranking's best matches, slice by slice)."""
        passing = self.allows(file_ids.tolist())
        return np.fromiter((int(i) in passing for i in file_ids.tolist()), dtype=bool, count=len(file_ids))

    def _list_all(self) -> None:
        """Every passing file's id, sorted, into ``_all`` (one statement, read as one text without a glob)."""
        if self._glob is None:
            self._all = np.sort(filtered_file_ids(self._catalog, **self._conditions))
        else:
            self._all = np.array(sorted(self._passing(None)), dtype=np.int64)

    def _passing(self, ids: list[int] | None) -> set[int]:
        """Those of ``ids`` that pass (None: every file)."""
        if self._glob is None:
            return set(filtered_file_ids(self._catalog, among=ids, **self._conditions).tolist())
        return {i for i, p in filtered_files(self._catalog, among=ids, **self._conditions)
                if glob_match(p, self._glob)}


Allowed = Union[set[int], FileFilter, None]


def allowed_among(allowed: Allowed, file_ids: Iterable[int]) -> set[int]:
    """Those of ``file_ids`` that ``allowed`` lets through (all of them for None)."""
    ids = {int(i) for i in file_ids}
    if allowed is None:
        return ids
    if isinstance(allowed, FileFilter):
        return allowed.allows(ids)
    return ids & allowed
