"""What runs on the Ray cluster: the decode task (a few files -> their windows) and the ``Embedder`` actor
(windows -> vectors by space, bridged). Rows are ``{"file": int64, "seq": int64, "payload": bytes}``: ``seq`` >= 0 a window
(payload: ``(start_s, end_s, audio, frames)`` decoded, ``(start_s, end_s, vectors)`` embedded), ``seq`` -1 the
file's end (payload: ``FileEnd``), the last row of every file, passed through the actor unchanged. Payloads
are bytes of ``rows_codec.pack`` (a JSON header and raw array bytes: nothing read from a row is unpickled).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffgap_search.config import EncoderConfig, VideoConfig, WindowConfig
from diffgap_search.encoders.base import Encoder, EncoderLoader, FrameEncoder, VideoEncoderLoader
from diffgap_search.encoders.loading import ask_for_lanes
from diffgap_search.errors import DGSearchError, MediaDecodeError, ModelUnavailableError
from diffgap_search.indexing.decode import DecodeArgs, SegmentData, decode_file, iter_segments
from diffgap_search.indexing.decode import _tags_of as tags_of
from diffgap_search.indexing.embed import bridge_segments, embed_segments
from diffgap_search.indexing.memory import HeapGuard, keep_freed_memory
from diffgap_search.indexing.ray_engine.failure import FAILED, SAME_ON_EVERY_NODE, ActorFailure
from diffgap_search.indexing.ray_engine.rows_codec import pack, register, unpack
from diffgap_search.media.tags import FileTags

END = -1  # ``seq`` of a file's end row
CHUNK_WINDOWS = 8  # windows per block a decode task yields at most (bounded memory on the worker)
FILES_PER_TASK = 4  # files per decode task at most: Ray Data's per-task work paid once for several (docs/ray.md)
# The embedding actor's process environment (its ``runtime_env``, merged with the job's). Ray runs an actor's
# methods on a thread of its own, and glibc gives such a thread an arena of its own whose heaps hold at most
# 64 MiB: every larger block (torch's activations) is then a fresh mmap, unmapped when freed, whatever
# keep_freed_memory() asked. One arena puts them on the main heap, where they are reused. Measured on the
# full-size CLAP, 600 windows, 2 cores of an AMX Xeon: the actor 54-55 -> 46 CPU-s (docs/ray.md).
ACTOR_ENV = {"MALLOC_ARENA_MAX": "1"}
Batch = dict[str, np.ndarray]


@register
@dataclass(frozen=True)
class FileEnd:
    """A file's last row: its window count, whether it has sound, its tags, or why it failed."""

    windows: int
    has_audio: bool = True
    tags: FileTags = FileTags()
    error: str | None = None


def rows(items: list[tuple[int, int, Any]]) -> Batch:
    """One block of rows: ``items`` as ``(file, seq, payload object)``."""
    return {"file": np.array([file for file, _, _ in items], dtype=np.int64),
            "seq": np.array([seq for _, seq, _ in items], dtype=np.int64),
            "payload": np.array([pack(obj) for _, _, obj in items] + [b""], dtype=object)[:-1]}


def decode_rows(batch: Batch) -> Iterator[Batch]:
    """The decode task (``map_batches`` over the planned files, up to ``FILES_PER_TASK`` per batch; columns
    ``file`` and ``task``, a packed ``DecodeArgs``, see ``rows_codec``): the files' rows in order, in blocks of
    at most ``CHUNK_WINDOWS`` windows, several short files sharing one (each block and each task costs Ray Data
    and the object store a round of bookkeeping); a file's end row follows its last window. A bad file ends with
    its reason; a decoder that kills its process is retried by Ray, then its task's files are lost (the driver
    decodes them again one per task, so that only the file that kills its decoder is lost)."""
    keep_freed_memory()  # as the local engine's decode workers: each file reuses the last one's pages
    block: list[tuple[int, int, Any]] = []
    for file, raw in zip(batch["file"], batch["task"]):
        for part in _decode_one(int(file), unpack(raw)):
            if block and _windows(block) + _windows(part) > CHUNK_WINDOWS:
                yield rows(block)
                block = []
            block.extend(part)
            if _windows(block) >= CHUNK_WINDOWS:
                yield rows(block)
                block = []
    if block:
        yield rows(block)


def _windows(items: list[tuple[int, int, Any]]) -> int:
    return sum(1 for _, seq, _ in items if seq != END)


