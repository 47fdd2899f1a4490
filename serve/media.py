"""Playback and waveforms for ``dgsearch serve``: only files the catalog lists, by id, never a request path.

- :func:`catalog_file` turns a file id (text from the URL) into the catalog's row and the file's path. An id
  that is not a decimal number, not in the catalog, not indexed successfully, a video without soundtrack, or
  a file whose size is no longer the one indexed is ``InputNotFoundError`` (HTTP 404): the request's text is
  never joined to a path, and nothing is opened before the catalog has named the file.
- :func:`playable` gives what to send: the file itself where browsers play its format (wav, flac, mp3, Ogg
  Vorbis/Opus, m4a), else — video soundtracks, anything else — its first audio stream transcoded once by
  ffmpeg to MP3 (``media/process.run_limited``: killed past ``time_limit(duration)``) and cached. Both are
  files on disk, so Range requests (seeking to a hit's window) work for either. MP3 adds the encoder's
  delay (about 50 ms at the start), well inside a window's precision. A chained Ogg (``media/ogg_links.py``)
  is neither: Chromium 150 gives a 3-link 14.2 s file a duration of 12.0 s and plays a link at another rate
  wrongly (a 3.3 s file ends at 2.3 s), and ffmpeg stops at a link that changes codec; it is sent as the
  indexing's own decode of it (every link, mono at 48 kHz, the sound that was searched) in 16-bit FLAC, cached.
- :func:`waveform_peaks` computes a file's peaks on first request, decoding through the indexing's own
  decode path (``media/audio.iter_audio_blocks``: libsndfile, or ffmpeg under its watchdog), and caches them.

Caches live in ``<index>/.serve-cache/`` (a temporary folder when the index is read-only), named by file id,
content hash, size and mtime: a changed file gets new entries. Each is written to a temporary name and
``os.replace``d, under a per-entry lock, so concurrent first requests compute it once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat as stat_mod
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.atomic_files import replacing, write_text
from diffgap_search.errors import InputNotFoundError, MediaDecodeError, StorageError
from diffgap_search.media import process
from diffgap_search.media.ogg_links import is_chained_ogg
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.rows import FileRow

CACHE_DIR = ".serve-cache"
PEAKS_VERSION = 1
PEAK_BUCKETS = 1000  # peaks per file (fewer for files shorter than 1 s: one per millisecond)
PEAK_RATE = 16_000  # decode rate for peaks: enough for an envelope, cheap for long files
PLAYBACK_RATE = 48_000  # a chained Ogg sent for playback: the rate the index decodes at
# Formats every current browser plays from the file itself (by extension, as the indexer classifies them).
DIRECT_TYPES: dict[str, str] = {
    ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
    ".oga": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4", ".m4b": "audio/mp4", ".m4r": "audio/mp4",
}  # .m4b audiobooks run for hours: transcoding one on a click took minutes

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def catalog_file(catalog: Catalog, file_id: str, *, sound: bool = True) -> tuple[FileRow, Path]:
    """The catalog's row and path of ``file_id`` (URL text), or InputNotFoundError (see the module doc);
    ``sound=False`` lets a video without a soundtrack through (saving the file itself)."""
    row = catalog.file_by_id(int(file_id)) if file_id.isdecimal() and len(file_id) < 19 else None
    if row is None or row.status != "ok":
        raise InputNotFoundError(f"no file with id {file_id!r} in index {catalog.path.parent}")
    if sound and row.kind == "video" and not row.has_audio:
        raise InputNotFoundError(f"file {row.id} ({row.path}) is a video without a soundtrack: nothing to play")
    path = Path(os.fsdecode(row.path_key))
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None:
        raise InputNotFoundError(
            f"file {row.id} ({row.path}) is no longer on disk: `dgsearch index` its folder again, or `dgsearch forget`"
            " a folder gone for good (`dgsearch info --missing` lists them)")
    if not stat_mod.S_ISREG(st.st_mode) or st.st_size != row.size:
        raise InputNotFoundError(
            f"file {row.id} ({row.path}) is gone or changed since it was indexed: run `dgsearch index` again"
        )
    return row, path


def cache_dir(index_dir: Path) -> Path:
    """``<index>/.serve-cache``, or a per-index temporary folder when the index cannot be written."""
    folder = index_dir / CACHE_DIR
    try:
        folder.mkdir(exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    digest = hashlib.sha256(os.fsencode(index_dir.resolve())).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"dgsearch-serve-cache-{os.getuid()}-{digest}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def cache_key(row: FileRow) -> str:
    """A cache entry's stem: file id, content hash, size, mtime (a changed file gets a new one)."""
    return f"{row.id}-{(row.sha256 or 'nohash')[:16]}-{row.size}-{row.mtime_ns}"


