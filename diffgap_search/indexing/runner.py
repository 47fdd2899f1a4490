"""The runner of an indexing run: the stages (``indexing/stages.py``) in order, batched, one transaction per batch.

discover -> plan (bookkeeping committed at once) -> decode -> embed -> bridge -> commit, batch by batch ->
CAVP gaps -> publish the FAISS files that no longer match the catalog, and the library map. Every batch of files (their rows,
windows and vectors) is committed in one transaction, so a kill loses at most the batch in flight and the
next run resumes where this one stopped. FAISS files are published at the end (and repaired at the start of
a run after a crash, since the catalog is the truth).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from diffgap_search.config import EncoderConfig, FaissConfig, IndexingConfig, VideoConfig, WindowConfig
from diffgap_search.encoders.base import EncoderLoader, VideoEncoderLoader
from diffgap_search.errors import InputNotFoundError, MediaDecodeError, NothingIndexedError
from diffgap_search.indexing.commit import EmbeddedFile, FailedFile, apply_bookkeeping
from diffgap_search.indexing.decode import MAX_WINDOWS_PER_TASK, DecodeArgs, Decoded, SegmentData, decode_timeout_s
from diffgap_search.indexing.embed import Vectors
from diffgap_search.indexing.memory import HeapGuard, keep_freed_memory
from diffgap_search.indexing.models import Loading, RunModels
from diffgap_search.indexing.moved import check_moved_away, gone_library_hint, moved_from_key, moved_library_hint
from diffgap_search.indexing.plan import ToEmbed
from diffgap_search.indexing.publishing import publish_changes
from diffgap_search.indexing.report import IndexProgress, IndexReport, NoProgress
from diffgap_search.indexing.stages import Stages
from diffgap_search.media.captions import CaptionIndex
from diffgap_search.media.discover import display_path, path_key
from diffgap_search.media.listing import EMPTY_ROOT, split_settled
from diffgap_search.store import keywords
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.settings import bind_frames, check_window, recorded_frames


# Windows decoded ahead while the models load (then 2 batches): 256 ten-second windows at 48 kHz hold 490 MB,
# about a third of the full-size CLAP run's peak; the 240-clip benchmark has 598.
LOAD_AHEAD_WINDOWS = 256


@dataclass(frozen=True)
class RunSettings:
    """Everything an indexing run is told besides its stages (``index_folder``'s arguments, one to one)."""

    root: Path
    index_dir: Path
    load_encoder: EncoderLoader
    encoder_cfg: EncoderConfig
    load_video_encoder: VideoEncoderLoader | None = None
    video_cfg: VideoConfig = VideoConfig()
    window_cfg: WindowConfig = WindowConfig()
    faiss_cfg: FaissConfig = FaissConfig()
    indexing_cfg: IndexingConfig = IndexingConfig()
    retry_failed: bool = False
    wait_s: float = 0.0
    settle_s: float = 0.0  # files modified less than this long ago wait for a later run (media/listing.py)
    moved_from: Path | None = None  # the library's old place: its rows are followed here (indexing/moved.py)


def run_index(settings: RunSettings, stages: Stages, progress: IndexProgress | None = None) -> IndexReport:
    """Index (or update the index of) every audio/video file under ``settings.root`` into ``settings.index_dir``
    with ``stages``.

    Raises InputNotFoundError (no root), UsageError (``moved_from`` is the root or above it, or a file indexed
    there is still there), IndexBusyError (another writer), IncompatibleIndexError (other
    window settings or model weights), NothingIndexedError (files found, none indexable, with the report
    attached as ``.report``).
    """
    progress = progress or NoProgress()
    started = time.perf_counter()
    root, index_dir = Path(os.path.abspath(settings.root)), settings.index_dir
    try:
        listing = stages.discover(root, index_dir)  # raises InputNotFoundError first
    except InputNotFoundError as exc:  # a library folder gone: say what the index holds from it
        raise InputNotFoundError(str(exc) + gone_library_hint(index_dir, root)) from None
    moved_from = None if settings.moved_from is None else moved_from_key(settings.moved_from, root)
    found, deferred = split_settled(listing.media, settings.settle_s)
    report = IndexReport(root=display_path(root), index=str(index_dir), found=len(listing.media),
                         deferred=len(deferred), ignored=len(listing.ignored),
                         unread_formats=dict(sorted(listing.unread.items())),
                         unreadable=[(display_path(p), reason) for p, reason in listing.unreadable])
    captions = CaptionIndex.from_files(listing.files, media=[f.path for f in found],
                                       on_error=lambda p, r: report.caption_errors.append((display_path(p), r)))
    with writer_lock(index_dir, wait_s=settings.wait_s), Catalog.open(index_dir, create=True) as catalog:
        with catalog.batch():  # keyword rows cut by an older rule: rebuilt once (store/keywords.py)
            keywords.upgrade_words(catalog)
        # the recorded window, or the asked one (bound with the encoder when that is loaded)
        window = check_window(catalog, settings.window_cfg, str(index_dir)) or settings.window_cfg
        frames_before = recorded_frames(catalog)  # False: videos indexed by their soundtracks only so far
        prefix = path_key(root) + (b"" if root.is_file() else b"/")
        if moved_from is not None:
            check_moved_away(catalog, moved_from)
            report.moved_from = display_path(moved_from.rstrip(b"/") or b"/")
        waiting = {f.key for f in deferred}  # kept as they are, like the files under an unreadable path
        plan = stages.plan(found, catalog, prefix, settings.retry_failed, listing.unreadable_keys() + sorted(waiting),
                           moved_from=moved_from)
        placed = {move.row.id: move.key for move in plan.moved}
        plan.kept_unreadable = [row for row in plan.kept_unreadable  # only changing
                                if placed.get(row.id, row.path_key) not in waiting]
        if moved_from is None and plan.copied:
            report.moved_hint = moved_library_hint(prefix, [(f.key, twin.path_key) for f, twin, _ in plan.copied])
        apply_bookkeeping(catalog, plan, captions, report)
        models = RunModels(settings.load_encoder, settings.encoder_cfg, settings.load_video_encoder,
                           settings.video_cfg, catalog, str(index_dir), window)
        run = _Run(stages, catalog, models, captions, progress, report, HeapGuard(keep_freed_memory()))
        models.bind_text()  # an existing index gains (or checks) its --text-model even with nothing to embed
        if plan.embed:
            kinds = {t.file.kind for t in plan.embed}
            if stages.embed_files is not None:  # another engine decodes and embeds; this process commits
                run.embed_elsewhere(plan.embed, kinds, settings.indexing_cfg.files_per_batch)
            else:
                try:
                    run.embed_all(plan.embed, kinds, settings.indexing_cfg.decode_workers,
                                  settings.indexing_cfg.files_per_batch)
                finally:
                    progress.stop()
        # the vectors the index's windows lack: CAVP's (an index switched to --video-model cavp), or the older
        # videos' frames (an index switched from --no-frames to --frames)
        if models.is_cavp or (models.video_cfg.frames and frames_before is False):
            from diffgap_search.indexing.cavp_run import fill_cavp_gaps

            report.windows_embedded += fill_cavp_gaps(
                catalog, models.video, models.bridge, models.window, models.video_cfg, models.batch_size,
                progress.note, workers=settings.indexing_cfg.decode_workers, deadline_s=decode_timeout_s(),
                sound=models.is_cavp)
        bind_frames(catalog, settings.video_cfg.frames)  # after the filling: a run killed in it fills again
        publish_changes(index_dir, catalog, settings.faiss_cfg, stages.publish, progress.note)
        total_ok = catalog.stats()["files"]
    report.elapsed_s = time.perf_counter() - started
    if total_ok == 0:
        if report.found == 0:
            unread = (f" ({len(report.unreadable)} paths could not be read, the first: {report.unreadable[0][0]}:"
                      f" {report.unreadable[0][1]})" if report.unreadable and report.unreadable[0][1] != EMPTY_ROOT
                      else "")
            left = (f" ({_entries(len(listing.ignored))} left out by .dgsearchignore files, the first:"
                    f" {display_path(listing.ignored[0])})" if listing.ignored else "")
            err = NothingIndexedError(f"no audio or video files found under {display_path(root)}{unread}{left}")
        else:
            err = NothingIndexedError(
                f"none of the {report.found} files under {display_path(root)} could be indexed:"
                " see `dgsearch info --errors`"
            )
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report


def _entries(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'} or folder{'' if n == 1 else 's'}"


def _decodes_alike(a: WindowConfig, b: WindowConfig) -> bool:
    """Whether windows cut by ``a`` and ``b`` are the same samples (the encoder's ``model_samples`` matters
    only through the length a window is padded to: CLAP's 480 000 is a 10 s window at 48 kHz already)."""
    return (a.window_s, a.hop_s, a.sample_rate, a.embed_samples) == (b.window_s, b.hop_s, b.sample_rate, b.embed_samples)


@dataclass
class _Run:
    """One run's decode -> embed -> bridge -> commit loop, and the files waiting for their batch."""

    stages: Stages
    catalog: Catalog
    models: RunModels
    captions: CaptionIndex
    progress: IndexProgress
    report: IndexReport
    heap: HeapGuard  # trims the heap after a batch when it has grown (indexing/memory.py)
    embedded: list[EmbeddedFile] = field(default_factory=list)
    failed: list[FailedFile] = field(default_factory=list)

    @property
    def pending_windows(self) -> int:
        return sum(len(done.segments) for done in self.embedded)

    def vectors(self, segments: list[SegmentData]) -> list[Vectors]:
        """The embed then the bridge stage over one batch of windows (neither runs for none)."""
        if not segments:
            return []
        return self.stages.bridge(self.models, self.stages.embed(self.models, segments))

    def embed_all(self, todo: list[ToEmbed], kinds: set[str], decode_workers: int, files_per_batch: int) -> None:
        """Load the models ``kinds`` need, decode ``todo`` (in order), embed and commit batch by batch: a batch
        closes at ``batch_size`` windows or ``files_per_batch`` files; a long file is streamed and committed on
        its own. The decode stage's context is closed however the run ends: no worker outlives it.

        The models load on a thread while the decode workers start on the first files, up to
        :data:`LOAD_AHEAD_WINDOWS` windows ahead (a fresh process spends ~7 s in imports and loading the
        full-size CLAP, on one core: the other was idle), at the window the run was given; in the rare case the loaded encoder
        asks for another (its sample rate, or fewer samples than the window), they decode again. A model that
        cannot load fails the run before anything is embedded or committed, and its workers are stopped."""
        workers, deadline_s = min(decode_workers, len(todo)), decode_timeout_s()
        budget = 2 * self.models.batch_size
        window = self.models.window
        loading = Loading(self.models, kinds)
        with self.stages.decode([self.task(t) for t in todo], workers, deadline_s,
                                max(budget, LOAD_AHEAD_WINDOWS)) as decoded:
            loading.wait()
            if _decodes_alike(self.models.window, window):
                decoded.set_budget(budget)
                self.consume(todo, decoded, workers, deadline_s, files_per_batch)
                return
        # the loaded encoder asked for another window: the files are decoded again at it
        with self.stages.decode([self.task(t) for t in todo], workers, deadline_s, budget) as decoded:
            self.consume(todo, decoded, workers, deadline_s, files_per_batch)

    def consume(self, todo: list[ToEmbed], decoded: Iterator[Decoded], workers: int, deadline_s: float | None,
                files_per_batch: int) -> None:
        """``embed_all``'s loop over the decoded files of ``todo`` (its progress starts here: once the models
        are loaded, so a failed load prints only its error)."""
        self.progress.start(len(todo))
        for item, result in zip(todo, decoded):
            if result.too_long:
                self.flush()
                self.index_long_file(item, workers, deadline_s)
                continue
            if result.error is not None:
                self.failed.append(FailedFile(item.file, item.sha256, result.error))
            else:
                self.embedded.append(EmbeddedFile(item, result.segments, [], result.has_audio, result.tags))
            files = len(self.embedded) + len(self.failed)
            if self.pending_windows >= self.models.batch_size or files >= files_per_batch:
                self.flush()
        self.flush()

    def embed_elsewhere(self, todo: list[ToEmbed], kinds: set[str], files_per_batch: int) -> None:
        """Files embedded by another engine (``stages.embed_files``: a Ray cluster), committed here batch by
        batch with the same commit stage and batch rule as ``embed_all``; the engine is stopped however the
        run ends. The models ``kinds`` need are loaded (and bound) while the engine starts: a missing one
        fails before anything is embedded, as with ``embed_all``."""
        assert self.stages.embed_files is not None

        def prepare() -> list[DecodeArgs]:
            self.models.load_for(kinds, embeds=False)  # the actors embed: a CLAP folder's needs no torch here
            return [self.task(t) for t in todo]  # after the load: the windows at the encoder's rate

        try:
            with self.stages.embed_files(self.models, todo, prepare) as results:
                self.progress.start(len(todo))  # once the engine is up: a failed load prints only its error
                for result in results:
                    if isinstance(result, FailedFile):
                        self.failed.append(result)
                    else:
                        self.embedded.append(result)
                    files = len(self.embedded) + len(self.failed)
                    if self.pending_windows >= self.models.batch_size or files >= files_per_batch:
                        self.commit_batch(self.embedded)
            self.commit_batch(self.embedded)
        finally:
            self.progress.stop()

    def task(self, item: ToEmbed) -> DecodeArgs:
        return (item.file.path, item.file.kind, self.models.window, self.models.video_cfg, MAX_WINDOWS_PER_TASK)

    def flush(self) -> None:
        """Embed the waiting files' windows in one call per stage and commit them (and the failures) in one
        transaction."""
        if not self.embedded and not self.failed:
            return
        vectors = self.vectors([seg for done in self.embedded for seg in done.segments])
        ready, offset = [], 0
        for done in self.embedded:
            n = len(done.segments)
            ready.append(EmbeddedFile(done.item, done.segments, vectors[offset : offset + n], done.has_audio,
                                      done.tags))
            offset += n
        self.commit_batch(ready)

    def commit_batch(self, ready: list[EmbeddedFile]) -> None:
        """Commit ``ready`` (files with their vectors) and the waiting failures in one transaction."""
        if not ready and not self.failed:
            return
        self.stages.commit(self.catalog, ready, self.failed, self.captions)
        windows = sum(len(done.segments) for done in ready)
        for done in ready:
            self.report.windows_embedded += len(done.segments)
            self.report.audio_seconds += done.duration_s
        self._record_failures(self.failed)
        self.report.embedded_files += len(ready)
        self.progress.advance(len(ready) + len(self.failed), windows)
        self.embedded, self.failed = [], []
        self.heap.after_batch()  # flat memory however many files, pages reused (see indexing/memory.py)

    def index_long_file(self, item: ToEmbed, workers: int, deadline_s: float | None) -> None:
        """Stream a long file's windows (decoded in a worker of its own unless ``workers`` is 0) through the
        embed and bridge stages batch by batch (bounded memory: only vectors accumulate), then commit the
        file in one transaction."""
        segments: list[SegmentData] = []
        vectors: list[Vectors] = []
        try:
            has_audio, tags, stream = self.stages.stream(self.task(item), workers, deadline_s)
            with closing(stream):  # type: ignore[type-var]
                batch: list[SegmentData] = []
                for seg in stream:
                    batch.append(seg)
                    if len(batch) == self.models.batch_size:
                        vectors.extend(self.vectors(batch))
                        segments.extend(_drop_media(batch))
                        batch = []
                        self.heap.after_batch()  # as after every batch of short files
                vectors.extend(self.vectors(batch))
                segments.extend(_drop_media(batch))
        except MediaDecodeError as exc:
            failure = FailedFile(item.file, item.sha256, getattr(exc, "reason", None) or str(exc))
            self.stages.commit(self.catalog, [], [failure], self.captions)
            self._record_failures([failure])
            self.progress.advance(1, 0)
            return
        done = EmbeddedFile(item, segments, vectors, has_audio, tags)
        self.stages.commit(self.catalog, [done], [], self.captions)
        self.report.windows_embedded += len(segments)
        self.report.audio_seconds += done.duration_s
        self.report.embedded_files += 1
        self.progress.advance(1, len(segments))

    def _record_failures(self, failed: list[FailedFile]) -> None:
        self.report.failed.extend((display_path(f.file.path), f.reason) for f in failed)


def _drop_media(batch: list[SegmentData]) -> list[SegmentData]:
    """The segments' seconds only (their samples and frames are no longer needed)."""
    return [SegmentData(s.start_s, s.end_s, None, None) for s in batch]