def _decode_one(file: int, task: DecodeArgs) -> Iterator[list[tuple[int, int, Any]]]:
    """One file's rows ``(file, seq, payload object)``, in parts of at most ``CHUNK_WINDOWS`` windows, the end
    row in the last part."""
    decoded = decode_file(*task)  # short files whole, with the local engine's reasons for bad media
    if not decoded.too_long:
        items = [(file, i, (s.start_s, s.end_s, s.audio, s.frames)) for i, s in enumerate(decoded.segments)]
        parts = [items[start : start + CHUNK_WINDOWS] for start in range(0, len(items), CHUNK_WINDOWS)] or [[]]
        parts[-1] = [*parts[-1], (file, END, FileEnd(len(items), decoded.has_audio, decoded.tags, decoded.error))]
        yield from parts
        return
    n, chunk = 0, []
    try:
        has_audio, segments = iter_segments(*task[:4])  # a long file: streamed, a block at a time
        for seg in segments:
            chunk.append((file, n, (seg.start_s, seg.end_s, seg.audio, seg.frames)))
            n += 1
            if len(chunk) == CHUNK_WINDOWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        end = FileEnd(n, has_audio, tags_of(task[0])) if n else FileEnd(0, error="no audio samples")
    except MediaDecodeError as exc:
        end = FileEnd(0, error=getattr(exc, "reason", None) or str(exc))
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        end = FileEnd(0, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    yield [(file, END, end)]


@dataclass
class ModelSpec:
    """What an actor needs to embed as the driver does: the loaders and configurations, the run's window (at
    the encoder's rate), the index's bridge (None without one), and the driver's encoder fingerprints (an
    actor whose weights differ refuses to embed)."""

    load_encoder: EncoderLoader
    cfg: EncoderConfig
    load_video_encoder: VideoEncoderLoader | None
    video_cfg: VideoConfig
    window: WindowConfig
    bridge: Any
    is_cavp: bool
    fingerprints: dict[str, str] = field(default_factory=dict)  # "audio" / "video" -> fingerprint
    cpu_threads: int | None = None  # torch threads of an actor without a GPU (None: Ray's, 1 per CPU it holds)


class ActorModels:
    """``RunModels``' face for ``embed_segments``/``bridge_segments`` inside an actor: each model loaded once."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec, self.window, self.is_cavp = spec, spec.window, spec.is_cavp
        self.batch_size = spec.cfg.batch_size
        self._audio: Encoder | None = None
        self._video: FrameEncoder | None = None

    def audio(self) -> Encoder:
        if self._audio is None:
            self._audio = self.spec.load_encoder(self.spec.cfg)
            self._check("audio", self._audio)
            ask_for_lanes(self._audio)  # as the local engine's: long bf16 calls in two lanes
        return self._audio

    def video(self) -> FrameEncoder:
        if self._video is None:
            if self.spec.load_video_encoder is None:
                raise ModelUnavailableError("no video encoder is configured: pass --video-model or --no-frames")
            self._video = self.spec.load_video_encoder(self.spec.video_cfg, self.spec.cfg.device)
            self._check("video", self._video)
        return self._video

    def bridge(self) -> Any:
        return self.spec.bridge

    def _check(self, role: str, encoder: Any) -> None:
        expected = self.spec.fingerprints.get(role)
        if expected is not None and encoder.fingerprint != expected:
            raise ModelUnavailableError(
                f"its {role} weights ({encoder.fingerprint[:12]}) are not the driver's ({expected[:12]})")


def _on_this_node(exc: DGSearchError) -> DGSearchError:
    """``exc`` (same class, so the same exit code) with its message saying which node's actor could not start."""
    import ray

    located = copy.copy(exc)
    located.args = (f"an embedding actor on the Ray node {ray.util.get_node_ip_address()} cannot start: {exc}"
                    f" ({SAME_ON_EVERY_NODE})",)
    return located


class Embedder:
    """The embedding actor (``map_batches`` callable class): models loaded once, then each batch's windows
    embedded and bridged in calls of at most the encoder's batch size; end rows pass through."""

    def __init__(self, spec: ModelSpec) -> None:
        if spec.cpu_threads is not None:  # Ray started it with OMP_NUM_THREADS=1 (CPUs held)
            from diffgap_search.encoders.runtime import limit_cpu_threads

            limit_cpu_threads(spec.cpu_threads)
        self.heap = HeapGuard(keep_freed_memory())  # pages reused batch after batch, memory flat (indexing/memory.py)
        self.models = ActorModels(spec)
        self.unavailable: Exception | None = None
        try:
            self.models.audio()  # load now, not inside the first batch
            if spec.is_cavp:
                self.models.video()
        except Exception as exc:  # noqa: BLE001 - answered to the first batch: Ray keeps a creation error's text only
            self.unavailable = _on_this_node(exc) if isinstance(exc, DGSearchError) else exc

    def __call__(self, batch: Batch) -> Batch:
        """The batch's rows, windows embedded; or one ``FAILED`` row with the ``ActorFailure`` (failure.py)."""
        try:
            if self.unavailable is not None:
                raise self.unavailable
            return self._embedded(batch)
        except Exception as exc:  # noqa: BLE001 - to the driver whole: Ray Data would drop the block (failure.py)
            return rows([(int(batch["file"][0]), FAILED, ActorFailure.of(exc))])

    def _embedded(self, batch: Batch) -> Batch:
        items = [(int(f), int(s), unpack(p)) for f, s, p in zip(batch["file"], batch["seq"], batch["payload"])]
        windows = [i for i, (_, seq, _) in enumerate(items) if seq != END]
        segments = [SegmentData(*items[i][2]) for i in windows]
        vectors: list[dict[str, np.ndarray]] = []
        step = self.models.batch_size
        for start in range(0, len(segments), step):
            part = segments[start : start + step]
            vectors.extend(bridge_segments(self.models, embed_segments(self.models, part)))  # type: ignore[arg-type]
        out = [payload for _, _, payload in items]
        for i, seg, vec in zip(windows, segments, vectors):
            out[i] = (seg.start_s, seg.end_s, vec)
        self.heap.after_batch()
        return {"file": batch["file"], "seq": batch["seq"],
                "payload": np.array([pack(o) for o in out] + [b""], dtype=object)[:-1]}
