"""A hostile corpus: no crash, every bad file recorded with a one-line reason, every good file indexed.

Truncated and zero-length files, random bytes and a text file named .wav, a one-sample file, NaN/inf
samples, 8 channels, 8 kHz and 192 kHz, names with a newline and with non-UTF-8 bytes, a symlink loop (a
folder link to its parent, a link to itself), a folder named ``clip.wav``, an unreadable file, and (slow)
a one-hour file indexed in bounded memory.

Unreadable files: the tests run as root, and ``chmod 000`` does not stop root from reading. The in-process
test therefore makes ``open`` of that file fail with EACCES (what a non-root user gets). (Dropping to
``nobody`` in a subprocess is not possible here: the Python interpreter lives under /root, mode 0700.)
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_index import INLINE, CountingLoader
from fixtures_media import write_audio, write_tone
from reliability_helpers import DGSEARCH, read_state

from diffgap_search.config import EncoderConfig, VideoConfig
from diffgap_search.indexing import index_folder

GOOD = ["good.wav", "rate_8k.wav", "rate_192k.wav", "eight_channels.wav", "one_sample.wav"]
EITHER = ["nan.wav", "truncated_data.wav"]  # indexed (finite, sanitised) or failed with a reason: both fine
BAD = ["empty.wav", "random.wav", "text.wav", "truncated_header.wav", "zero_frames.wav", "no_audio.mp4"]


def hostile_tree(root: Path, hostile_files: dict[str, Path]) -> tuple[set[bytes], set[bytes], bytes]:
    """Build the tree; returns (keys of files that must index, keys that must fail, the unreadable key)."""
    root.mkdir()
    for p in hostile_files.values():
        shutil.copy(p, root / p.name)
    shutil.copy(hostile_files["rate_8k"].with_name("good.wav"), root / "good.wav")
    write_tone(root / "line\nbreak.wav", 300.0, 1.0)
    weird = os.path.join(os.fsencode(root), b"caf\xe9-\xff.wav")
    os.rename(write_tone(root / "weird.tmp.wav", 350.0, 1.0), weird)
    (root / "clip.wav").mkdir()  # a folder with an audio name
    write_tone(root / "clip.wav" / "inside.wav", 400.0, 1.0)
    os.symlink(root, root / "clip.wav" / "loop")  # a folder loop
    os.symlink("self.wav", root / "self.wav")  # a link to itself: ELOOP
    os.symlink(root / "missing.wav", root / "dangling.wav")
    locked = write_tone(root / "locked.wav", 450.0, 1.0)
    os.chmod(locked, 0)
    good = {os.fsencode(root / n) for n in GOOD} | {
        os.fsencode(root / "line\nbreak.wav"), weird, os.fsencode(root / "clip.wav" / "inside.wav")}
    bad = {os.fsencode(root / n) for n in BAD if (root / n).exists()} | {os.fsencode(locked)}
    return good, bad, os.fsencode(locked)


def check_outcome(index_dir: Path, good: set[bytes], bad: set[bytes]) -> None:
    import sqlite3

    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    rows = {bytes(k): (status, error) for k, status, error in conn.execute("SELECT path_key, status, error FROM files")}
    vecs = [np.frombuffer(b, "<f4") for (b,) in conn.execute("SELECT vector FROM vectors")]
    conn.close()
    # The tree's root, from a file known to sit at its top (a set's order varies with the hash seed, and
    # ``clip.wav/inside.wav`` is one level down).
    root = os.path.dirname(next(k for k in good if k.endswith(b"/good.wav")))
    either = {os.path.join(root, os.fsencode(n)) for n in EITHER}
    assert set(rows) == good | bad | either, set(rows) ^ (good | bad | either)
    for key in either:
        status, error = rows[key]
        assert (status, error) == ("ok", None) or (status == "error" and error and "\n" not in error), rows[key]
    for key in good:
        assert rows[key] == ("ok", None), (key, rows[key])
    for key in bad:
        status, error = rows[key]
        assert status == "error" and error and "\n" not in error and len(error) < 300, (key, error)
    assert all(np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-4 for v in vecs)
    st = read_state(index_dir)  # integrity and foreign keys
    assert st.meta["faiss.audio"]["count"] == len(vecs)


def test_hostile_corpus(tmp_path: Path, hostile_files: dict[str, Path], tiny_cfg: EncoderConfig,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad, locked = hostile_tree(tmp_path / "h", hostile_files)
    real_open = builtins.open

    def open_as_non_root(file, *a, **kw):  # type: ignore[no-untyped-def]
        if isinstance(file, (str, bytes, os.PathLike)) and os.fsencode(file) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr(builtins, "open", open_as_non_root)
    report = index_folder(tmp_path / "h", tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                          indexing_cfg=INLINE, video_cfg=VideoConfig(frames=False))
    check_outcome(tmp_path / "ix", good, bad)
    assert len(report.failed) == len(bad) and all("\n" not in r for _, r in report.failed)
    # a second run changes nothing and does not crash either
    again = index_folder(tmp_path / "h", tmp_path / "ix", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg,
                         indexing_cfg=INLINE, video_cfg=VideoConfig(frames=False))
    assert again.windows_embedded == 0
    check_outcome(tmp_path / "ix", good, bad)


@pytest.mark.slow
def test_one_hour_file_in_bounded_memory(tmp_path: Path, tiny_clap_dir: Path) -> None:
    """One hour at 8 kHz (360 windows): decoded whole at 48 kHz it alone would take 691 MB on top of the
    ~530 MB an indexing process with the tiny model peaks at for short clips (batch 8-16); the peak RSS of
    the largest process (``RUSAGE_CHILDREN``) stays under 900 MB. (The batch size matters: CLAP's feature
    extractor holds a float64 STFT of the whole batch, ~0.5 GB at batch 32, whatever the file length.)"""
    sr, seconds = 8_000, 3600
    t = np.arange(sr * 60) / sr
    minute = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    clips = tmp_path / "long"
    write_audio(clips / "hour.wav", np.tile(minute, seconds // 60), sr)
    write_tone(clips / "short.wav", 500.0, 1.0)
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", code, str(DGSEARCH), "index", str(clips), "--index", str(tmp_path / "ix"),
                        "--model", str(tiny_clap_dir), "--workers", "1", "--batch-size", "8", "--json"],
                       capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr
    peak_mb = int(r.stderr.strip().splitlines()[-1]) / 1024
    doc = json.loads(r.stdout)
    assert doc["windows_embedded"] == 361 and doc["failed"] == []
    print(f"one-hour file: peak RSS {peak_mb:.0f} MB, {doc['elapsed_s']:.0f} s")
    assert peak_mb < 900, peak_mb
