"""``dgsearch forget PATH...``: take files out of the index without indexing their folder again.

An indexing run removes the files that left the folder it walks, but a folder that is gone for good (a drive
retired, a library deleted, a share that will not come back) cannot be walked: ``dgsearch index`` on it exits 3,
and its rows stayed in every search. ``forget`` names files or folders by path (they need not exist any more) and
removes every row at or below them, failed files included, with their windows, vectors, captions, tags and labels,
in one transaction; then the FAISS files are written again and published (``indexing/publishing.py``), holding
the writer lock as a run does. A path that names nothing indexed fails the whole command (exit 3) before anything
is written. A file still on disk under a library folder comes back at that folder's next run: a
``.dgsearchignore`` keeps it out for good.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffgap_search.config import FaissConfig
from diffgap_search.errors import InputNotFoundError
from diffgap_search.indexing.publishing import publish_changes
from diffgap_search.media.discover import display_path, path_key
from diffgap_search.store.catalog import Catalog, FileRow
from diffgap_search.store.filters import segments_of_files
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.vector_index import publish


@dataclass
class ForgetOutcome:
    """What ``forget`` did (or, ``dry_run``, would do): the ``paths`` of the files taken out (display paths, in
    path order), how many ``failed`` files among them, their ``windows``, how many are ``still_on_disk``, and the
    FAISS spaces written again (``spaces``)."""

    index: str
    dry_run: bool
    paths: list[str] = field(default_factory=list)
    failed: int = 0
    windows: int = 0
    still_on_disk: int = 0
    spaces: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "dry_run": self.dry_run, "files": len(self.paths), "failed": self.failed,
                "windows": self.windows, "still_on_disk": self.still_on_disk, "spaces": self.spaces,
                "paths": self.paths}


def rows_named(catalog: Catalog, index_dir: Path, targets: Sequence[str]) -> list[FileRow]:
    """Every row (indexed or failed) at or below the paths ``targets`` name (relative to the working folder or
    absolute; on disk or not), in path order, once each. InputNotFoundError naming the first few targets that
    name no row, before anything is written."""
    rows: dict[int, FileRow] = {}
    missing: list[str] = []
    for target in targets:
        key = path_key(target)
        found = catalog.files_under(key.rstrip(b"/") + b"/")
        row = catalog.file_by_key(key)
        if row is not None:
            found.append(row)
        if not found:
            missing.append(display_path(key))
        rows.update((r.id, r) for r in found)
    if missing:
        shown = "; ".join(missing[:3]) + (f"; and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise InputNotFoundError(f"not in index {index_dir}: {shown} (name files or folders that `dgsearch index`"
                                 " indexed); nothing was forgotten")
    return sorted(rows.values(), key=lambda r: r.path_key)


def forget(index_dir: Path, targets: Sequence[str], *, dry_run: bool = False, wait_s: float = 0.0,
           faiss_cfg: FaissConfig = FaissConfig(), note: Callable[[str], None] = lambda _: None) -> ForgetOutcome:
    """Take the files ``targets`` name (:func:`rows_named`) out of the index in one transaction and publish the
    FAISS files again; with ``dry_run`` only say which (no lock, nothing written). Raises IndexNotFoundError,
    InputNotFoundError, IndexBusyError (another writer, after ``wait_s`` seconds)."""
    outcome = ForgetOutcome(index=str(index_dir), dry_run=dry_run)
    # the catalog first: a missing index is IndexNotFoundError, not a lock file made in an empty folder
    with Catalog.open(index_dir) as catalog, nullcontext() if dry_run else writer_lock(index_dir, wait_s=wait_s):
        rows = rows_named(catalog, index_dir, targets)
        outcome.paths = [row.path for row in rows]
        outcome.failed = sum(1 for row in rows if row.status != "ok")
        outcome.windows = len(segments_of_files(catalog, [row.id for row in rows])[0])
        outcome.still_on_disk = sum(1 for row in rows if os.path.lexists(os.fsdecode(row.path_key)))
        if not dry_run:
            catalog.delete_files([row.id for row in rows])
            outcome.spaces = publish_changes(index_dir, catalog, faiss_cfg, publish, note)
    return outcome