def _lock_for(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def playable(index_dir: Path, row: FileRow, path: Path) -> tuple[Path, str]:
    """``(file to send, media type)``: the file itself, or its soundtrack transcoded to MP3 (cached)."""
    media_type = DIRECT_TYPES.get(path.suffix.lower())
    chained = is_chained_ogg(path)
    if media_type is not None and row.kind == "audio" and not chained:
        return path, media_type
    if chained:
        target = cache_dir(index_dir) / f"audio-{cache_key(row)}.flac"
        with _lock_for(str(target)):
            if not target.is_file():
                _decode_to_flac(path, target)
        return target, "audio/flac"
    target = cache_dir(index_dir) / f"audio-{cache_key(row)}.mp3"
    with _lock_for(str(target)):
        if not target.is_file():
            _transcode(path, target, row.duration_s)
    return target, "audio/mpeg"


def _transcode(path: Path, target: Path, duration_s: float | None) -> None:
    """The first audio stream of ``path`` -> MP3 at ``target`` (temporary name, then ``os.replace``)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaDecodeError(f"{path}: needs ffmpeg, which is not installed, to play this file in a browser")
    codec = ["-c:a", "libmp3lame", "-q:a", "4"]
    try:
        with replacing(target) as tmp:
            cmd: list[str | bytes] = [exe, "-nostdin", "-v", "error", "-y", "-i", b"file:" + os.fsencode(path), "-map",
                                      "0:a:0", "-vn", "-sn", "-dn", *codec, "-f", "mp3", b"file:" + os.fsencode(tmp)]
            done = process.run_limited(cmd, path, process.time_limit(duration_s), "ffmpeg")
            if done.returncode != 0:
                raise MediaDecodeError(f"{path}: cannot transcode for playback ({process.failure(done)})")
    except OSError as exc:
        raise StorageError(f"cannot write the playback cache {target.parent}: {exc.strerror or exc}") from None


def _decode_to_flac(path: Path, target: Path) -> None:
    """``path`` decoded as the index decodes it (mono, ``PLAYBACK_RATE``) -> 16-bit FLAC at ``target``, streamed
    (temporary name, then ``os.replace``)."""
    import soundfile as sf

    from diffgap_search.media.audio import iter_audio_blocks

    try:
        with replacing(target) as tmp, sf.SoundFile(tmp, "w", PLAYBACK_RATE, 1, "PCM_16", format="FLAC") as out:
            for block in iter_audio_blocks(path, PLAYBACK_RATE):
                out.write(block)
    except (OSError, sf.LibsndfileError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise StorageError(f"cannot write the playback cache {target.parent}: {why}") from None


def waveform_peaks(index_dir: Path, row: FileRow, path: Path) -> dict[str, Any]:
    """``{"file_id", "duration_s", "peaks"}``: ``peaks`` is a list of at most ``PEAK_BUCKETS`` floats in
    [0, 1], each the largest absolute sample of its equal share of the file (mono, at ``PEAK_RATE``)."""
    target = cache_dir(index_dir) / f"peaks-v{PEAKS_VERSION}-{cache_key(row)}.json"
    with _lock_for(str(target)):
        if target.is_file():
            return {"file_id": row.id, **json.loads(target.read_text(encoding="utf-8"))}
        doc = compute_peaks(path)
        try:
            write_text(target, json.dumps(doc))
        except OSError as exc:
            raise StorageError(f"cannot write the peaks cache {target.parent}: {exc.strerror or exc}") from None
    return {"file_id": row.id, **doc}


def compute_peaks(path: Path, buckets: int = PEAK_BUCKETS, rate: int = PEAK_RATE) -> dict[str, Any]:
    """Decode ``path`` (streamed) and reduce it to ``{"duration_s", "peaks"}`` (see :func:`waveform_peaks`)."""
    from diffgap_search.media.audio import iter_audio_blocks

    step = max(1, rate // 1000)  # 1 ms frames, reduced to buckets at the end (the length is known only then)
    frames: list[np.ndarray] = []
    carry = np.zeros(0, np.float32)
    total = 0
    for block in iter_audio_blocks(path, rate):
        total += len(block)
        data = np.abs(np.concatenate([carry, block]))
        whole = len(data) // step * step
        if whole:
            frames.append(data[:whole].reshape(-1, step).max(axis=1))
        carry = data[whole:]
    if len(carry):
        frames.append(np.array([carry.max()], np.float32))
    env = np.concatenate(frames) if frames else np.zeros(1, np.float32)
    n = min(buckets, len(env))
    edges = np.linspace(0, len(env), n + 1).astype(np.int64)
    peaks = [float(env[a:b].max()) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])]
    return {"duration_s": round(total / rate, 4), "peaks": [round(p, 4) for p in peaks]}
