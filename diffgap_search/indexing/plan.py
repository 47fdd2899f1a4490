"""Planning an incremental run: what changed between a folder on disk and the catalog.

Pure bookkeeping, no decoding: a file whose (size, mtime) match its row is unchanged; a changed stat is
confirmed by content hash; a new path whose hash matches a row that vanished from disk is a rename (the
row moves, keeping its vectors); a new path whose hash matches a live row copies that row's vectors; only
the rest is embedded. Rows under the folder that are no longer on disk are deleted, except those at or below a
path the walk could not read (a folder without permission, a stale mount, a broken symlink): they are kept as
they are (``Plan.kept_unreadable``), neither deleted nor taken as the source of a rename.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from diffgap_search.media.discover import DiscoveredFile
from diffgap_search.media.listing import is_at_or_below
from diffgap_search.store.catalog import Catalog, FileRow


@dataclass(frozen=True)
class ToEmbed:
    """A file to decode and embed; ``replaces`` is the row it supersedes (changed content), if any."""

    file: DiscoveredFile
    sha256: str
    replaces: FileRow | None


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

    @property
    def changes_catalog(self) -> bool:
        return bool(self.touched or self.renamed or self.copied or self.embed or self.deleted or self.hash_errors)


def make_plan(
    found: Iterable[DiscoveredFile],
    catalog: Catalog,
    root_prefix: bytes,
    hash_file: Callable[[DiscoveredFile], str],
    *,
    retry_failed: bool = False,
    unreadable: Sequence[bytes] = (),
) -> Plan:
    """Compare the discovered files with the catalog rows under ``root_prefix`` (a key ending in ``/``,
    or a single file's key). ``hash_file`` returns a sha256 hex digest or raises ``OSError``. Rows at or below
    an ``unreadable`` path key (``Listing.unreadable_keys``) that were not found go to ``kept_unreadable``."""
    plan = Plan()
    existing = {row.path_key: row for row in catalog.files_under(root_prefix)}
    seen: set[bytes] = set()
    new_files: list[tuple[DiscoveredFile, str]] = []
    for f in found:
        key = f.key
        seen.add(key)
        row = existing.get(key)
        same_stat = row is not None and row.size == f.size and row.mtime_ns == f.mtime_ns
        if row is not None and same_stat and (row.status == "ok" or not retry_failed):
            if row.status == "ok":
                plan.unchanged.append((f, row))
            else:
                plan.previously_failed.append(row)
            continue
        try:
            sha = hash_file(f)
        except OSError as exc:
            plan.hash_errors.append((f, f"cannot read: {exc.strerror or exc}"))
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
        plan.kept_unreadable = [row for key, row in sorted(vanished.items()) if is_at_or_below(key, unreadable)]
        for row in plan.kept_unreadable:
            del vanished[row.path_key]
    vanished_by_sha: dict[str, list[FileRow]] = {}
    for row in vanished.values():
        if row.status == "ok" and row.sha256:
            vanished_by_sha.setdefault(row.sha256, []).append(row)
    for f, sha in new_files:
        moved = vanished_by_sha.get(sha)
        if moved:
            row = moved.pop(0)
            del vanished[row.path_key]
            plan.renamed.append((f, row))
            continue
        twins = catalog.ok_files_by_sha(sha)
        if twins:
            plan.copied.append((f, twins[0], sha))
        else:
            plan.embed.append(ToEmbed(f, sha, None))
    plan.deleted = sorted(vanished.values(), key=lambda r: r.path_key)
    return plan
