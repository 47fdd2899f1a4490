"""``index_folder``: discover -> plan -> decode (workers) -> encode (batched) -> store -> publish FAISS.

Every batch of files (their rows, windows and vectors) is committed in one transaction, so a kill loses at
most the batch in flight and the next run resumes where this one stopped. FAISS files are published at the
end (and repaired at the start of a run after a crash, since the catalog is the truth).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from diffgap_search.config import EncoderConfig, FaissConfig, IndexingConfig, VideoConfig, WindowConfig
from diffgap_search.errors import MediaDecodeError, NothingIndexedError
from diffgap_search.indexing.decode import (
    Decoded,
    SegmentData,
    decode_task,
    decode_timeout_s,
    lost_decode,
    stream_segments,
)
from diffgap_search.indexing.encoders import EncoderLoader, RunEncoders, VideoEncoderLoader
from diffgap_search.indexing.memory import release_free_memory
from diffgap_search.indexing.plan import Plan, ToEmbed, make_plan
from diffgap_search.indexing.pool import ordered_map
from diffgap_search.indexing.prefetch import Prefetched
from diffgap_search.indexing.report import IndexProgress, IndexReport, NoProgress
from diffgap_search.media.captions import CaptionIndex
from diffgap_search.media.discover import DiscoveredFile, discover, display_path, path_key
from diffgap_search.media.hashing import sha256_file
from diffgap_search.media.tags import FileTags, read_tags
from diffgap_search.store import keywords
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.tags import copy_file_meta, files_without_meta, put_file_meta
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.settings import check_window
from diffgap_search.store.vector_index import Published, publish, sweep_unpublished

MAX_WINDOWS_PER_TASK = 32  # ~60 MB of 10 s windows at 48 kHz; longer files are streamed


@dataclass
class _Pending:
    """Decoded files waiting for one batched encoder call and one transaction."""

    items: list[tuple[ToEmbed, Decoded]] = field(default_factory=list)
    failures: list[tuple[ToEmbed, str]] = field(default_factory=list)

    @property
    def windows(self) -> int:
        return sum(len(d.segments) for _, d in self.items)


def index_folder(
    root: Path,
    index_dir: Path,
    *,
    load_encoder: EncoderLoader,
    encoder_cfg: EncoderConfig,
    load_video_encoder: VideoEncoderLoader | None = None,
    video_cfg: VideoConfig = VideoConfig(),
    window_cfg: WindowConfig = WindowConfig(),
    faiss_cfg: FaissConfig = FaissConfig(),
    indexing_cfg: IndexingConfig = IndexingConfig(),
    progress: IndexProgress | None = None,
    retry_failed: bool = False,
    wait_s: float = 0.0,
) -> IndexReport:
    """Index (or update the index of) every audio/video file under ``root`` into ``index_dir``.

    Raises InputNotFoundError (no ``root``), IndexBusyError (another writer), IncompatibleIndexError
    (other window settings or model weights), NothingIndexedError (files found, none indexable, with the
    report attached as ``.report``).
    """
    progress = progress or NoProgress()
    started = time.perf_counter()
    root = Path(os.path.abspath(root))
    found = list(discover(root, exclude=[index_dir]))  # raises InputNotFoundError first
    report = IndexReport(root=display_path(root), index=str(index_dir), found=len(found))
    with writer_lock(index_dir, wait_s=wait_s), Catalog.open(index_dir, create=True) as catalog:
        window_cfg = check_window(catalog, window_cfg, str(index_dir)) or window_cfg  # bound with the encoder
        captions = CaptionIndex.build(root, exclude=[index_dir])
        prefix = path_key(root) + (b"" if root.is_file() else b"/")
        plan = make_plan(found, catalog, prefix, lambda f: sha256_file(f.path), retry_failed=retry_failed)
        _apply_bookkeeping(catalog, plan, captions, report)
        encoders = RunEncoders(load_encoder, encoder_cfg, load_video_encoder, video_cfg, catalog, str(index_dir),
                             window_cfg)
        if plan.embed:
            encoders.load_for({t.file.kind for t in plan.embed})  # fail fast, before any decoding
            progress.start(len(plan.embed))
            try:
                _embed_all(catalog, plan.embed, encoders, captions, encoders.window, indexing_cfg, progress, report)
            finally:
                progress.stop()
        if encoders.is_cavp:  # CAVP vectors the index's windows lack (an index switched to --video-model cavp)
            from diffgap_search.indexing.cavp_run import fill_cavp_gaps

            report.windows_embedded += fill_cavp_gaps(
                catalog, encoders.video, encoders.bridge, encoders.window, encoders.video_cfg, encoders.batch_size,
                progress.note, workers=indexing_cfg.decode_workers, deadline_s=decode_timeout_s())
        for space in _stale_spaces(catalog):
            dim = encoders.dim_of(space)
            if dim is not None:
                progress.note(f"writing the {space} index")
                publish(index_dir, catalog, space, dim, faiss_cfg)
        sweep_unpublished(index_dir, catalog)  # files left by a writer killed while publishing
        total_ok = catalog.stats()["files"]
    report.elapsed_s = time.perf_counter() - started
    if total_ok == 0:
        if report.found == 0:
            err = NothingIndexedError(f"no audio or video files found under {display_path(root)}")
        else:
            err = NothingIndexedError(
                f"none of the {report.found} files under {display_path(root)} could be indexed:"
                " see `dgsearch info --errors`"
            )
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report


def _apply_bookkeeping(catalog: Catalog, plan: Plan, captions: CaptionIndex, report: IndexReport) -> None:
    """Renames, touches, copies, deletions and caption refreshes: no decoding, one transaction."""
    with catalog.batch():
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
        catalog.delete_files([row.id for row in plan.deleted])
        for f, reason in plan.hash_errors:
            _record_failure(catalog, f, None, reason, report)
        stale = {row.id for _, row in plan.renamed}  # a new name: new name and folder words
        for f, row in plan.unchanged + plan.touched + plan.renamed:
            if catalog.set_captions(row.id, captions.captions_for(f.path)):
                stale.add(row.id)
        keywords.refresh(catalog, stale)
    _read_missing_meta(catalog, plan)
    report.unchanged = len(plan.unchanged) + len(plan.touched)
    report.renamed = len(plan.renamed)
    report.copied = len(plan.copied)
    report.deleted = len(plan.deleted)
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


def _embed_all(
    catalog: Catalog,
    todo: list[ToEmbed],
    encoders: RunEncoders,
    captions: CaptionIndex,
    cfg: WindowConfig,
    icfg: IndexingConfig,
    progress: IndexProgress,
    report: IndexReport,
) -> None:
    """Decode ``todo`` in worker processes (in order; a worker that crashes or hangs fails its file only,
    see ``indexing/pool.py``), embed and commit batch by batch. Decoded files are pulled by a thread while
    the encoder runs, up to two batches of windows ahead (``indexing/prefetch.py``); closing it (however
    the run ends) stops the workers: none outlives the run."""
    tasks = ((t.file.path, t.file.kind, cfg, encoders.video_cfg, MAX_WINDOWS_PER_TASK) for t in todo)
    workers, deadline_s = min(icfg.decode_workers, len(todo)), decode_timeout_s()
    pending = _Pending()

    def decode_all(cancel: Connection) -> Iterator[Decoded]:
        return ordered_map(decode_task, tasks, workers, on_lost=lost_decode, deadline_s=deadline_s, cancel=cancel)

    with Prefetched(decode_all, cost=lambda d: max(1, len(d.segments)), budget=2 * encoders.batch_size) as decoded:
        for item, result in zip(todo, decoded):
            if result.too_long:
                _flush(catalog, pending, encoders, captions, progress, report)
                _index_long_file(catalog, item, encoders, captions, cfg, progress, report, workers, deadline_s)
                continue
            if result.error is not None:
                pending.failures.append((item, result.error))
            else:
                pending.items.append((item, result))
            if pending.windows >= encoders.batch_size or len(pending.items) + len(pending.failures) >= icfg.files_per_batch:
                _flush(catalog, pending, encoders, captions, progress, report)
    _flush(catalog, pending, encoders, captions, progress, report)


def _flush(
    catalog: Catalog,
    pending: _Pending,
    encoders: RunEncoders,
    captions: CaptionIndex,
    progress: IndexProgress,
    report: IndexReport,
) -> None:
    """Embed the pending files' windows in one call per modality and commit them (and the failures) in
    one transaction."""
    if not pending.items and not pending.failures:
        return
    segments = [seg for _, dec in pending.items for seg in dec.segments]
    vectors = encoders.embed(segments)
    with catalog.batch():
        offset = 0
        for item, dec in pending.items:
            n = len(dec.segments)
            _store_file(catalog, item, dec.segments, vectors[offset : offset + n], dec.has_audio, captions, dec.tags)
            offset += n
            report.windows_embedded += n
            report.audio_seconds += dec.duration_s
        for item, reason in pending.failures:
            _record_failure(catalog, item.file, item.sha256, reason, report)
    report.embedded_files += len(pending.items)
    progress.advance(len(pending.items) + len(pending.failures), offset)
    pending.items.clear()
    pending.failures.clear()
    release_free_memory()  # flat memory however many files (see indexing/memory.py)


def _index_long_file(
    catalog: Catalog,
    item: ToEmbed,
    encoders: RunEncoders,
    captions: CaptionIndex,
    cfg: WindowConfig,
    progress: IndexProgress,
    report: IndexReport,
    workers: int,
    deadline_s: float | None,
) -> None:
    """Stream a long file's windows (decoded in a worker of its own unless ``workers`` is 0) through the
    encoders batch by batch (bounded memory: only vectors accumulate), then commit the file in one
    transaction."""
    segments: list[SegmentData] = []
    vectors: list[dict[str, np.ndarray]] = []
    args = (item.file.path, item.file.kind, cfg, encoders.video_cfg, MAX_WINDOWS_PER_TASK)
    try:
        has_audio, tags, stream = stream_segments(args, workers, deadline_s)
        with closing(stream):  # type: ignore[type-var]
            batch: list[SegmentData] = []
            for seg in stream:
                batch.append(seg)
                if len(batch) == encoders.batch_size:
                    vectors.extend(encoders.embed(batch))
                    segments.extend(_drop_media(batch))
                    batch = []
                    release_free_memory()  # as after every batch of short files
            vectors.extend(encoders.embed(batch))
            segments.extend(_drop_media(batch))
    except MediaDecodeError as exc:
        with catalog.batch():
            _record_failure(catalog, item.file, item.sha256, getattr(exc, "reason", None) or str(exc), report)
        progress.advance(1, 0)
        return
    with catalog.batch():
        _store_file(catalog, item, segments, vectors, has_audio, captions, tags)
    report.windows_embedded += len(segments)
    report.audio_seconds += segments[-1].end_s if segments else 0.0
    report.embedded_files += 1
    progress.advance(1, len(segments))


def _drop_media(batch: list[SegmentData]) -> list[SegmentData]:
    """The segments' seconds only (their samples and frames are no longer needed)."""
    return [SegmentData(s.start_s, s.end_s, None, None) for s in batch]


