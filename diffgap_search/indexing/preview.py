"""``dgsearch index FOLDER --dry-run``: what a run would do to the index, and nothing done.

The run's own first two stages, and only those: the walk (``.dgsearchignore`` files, hidden entries and the
index folder left out, as a run leaves them) and the plan against the catalog (``indexing/plan.py``: a file
whose size or time changed is hashed, so a rename and a copy are told from a new file, exactly as the run
will). No model is loaded, no lock is taken, nothing is written; a folder never indexed into ``index_dir``
shows every file as new.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from diffgap_search.errors import IndexNotFoundError, InputNotFoundError
from diffgap_search.indexing.moved import check_moved_away, gone_library_hint, moved_from_key, moved_library_hint
from diffgap_search.indexing.plan import Plan, ToEmbed
from diffgap_search.indexing.stages import Stages, default_stages
from diffgap_search.media.discover import display_path, path_key
from diffgap_search.store.catalog import Catalog


@dataclass
class Preview:
    """What ``dgsearch index`` would do. Paths are display paths (``display_path``), each list in path order.

    ``renamed``: ``[old, new]`` (the row moves, keeping its vectors); ``copied``: ``[new, same content as]``
    (its vectors copied); ``unreadable``: ``[path, reason]`` of what the walk could not read (rows below it
    are kept as they are); ``failed_before``: files that failed in an earlier run and would be left alone
    (``--retry-failed`` tries them again: then they are in ``changed``); ``ignored``: the recordings and
    folders a ``.dgsearchignore`` leaves out (a folder, not what it holds; a folder's path ends with ``/``);
    ``moved``: ``[old, new]`` of the rows ``--moved-from`` would follow (``superseded``: ``[old, new]`` of those
    whose new place has a row already, which stays); ``moved_hint``: the folder ``--moved-from`` would follow when
    the run would copy vectors from files no longer there (``indexing/moved.py``)."""

    root: str
    index: str
    indexed_before: bool
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    renamed: list[list[str]] = field(default_factory=list)
    copied: list[list[str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed_before: list[str] = field(default_factory=list)
    cannot_read: list[list[str]] = field(default_factory=list)
    unreadable: list[list[str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    moved_from: str | None = None
    moved: list[list[str]] = field(default_factory=list)
    superseded: list[list[str]] = field(default_factory=list)
    moved_hint: str | None = None

    @property
    def changes(self) -> bool:
        return bool(self.new or self.changed or self.renamed or self.copied or self.removed or self.moved
                    or self.superseded)

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": True, **asdict(self)}


def preview_index(root: Path, index_dir: Path, *, retry_failed: bool = False, stages: Stages | None = None,
                  moved_from: Path | None = None) -> Preview:
    """The :class:`Preview` of indexing ``root`` into ``index_dir`` (``moved_from``: the library's old place).
    Raises InputNotFoundError (no ``root``), UsageError (a bad ``moved_from``, as the run would)."""
    stages = stages or default_stages()
    root = Path(os.path.abspath(root))
    try:
        listing = stages.discover(root, index_dir)
    except InputNotFoundError as exc:  # a library folder gone: say what the index holds from it, as a run does
        raise InputNotFoundError(str(exc) + gone_library_hint(index_dir, root)) from None
    old_prefix = None if moved_from is None else moved_from_key(moved_from, root)
    preview = Preview(root=display_path(root), index=str(index_dir), indexed_before=False,
                      unreadable=[[display_path(p), reason] for p, reason in listing.unreadable],
                      ignored=[display_path(p) + ("/" if p.is_dir() else "") for p in listing.ignored])
    prefix = path_key(root) + (b"" if root.is_file() else b"/")
    try:
        catalog = Catalog.open(index_dir)
    except IndexNotFoundError:
        plan = Plan(embed=[ToEmbed(f, "", None) for f in listing.media])
    else:
        with catalog:
            if old_prefix is not None:
                check_moved_away(catalog, old_prefix)
                preview.moved_from = display_path(old_prefix.rstrip(b"/") or b"/")
            plan = stages.plan(listing.media, catalog, prefix, retry_failed, listing.unreadable_keys(),
                               moved_from=old_prefix)
            preview.indexed_before = bool(catalog.files_under(prefix)) if not root.is_file() else bool(
                catalog.file_by_key(prefix))
    preview.new = [display_path(t.file.path) for t in plan.embed if t.replaces is None]
    preview.changed = [display_path(t.file.path) for t in plan.embed if t.replaces is not None]
    preview.renamed = [[row.path, display_path(f.path)] for f, row in plan.renamed]
    preview.copied = [[display_path(f.path), twin.path] for f, twin, _sha in plan.copied]
    preview.removed = [row.path for row in plan.deleted]
    preview.unchanged = len(plan.unchanged) + len(plan.touched)
    preview.failed_before = [row.path for row in plan.previously_failed]
    preview.cannot_read = [[display_path(f.path), reason] for f, reason in plan.hash_errors]
    preview.moved = [[move.row.path, move.path] for move in plan.moved]
    preview.superseded = [[old.path, there.path] for old, there in plan.superseded]
    if old_prefix is None and plan.copied:
        preview.moved_hint = moved_library_hint(prefix, [(f.key, twin.path_key) for f, twin, _ in plan.copied])
    return preview
