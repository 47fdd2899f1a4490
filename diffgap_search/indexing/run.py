"""``index_folder``: discover -> plan -> decode (workers) -> encode (batched) -> store -> publish FAISS.

Every batch of files (their rows, windows and vectors) is committed in one transaction, so a kill loses at
most the batch in flight and the next run resumes where this one stopped. FAISS files are published at the
end (and repaired at the start of a run after a crash, since the catalog is the truth).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffgap_search.config import EncoderConfig, FaissConfig, IndexingConfig, WindowConfig
from diffgap_search.encoders.base import Encoder
from diffgap_search.errors import NothingIndexedError
from diffgap_search.indexing.decode import Decoded, decode_file, ordered_map, stream_windows
from diffgap_search.indexing.plan import Plan, ToEmbed, make_plan
from diffgap_search.indexing.report import IndexProgress, IndexReport, NoProgress
from diffgap_search.media.captions import CaptionIndex
from diffgap_search.media.discover import DiscoveredFile, discover, display_path, path_key
from diffgap_search.media.hashing import sha256_file
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.settings import bind_encoder, bind_window
from diffgap_search.store.vector_index import Published, publish

EncoderLoader = Callable[[EncoderConfig], Encoder]
MAX_WINDOWS_PER_TASK = 32  # ~60 MB of 10 s windows at 48 kHz; longer files are streamed


@dataclass
class _Pending:
    """Decoded files waiting for one batched encoder call and one transaction."""

    items: list[tuple[ToEmbed, Decoded]] = field(default_factory=list)
    failures: list[tuple[ToEmbed, str]] = field(default_factory=list)

    @property
    def windows(self) -> int:
        return sum(len(d.windows) for _, d in self.items if d.windows is not None)


def index_folder(
    root: Path,
    index_dir: Path,
    *,
    load_encoder: EncoderLoader,
    encoder_cfg: EncoderConfig,
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
        bind_window(catalog, window_cfg, str(index_dir))
        captions = CaptionIndex.build(root, exclude=[index_dir])
        prefix = path_key(root) + (b"" if root.is_file() else b"/")
        plan = make_plan(found, catalog, prefix, lambda f: sha256_file(f.path), retry_failed=retry_failed)
        _apply_bookkeeping(catalog, plan, captions, report)
        encoder = _LazyEncoder(load_encoder, encoder_cfg, catalog, str(index_dir))
        if plan.embed:
            encoder.get()  # fail fast (missing weights, other model) before any decoding
            progress.start(len(plan.embed))
            try:
                _embed_all(catalog, plan.embed, encoder, captions, window_cfg, indexing_cfg, progress, report)
            finally:
                progress.stop()
        dim = encoder.dim_or_stored()
        if dim is not None:
            for space in _stale_spaces(catalog):
                progress.note(f"writing the {space} index")
                publish(index_dir, catalog, space, dim, faiss_cfg)
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


class _LazyEncoder:
    """Loads the encoder on first use only (an unchanged folder never loads a model)."""

    def __init__(self, loader: EncoderLoader, cfg: EncoderConfig, catalog: Catalog, where: str) -> None:
        self._loader, self._cfg, self._catalog, self._where = loader, cfg, catalog, where
        self._encoder: Encoder | None = None

    def get(self) -> Encoder:
        if self._encoder is None:
            self._encoder = self._loader(self._cfg)
            bind_encoder(self._catalog, self._encoder, self._where)
        return self._encoder

    @property
    def batch_size(self) -> int:
        return self._cfg.batch_size

    def dim_or_stored(self) -> int | None:
        if self._encoder is not None:
            return self._encoder.dim
        stored = self._catalog.get_meta("encoder")
        return None if stored is None else int(stored["dim"])


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
        catalog.delete_files([row.id for row in plan.deleted])
        for f, reason in plan.hash_errors:
            _record_failure(catalog, f, None, reason, report)
        for f, row in plan.unchanged + plan.touched + plan.renamed:
            catalog.set_captions(row.id, captions.captions_for(f.path))
    report.unchanged = len(plan.unchanged) + len(plan.touched)
    report.renamed = len(plan.renamed)
    report.copied = len(plan.copied)
    report.deleted = len(plan.deleted)
    report.previously_failed = len(plan.previously_failed)
    report.new = sum(1 for t in plan.embed if t.replaces is None)
    report.changed = len(plan.embed) - report.new


def _decode_task(args: tuple[Path, str, WindowConfig]) -> Decoded:
    path, kind, cfg = args
    return decode_file(path, kind, cfg, MAX_WINDOWS_PER_TASK)


def _embed_all(
    catalog: Catalog,
    todo: list[ToEmbed],
    encoder: _LazyEncoder,
    captions: CaptionIndex,
    cfg: WindowConfig,
    icfg: IndexingConfig,
    progress: IndexProgress,
    report: IndexReport,
) -> None:
    workers = icfg.decode_workers if len(todo) > 1 else 0
    decoded = ordered_map(_decode_task, ((t.file.path, t.file.kind, cfg) for t in todo), workers)
    pending = _Pending()
    batch_windows = max(1, encoder.batch_size)
    for item, result in zip(todo, decoded):
        if result.too_long:
            _flush(catalog, pending, encoder, captions, progress, report)
            _index_long_file(catalog, item, encoder, captions, cfg, progress, report)
            continue
        if result.error is not None:
            pending.failures.append((item, result.error))
        else:
            pending.items.append((item, result))
        if pending.windows >= batch_windows or len(pending.items) + len(pending.failures) >= icfg.files_per_batch:
            _flush(catalog, pending, encoder, captions, progress, report)
    _flush(catalog, pending, encoder, captions, progress, report)


def _flush(
    catalog: Catalog,
    pending: _Pending,
    encoder: _LazyEncoder,
    captions: CaptionIndex,
    progress: IndexProgress,
    report: IndexReport,
) -> None:
    """Embed the pending files' windows in one call and commit them (and failures) in one transaction."""
    if not pending.items and not pending.failures:
        return
    vectors = np.zeros((0, 0), np.float32)
    if pending.items:
        all_windows = np.concatenate([d.windows.samples for _, d in pending.items if d.windows is not None])
        vectors = encoder.get().embed_audio(all_windows)
    with catalog.batch():
        offset = 0
        for item, dec in pending.items:
            assert dec.windows is not None
            n = len(dec.windows)
            _store_file(catalog, item, vectors[offset : offset + n], dec.windows.starts, dec.windows.ends,
                        dec.duration_s, captions)
            offset += n
            report.windows_embedded += n
            report.audio_seconds += dec.duration_s
        for item, reason in pending.failures:
            _record_failure(catalog, item.file, item.sha256, reason, report)
    report.embedded_files += len(pending.items)
    progress.advance(len(pending.items) + len(pending.failures), offset)
    pending.items.clear()
    pending.failures.clear()