def _store_file(
    catalog: Catalog,
    item: ToEmbed,
    segments: list[SegmentData],
    vectors: list[dict[str, np.ndarray]],
    has_audio: bool,
    captions: CaptionIndex,
    tags: FileTags,
) -> None:
    f = item.file
    rows = [SegmentInput(s.start_s, s.end_s, v) for s, v in zip(segments, vectors)]
    file_id = catalog.put_file(
        path_key=f.key, path=display_path(f.path), kind=f.kind, size=f.size, mtime_ns=f.mtime_ns,
        sha256=item.sha256, segments=rows, captions=captions.captions_for(f.path),
        duration_s=segments[-1].end_s if segments else 0.0, has_audio=has_audio,
    )
    put_file_meta(catalog, file_id, tags)  # its tags, stream facts and keyword row


def _record_failure(
    catalog: Catalog, f: DiscoveredFile, sha: str | None, reason: str, report: IndexReport
) -> None:
    catalog.put_file(path_key=f.key, path=display_path(f.path), kind=f.kind, size=f.size, mtime_ns=f.mtime_ns,
                     sha256=sha, error=reason)
    report.failed.append((display_path(f.path), reason))


def _stale_spaces(catalog: Catalog) -> list[str]:
    """Spaces whose published FAISS file does not match the catalog (count or highest id)."""
    stale = []
    for space in catalog.spaces():
        pub = Published.read(catalog, space)
        if pub is None or pub.count != catalog.count_vectors(space) or pub.max_id != catalog.max_segment_id(space):
            stale.append(space)
    for key, value in catalog.all_meta().items():  # spaces that lost all their vectors
        if key.startswith("faiss.") and value.get("count") and key[6:] not in stale and catalog.count_vectors(key[6:]) == 0:
            stale.append(key[6:])
    return stale
