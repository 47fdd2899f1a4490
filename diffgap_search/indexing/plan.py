"""Planning an incremental run: what changed between a folder on disk and the catalog.

Pure bookkeeping, no decoding: a file whose (size, mtime) match its row is unchanged; a changed stat is
confirmed by content hash; a new path whose hash matches a row that vanished from disk is a rename (the
row moves, keeping its vectors); a new path whose hash matches a live row copies that row's vectors; only
the rest is embedded. Rows under the folder that are no longer on disk are deleted, except those at or below a
path the walk could not read (a folder without permission, a stale mount, a broken symlink): they are kept as
they are (``Plan.kept_unreadable``), neither deleted nor taken as the source of a rename.

A library moved or remounted elsewhere (``dgsearch index NEW --moved-from OLD``) is planned as if its rows had
always been under NEW: each row under OLD stands at the same relative path under NEW (``Plan.moved``: the row
moves there before anything else, keeping its id, vectors and labels), and the plan goes on as above, so a
file whose stat did not change is not even read. A row under OLD whose place under NEW already has a row of its
own (NEW indexed since, its files copied) gives way to it (``Plan.superseded``: its labels join that row's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from diffgap_search.media.discover import DiscoveredFile, display_path
from diffgap_search.media.listing import is_at_or_below
from diffgap_search.store.catalog import Catalog, FileRow

HASH_THREADS = 2  # files hashed at once while planning (hash_files)


@dataclass(frozen=True)
class ToEmbed:
    """A file to decode and embed; ``replaces`` is the row it supersedes (changed content), if any."""

    file: DiscoveredFile
    sha256: str
    replaces: FileRow | None


@dataclass(frozen=True)
class Move:
    """A row taken from under ``--moved-from``'s folder to its place under the library folder: ``key`` (a path key)
    and ``path`` (its display path)."""

    row: FileRow
    key: bytes
    path: str


@dataclass
class Plan:
    """Everything an indexing run will do, decided before any decoding."""

    unchanged: list[tuple[DiscoveredFile, FileRow]] = field(default_factory=list)
    touched: list[tuple[DiscoveredFile, FileRow]] = field(default_factory=list)
    renamed: list[tuple[DiscoveredFile, FileRow]] = field(default_factory=list)
    copied: list[tuple[DiscoveredFile, FileRow, str]] = field(default_factory=list)
    embed: list[ToEmbed] = field(default_factory=list)
    deleted: list[FileRow] = field(default_factory=list)
    kept_unreadable: list[FileRow] = field(default_factory=list)  # not on disk as far as the walk could read
    previously_failed: list[FileRow] = field(default_factory=list)
    hash_errors: list[tuple[DiscoveredFile, str]] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)  # rows from under --moved-from, to their place (done first)
    superseded: list[tuple[FileRow, FileRow]] = field(default_factory=list)  # (row from under it, the row in its place)

    @property
    def changes_catalog(self) -> bool:
        return bool(self.touched or self.renamed or self.copied or self.embed or self.deleted or self.hash_errors
                    or self.moved or self.superseded)


def _stat_holds(row: FileRow | None, f: DiscoveredFile, retry_failed: bool) -> bool:
    """``f``'s row stands as it is, unread: same size and time, and not a failure asked to be retried."""
    return (row is not None and row.size == f.size and row.mtime_ns == f.mtime_ns
            and (row.status == "ok" or not retry_failed))


def hash_files(files: Sequence[DiscoveredFile], hash_file: Callable[[DiscoveredFile], str]) -> list[str | OSError]:
    """``hash_file`` of each of ``files``, in order, on ``HASH_THREADS`` threads (hashlib and file reads release the
    GIL): each digest, or the ``OSError`` that reading its file raised. Measured on 2 cores (an AMX Xeon, the
    files in the page cache): 240 WAVs of 387 MB in 0.18 s against 0.43 s on one thread; a first run plans before
    it decodes, so on a large library this is the wait before the first window. The decode workers read files
    side by side as well; on one spinning disk two readers were not measured."""
    def one(f: DiscoveredFile) -> str | OSError:
        try:
            return hash_file(f)
        except OSError as exc:
            return exc

    if len(files) < 2:
        return [one(f) for f in files]
    with ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="dgsearch-hash") as pool:
        return list(pool.map(one, files))