def _index_long_file(
    catalog: Catalog,
    item: ToEmbed,
    encoder: _LazyEncoder,
    captions: CaptionIndex,
    cfg: WindowConfig,
    progress: IndexProgress,
    report: IndexReport,
) -> None:
    """Stream a long file's windows through the encoder batch by batch (bounded memory)."""
    from diffgap_search.errors import MediaDecodeError

    vecs: list[np.ndarray] = []
    starts: list[float] = []
    ends: list[float] = []
    try:
        for batch in _batched(stream_windows(item.file.path, item.file.kind, cfg), encoder.batch_size):
            vecs.append(encoder.get().embed_audio(np.stack([w.samples for w in batch])))
            starts.extend(w.start_s for w in batch)
            ends.extend(w.end_s for w in batch)
    except MediaDecodeError as exc:
        with catalog.batch():
            _record_failure(catalog, item.file, item.sha256, getattr(exc, "reason", str(exc)), report)
        progress.advance(1, 0)
        return
    with catalog.batch():
        _store_file(catalog, item, np.concatenate(vecs), np.array(starts), np.array(ends), ends[-1], captions)
    report.windows_embedded += len(starts)
    report.audio_seconds += ends[-1]
    report.embedded_files += 1
    progress.advance(1, len(starts))


def _batched(it: Iterator[object], n: int) -> Iterator[list]:  # type: ignore[type-arg]
    batch: list = []  # type: ignore[type-arg]
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _store_file(
    catalog: Catalog,
    item: ToEmbed,
    vectors: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    duration_s: float,
    captions: CaptionIndex,
) -> None:
    f = item.file
    segments = [SegmentInput(float(s), float(e), {"audio": v}) for s, e, v in zip(starts, ends, vectors)]
    catalog.put_file(
        path_key=f.key, path=display_path(f.path), kind=f.kind, size=f.size, mtime_ns=f.mtime_ns,
        sha256=item.sha256, segments=segments, captions=captions.captions_for(f.path), duration_s=duration_s,
    )


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
