"""Writing an indexing run's results to the catalog: the plan's bookkeeping (renames, touches, copies,
deletions, captions) and the commit stage (embedded files with their windows and vectors, failed files with
their reasons), each one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diffgap_search.indexing.decode import SegmentData
from diffgap_search.indexing.embed import Vectors
from diffgap_search.indexing.plan import Plan, ToEmbed
from diffgap_search.indexing.report import IndexReport
from diffgap_search.media.captions import CaptionIndex
from diffgap_search.media.discover import DiscoveredFile, display_path
from diffgap_search.media.tags import FileTags, read_tags
from diffgap_search.store import keywords
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.labels import carry_labels
from diffgap_search.store.tags import copy_file_meta, files_without_meta, put_file_meta


@dataclass(frozen=True)
class EmbeddedFile:
    """A decoded and embedded file, ready to commit: its windows (seconds; samples and frames may be dropped)
    and each window's vectors by space (``(D,) float32``, L2-normalised)."""

    item: ToEmbed
    segments: list[SegmentData]
    vectors: list[Vectors]
    has_audio: bool
    tags: FileTags

    @property
    def duration_s(self) -> float:
        return self.segments[-1].end_s if self.segments else 0.0


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be indexed, with its content hash (None when unread) and a one-line reason."""

    file: DiscoveredFile
    sha256: str | None
    reason: str


def commit_files(catalog: Catalog, embedded: Sequence[EmbeddedFile], failed: Sequence[FailedFile],
                 captions: CaptionIndex) -> None:
    """The commit stage: every embedded file (rows, windows, vectors, captions, tags) and every failure in
    one transaction, so a kill loses at most this batch."""
    with catalog.batch():
        for done in embedded:
            _store_file(catalog, done, captions)
        for failure in failed:
            _record_failure(catalog, failure)


def apply_bookkeeping(catalog: Catalog, plan: Plan, captions: CaptionIndex, report: IndexReport) -> None:
    """Rows moved from under ``--moved-from`` (first), renames, touches, copies, deletions and caption refreshes:
    no decoding, one transaction."""
    with catalog.batch():
        # the stat stays the row's (a changed file is still re-read below); shortest keys first: a library moved up
        # into a folder above it takes each row to a shorter key, which another row to move may hold until it moves
        for move in sorted(plan.moved, key=lambda m: len(m.row.path_key)):
            catalog.move_file(move.row.id, move.key, move.path, move.row.size, move.row.mtime_ns)
        for f, row in plan.renamed:
            catalog.move_file(row.id, f.key, display_path(f.path), f.size, f.mtime_ns)
        for f, row in plan.touched:
            catalog.touch_file(row.id, f.size, f.mtime_ns)
        for f, twin, sha in plan.copied:
            new_id = catalog.put_file(
                path_key=f.key, path=display_path(f.path), kind=f.kind, size=f.size, mtime_ns=f.mtime_ns,
                sha256=sha, captions=captions.captions_for(f.path), duration_s=twin.duration_s,
                has_audio=twin.has_audio,
            )
            catalog.copy_segments(twin.id, new_id)
            copy_file_meta(catalog, twin.id, new_id)
        for old, there in plan.superseded:  # after the copies: one may have copied the old row's vectors
            carry_labels(catalog, old.path_key, there.path_key)
        catalog.delete_files([row.id for row in plan.deleted] + [old.id for old, _ in plan.superseded])
        for f, reason in plan.hash_errors:
            _record_failure(catalog, FailedFile(f, None, reason))
            report.failed.append((display_path(f.path), reason))
        stale = {row.id for _, row in plan.renamed}  # a new name: new name and folder words
        stale |= {move.row.id for move in plan.moved} | {there.id for _, there in plan.superseded}
        for f, row in plan.unchanged + plan.touched + plan.renamed:
            if catalog.set_captions(row.id, captions.captions_for(f.path)):
                stale.add(row.id)
        keywords.refresh(catalog, stale)
    _read_missing_meta(catalog, plan)
    report.unchanged = len(plan.unchanged) + len(plan.touched)
    report.renamed = len(plan.renamed)
    report.moved = len(plan.moved)
    report.superseded = len(plan.superseded)
    report.copied = len(plan.copied)
    report.deleted = len(plan.deleted)
    report.kept_unreadable = len(plan.kept_unreadable)
    report.previously_failed = len(plan.previously_failed)
    report.new = sum(1 for t in plan.embed if t.replaces is None)
    report.changed = len(plan.embed) - report.new


def _read_missing_meta(catalog: Catalog, plan: Plan) -> None:
    """Files kept as they are whose tags were never read (indexed before schema version 2) get them now:
    tags only, no decoding, committed in batches."""
    kept = {row.id: f for f, row in plan.unchanged + plan.touched + plan.renamed}
    missing = sorted(files_without_meta(catalog, kept))
    for start in range(0, len(missing), 256):
        with catalog.batch():
            for file_id in missing[start : start + 256]:
                put_file_meta(catalog, file_id, read_tags(kept[file_id].path))


def _store_file(catalog: Catalog, done: EmbeddedFile, captions: CaptionIndex) -> None:
    f = done.item.file
    rows = [SegmentInput(s.start_s, s.end_s, v) for s, v in zip(done.segments, done.vectors)]
    file_id = catalog.put_file(
        path_key=f.key, path=display_path(f.path), kind=f.kind, size=f.size, mtime_ns=f.mtime_ns,
        sha256=done.item.sha256, segments=rows, captions=captions.captions_for(f.path),
        duration_s=done.duration_s, has_audio=done.has_audio,
    )
    put_file_meta(catalog, file_id, done.tags)  # its tags, stream facts and keyword row


def _record_failure(catalog: Catalog, failure: FailedFile) -> None:
    f = failure.file
    catalog.put_file(path_key=f.key, path=display_path(f.path), kind=f.kind, size=f.size, mtime_ns=f.mtime_ns,
                     sha256=failure.sha256, error=failure.reason)
