"""What runs on the Ray cluster: the decode task (a file -> its windows) and the ``Embedder`` actor (windows ->
vectors by space, bridged). Rows are ``{"file": int64, "seq": int64, "payload": bytes}``: ``seq`` >= 0 a window
(payload: ``(start_s, end_s, audio, frames)`` decoded, ``(start_s, end_s, vectors)`` embedded), ``seq`` -1 the
file's end (payload: ``FileEnd``), the last row of every file, passed through the actor unchanged. Payloads
are bytes of ``rows_codec.pack`` (JSON and ``.npz``: nothing read from a row is unpickled).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffgap_search.config import EncoderConfig, VideoConfig, WindowConfig
from diffgap_search.encoders.base import Encoder, EncoderLoader, FrameEncoder, VideoEncoderLoader
from diffgap_search.errors import MediaDecodeError, ModelUnavailableError
from diffgap_search.indexing.decode import DecodeArgs, SegmentData, decode_file, iter_segments
from diffgap_search.indexing.decode import _tags_of as tags_of
from diffgap_search.indexing.embed import bridge_segments, embed_segments
from diffgap_search.indexing.memory import HeapGuard, keep_freed_memory
from diffgap_search.indexing.ray_engine.rows_codec import pack, register, unpack
from diffgap_search.media.tags import FileTags

END = -1  # ``seq`` of a file's end row
CHUNK_WINDOWS = 8  # windows per block a long file's decode task yields (bounded memory on the worker)
Batch = dict[str, np.ndarray]


@register
@dataclass(frozen=True)
class FileEnd:
    """A file's last row: its window count, whether it has sound, its tags, or why it failed."""

    windows: int
    has_audio: bool = True
    tags: FileTags = FileTags()
    error: str | None = None


def rows(file: int, items: list[tuple[int, Any]]) -> Batch:
    """One block of rows of ``file``: ``items`` as ``(seq, payload object)``."""
    return {"file": np.full(len(items), file, dtype=np.int64),
            "seq": np.array([seq for seq, _ in items], dtype=np.int64),
            "payload": np.array([pack(obj) for _, obj in items] + [b""], dtype=object)[:-1]}


def decode_rows(batch: Batch) -> Iterator[Batch]:
    """The decode task (``map_batches`` over the planned files, one per batch; columns ``file`` and ``task``,
    a packed ``DecodeArgs``, see ``rows_codec``): each file's windows in blocks of ``CHUNK_WINDOWS``, then its end row. A bad file
    ends with its reason; a decoder that kills its process is retried by Ray, then its file is lost (the
    driver records it)."""
    keep_freed_memory()  # as the local engine's decode workers: each file reuses the last one's pages
    for file, raw in zip(batch["file"], batch["task"]):
        yield from _decode_one(int(file), unpack(raw))


def _decode_one(file: int, task: DecodeArgs) -> Iterator[Batch]:
    decoded = decode_file(*task)  # short files whole, with the local engine's reasons for bad media
    if not decoded.too_long:
        items = [(i, (s.start_s, s.end_s, s.audio, s.frames)) for i, s in enumerate(decoded.segments)]
        blocks = [items[start : start + CHUNK_WINDOWS] for start in range(0, len(items), CHUNK_WINDOWS)] or [[]]
        # the end row rides in the last block: one block per short file, not two (each block costs the
        # driver's scheduler and the object store a round of bookkeeping)
        blocks[-1] = [*blocks[-1], (END, FileEnd(len(items), decoded.has_audio, decoded.tags, decoded.error))]
        for block in blocks:
            yield rows(file, block)
        return
    n, chunk = 0, []
    try:
        has_audio, segments = iter_segments(*task[:4])  # a long file: streamed, a block at a time
        for seg in segments:
            chunk.append((n, (seg.start_s, seg.end_s, seg.audio, seg.frames)))
            n += 1
            if len(chunk) == CHUNK_WINDOWS:
                yield rows(file, chunk)
                chunk = []
        if chunk:
            yield rows(file, chunk)
        end = FileEnd(n, has_audio, tags_of(task[0])) if n else FileEnd(0, error="no audio samples")
    except MediaDecodeError as exc:
        end = FileEnd(0, error=getattr(exc, "reason", None) or str(exc))
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        end = FileEnd(0, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    yield rows(file, [(END, end)])


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
                f"a Ray worker loaded other {role} weights ({encoder.fingerprint[:12]}) than this run's"
                f" ({expected[:12]}): every node needs the same model files")


class Embedder:
    """The embedding actor (``map_batches`` callable class): models loaded once, then each batch's windows
    embedded and bridged in calls of at most the encoder's batch size; end rows pass through."""

    def __init__(self, spec: ModelSpec) -> None:
        if spec.cpu_threads is not None:  # Ray started it with OMP_NUM_THREADS=1 (CPUs held)
            from diffgap_search.encoders.runtime import limit_cpu_threads

            limit_cpu_threads(spec.cpu_threads)
        self.heap = HeapGuard(keep_freed_memory())  # pages reused batch after batch, memory flat (indexing/memory.py)
        self.models = ActorModels(spec)
        self.models.audio()  # load now, not inside the first batch
        if spec.is_cavp:
            self.models.video()

    def __call__(self, batch: Batch) -> Batch:
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