def make_plan(
    found: Iterable[DiscoveredFile],
    catalog: Catalog,
    root_prefix: bytes,
    hash_file: Callable[[DiscoveredFile], str],
    *,
    retry_failed: bool = False,
    unreadable: Sequence[bytes] = (),
    moved_from: bytes | None = None,
) -> Plan:
    """Compare the discovered files with the catalog rows under ``root_prefix`` (a key ending in ``/``,
    or a single file's key). ``hash_file`` returns a sha256 hex digest or raises ``OSError``. Rows at or below
    an ``unreadable`` path key (``Listing.unreadable_keys``) that were not found go to ``kept_unreadable``.
    ``moved_from``: the key the library had before it moved (ending in ``/`` as ``root_prefix`` does, or a single
    file's key): its rows are planned at their places under ``root_prefix`` (see the module docstring)."""
    plan = Plan()
    existing = {row.path_key: row for row in catalog.files_under(root_prefix)}
    if moved_from is not None:
        _take_moved_rows(plan, existing, rows_under(catalog, moved_from), moved_from, root_prefix)
    moved_to = {id(row): key for key, row in existing.items() if key != row.path_key}
    found = list(found)
    hashes = iter(hash_files([f for f in found if not _stat_holds(existing.get(f.key), f, retry_failed)], hash_file))
    seen: set[bytes] = set()
    new_files: list[tuple[DiscoveredFile, str]] = []
    for f in found:
        key = f.key
        seen.add(key)
        row = existing.get(key)
        if row is not None and id(row) in moved_to:
            plan.moved.append(Move(row, key, display_path(f.path)))
        if row is not None and _stat_holds(row, f, retry_failed):
            if row.status == "ok":
                plan.unchanged.append((f, row))
            else:
                plan.previously_failed.append(row)
            continue
        sha = next(hashes)
        if isinstance(sha, OSError):
            plan.hash_errors.append((f, f"cannot read: {sha.strerror or sha}"))
            continue
        if row is not None:
            if row.status == "ok" and row.sha256 == sha:
                plan.touched.append((f, row))
            else:
                plan.embed.append(ToEmbed(f, sha, row))
        else:
            new_files.append((f, sha))
    vanished = {key: row for key, row in existing.items() if key not in seen}
    if unreadable:
        kept = [(key, row) for key, row in sorted(vanished.items()) if is_at_or_below(key, unreadable)]
        plan.kept_unreadable = [row for _, row in kept]
        plan.moved += [Move(row, key, display_path(key)) for key, row in kept if id(row) in moved_to]
        for key, _ in kept:
            del vanished[key]
    vanished_by_sha: dict[str, list[FileRow]] = {}
    for row in vanished.values():
        if row.status == "ok" and row.sha256:
            vanished_by_sha.setdefault(row.sha256, []).append(row)
    for f, sha in new_files:
        moved = vanished_by_sha.get(sha)
        if moved:
            row = moved.pop(0)
            del vanished[moved_to.get(id(row), row.path_key)]
            plan.renamed.append((f, row))
            continue
        twins = catalog.ok_files_by_sha(sha)
        if twins:
            plan.copied.append((f, twins[0], sha))
        else:
            plan.embed.append(ToEmbed(f, sha, None))
    plan.deleted = sorted(vanished.values(), key=lambda r: r.path_key)
    return plan


def rows_under(catalog: Catalog, prefix: bytes) -> list[FileRow]:
    """The rows under ``prefix`` (a folder's key ending in ``/``), or the one row at a single file's key."""
    if prefix.endswith(b"/"):
        return catalog.files_under(prefix)
    row = catalog.file_by_key(prefix)
    return [row] if row is not None else []


def _take_moved_rows(plan: Plan, existing: dict[bytes, FileRow], old_rows: list[FileRow], old_prefix: bytes,
                     root_prefix: bytes) -> None:
    """Put each row of ``old_rows`` (under ``old_prefix``) in ``existing`` at its place under ``root_prefix``; a
    place that holds a row already keeps it, and the old row goes to ``plan.superseded``. Rows of ``existing``
    under ``old_prefix`` (a library moved into a folder above it) are first taken out: they are among ``old_rows``."""
    for row in old_rows:
        existing.pop(row.path_key, None)
    for row in old_rows:
        key = root_prefix + row.path_key[len(old_prefix):]
        there = existing.get(key)
        if there is not None:
            plan.superseded.append((row, there))
        else:
            existing[key] = row
