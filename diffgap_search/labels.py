"""The user's own labels (``dgsearch label``, ``dgsearch labels``): name files of an index by their paths or
folders, then label them, take a label off, or list what carries one.

A label is the user's, not the files': re-indexing never drops it, a rename keeps it, a changed file keeps it
(it stays at its path), and a file that leaves the index takes it along (``store/labels.py``). Labelling writes
the catalog without the writer lock (a few rows in one SQLite transaction, waiting for a running writer's batch
to commit as any catalog write does), so it works while ``dgsearch index --watch`` keeps the index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diffgap_search.errors import InputNotFoundError
from diffgap_search.media.discover import display_path, exact_path_field, path_key
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.labels import (
    LabelCount, add_label, clean_label, label_counts, labelled_files, remove_label, spelling,
)


@dataclass(frozen=True)
class LabelOutcome:
    """What one ``dgsearch label`` did: ``label`` as the index writes it, the ``files`` named (a folder counts
    its files), and how many of them ``changed`` (gained the label, or lost it with ``removed``)."""

    label: str
    files: int
    changed: int
    removed: bool

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "files": self.files, "changed": self.changed, "removed": self.removed}


@dataclass(frozen=True)
class LabelledFile:
    """A file carrying a label: its id, display path and exact path (``os.fsdecode`` of its key)."""

    file_id: int
    path: str
    fs_path: str

    def to_dict(self) -> dict[str, object]:
        """The JSON form: ``file_id``, ``path``, and ``path_bytes`` where ``path`` is not the exact name."""
        return {"file_id": self.file_id, "path": self.path, **exact_path_field(self.path, os.fsencode(self.fs_path))}


def resolve_targets(catalog: Catalog, index_dir: Path, targets: Sequence[str]) -> list[int]:
    """The ids of the files indexed ok that ``targets`` name, in order and once each: a file's path (relative
    to the working folder, or absolute; it need not exist on disk any more), or a folder (every file indexed
    below it). InputNotFoundError naming the first few targets that name no indexed file, before anything is
    written."""
    ids: list[int] = []
    missing: list[str] = []
    for target in targets:
        key = path_key(target)
        row = catalog.file_by_key(key)
        if row is not None:
            if row.status == "ok":
                ids.append(row.id)
            else:
                missing.append(f"{display_path(target)} (it could not be indexed: {row.error})")
            continue
        below = [r.id for r in catalog.files_under(key.rstrip(b"/") + b"/") if r.status == "ok"]
        if below:
            ids.extend(below)
        else:
            missing.append(display_path(target))
    if missing:
        shown = "; ".join(missing[:3]) + (f"; and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise InputNotFoundError(
            f"not in index {index_dir}: {shown} (name files that `dgsearch index` indexed, or their folders);"
            " nothing was labelled")
    return list(dict.fromkeys(ids))


def label(index_dir: Path, text: str, targets: Sequence[str], *, remove: bool = False) -> LabelOutcome:
    """Put the label ``text`` on the files ``targets`` name (:func:`resolve_targets`), or take it off them with
    ``remove``; one transaction. UsageError for a label that :func:`~diffgap_search.store.labels.clean_label`
    refuses."""
    name = clean_label(text)
    with Catalog.open(index_dir) as catalog:
        ids = resolve_targets(catalog, index_dir, targets)
        written = spelling(catalog, name)
        changed = remove_label(catalog, name, ids) if remove else add_label(catalog, name, ids)
    return LabelOutcome(written, len(ids), changed, remove)


def label_file_ids(index_dir: Path, text: str, file_ids: Sequence[int], *, remove: bool = False) -> LabelOutcome:
    """:func:`label` for files named by their ids (the web page's hits); InputNotFoundError naming an id that is
    not a file indexed ok, before anything is written."""
    name = clean_label(text)
    with Catalog.open(index_dir) as catalog:
        ids = list(dict.fromkeys(int(i) for i in file_ids))
        missing = [i for i in ids if (row := catalog.file_by_id(i)) is None or row.status != "ok"]
        if missing:
            raise InputNotFoundError(f"no file {', '.join(map(str, missing[:3]))} in index {index_dir}: nothing was labelled")
        written = spelling(catalog, name)
        changed = remove_label(catalog, name, ids) if remove else add_label(catalog, name, ids)
    return LabelOutcome(written, len(ids), changed, remove)


def unlabel_everywhere(index_dir: Path, text: str) -> LabelOutcome:
    """Take the label ``text`` off every file of the index; one transaction."""
    name = clean_label(text)
    with Catalog.open(index_dir) as catalog:
        written = spelling(catalog, name)
        changed = remove_label(catalog, name, None)
    return LabelOutcome(written, changed, changed, True)


def all_labels(index_dir: Path) -> list[LabelCount]:
    """Every label of the index with its count of files, most files first."""
    with Catalog.open(index_dir) as catalog:
        return label_counts(catalog)


def files_labelled(index_dir: Path, text: str) -> list[LabelledFile]:
    """The files indexed ok that carry the label ``text`` (any case), by path."""
    name = clean_label(text)
    with Catalog.open(index_dir) as catalog:
        return [LabelledFile(fid, path, os.fsdecode(key)) for fid, path, key in labelled_files(catalog, name)]
