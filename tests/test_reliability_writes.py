"""Failed writes: ``faiss.write_index``, ``os.replace`` and the SQLite commit fail (ENOSPC and friends).

After the failure the previous generation still opens and answers queries, nothing half-written is left,
the error names the cause, the CLI prints one line with exit code 12 (not an internal error), and the next
run (with the disk fixed) completes.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_index import INLINE, CountingLoader
from fixtures_media import write_noise, write_tone
from reliability_helpers import check_faiss, dgsearch, read_state
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig, SearchConfig, SearchMode
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.errors import StorageError
from diffgap_search.indexing import index_folder
from diffgap_search.search import Searcher


# -- the faults ---------------------------------------------------------------------------------------
def fail_faiss_write(monkeypatch: pytest.MonkeyPatch) -> str:
    """``faiss.write_index`` writes into /dev/full instead: a real ENOSPC from the kernel."""
    import faiss

    original = faiss.write_index

    def write_index(index: Any, target: Any, *a: Any) -> None:
        with open("/dev/full", "wb") as full:
            original(index, faiss.PyCallbackIOWriter(full.write) if not isinstance(target, str) else "/dev/full", *a)

    monkeypatch.setattr(faiss, "write_index", write_index)
    return "No space left on device"


def fail_replace(monkeypatch: pytest.MonkeyPatch) -> str:
    original = os.replace

    def replace(src: Any, dst: Any, *a: Any, **kw: Any) -> None:
        if os.fspath(dst).endswith(".faiss"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))
        original(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)
    return "No space left on device"


class _FullDiskConnection(sqlite3.Connection):
    armed = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if _FullDiskConnection.armed and sql.strip().upper() == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


def fail_commit(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every COMMIT fails once armed (the test arms it when the encoder loads: the next commit is a batch
    of embedded windows)."""
    original = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: original(*a, factory=_FullDiskConnection, **kw))
    monkeypatch.setattr(_FullDiskConnection, "armed", False)
    return "database or disk is full"


FAULTS = {"faiss_write": fail_faiss_write, "replace": fail_replace, "commit": fail_commit}


def arming_loader(cfg: EncoderConfig) -> Any:
    encoder = load_encoder(cfg, progress=False)
    _FullDiskConnection.armed = True
    return encoder


def query_hits(index_dir: Path) -> tuple[list[Any], bool]:
    """Every window the index returns for a random query, and whether the FAISS file had to be rebuilt."""
    with Searcher(index_dir, load_encoder) as s:
        q = np.random.default_rng(1).standard_normal((1, 32)).astype(np.float32)
        hits, _, _ = s.search_vectors(q / np.linalg.norm(q), "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=100, group_by_file=False))
        return hits, s.index_for("audio").rebuilt


def leftovers(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_failed_write_keeps_the_previous_generation(fault: str, indexed: tuple[Path, Path], tiny_cfg: EncoderConfig,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    clips, index_dir = indexed
    before = read_state(index_dir)
    write_tone(clips / "new.wav", 523.0, 2.0)
    (clips / "rain.flac").unlink()
    cause = FAULTS[fault](monkeypatch)
    with pytest.raises(StorageError) as err:
        index_folder(clips, index_dir, load_encoder=arming_loader, encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    _FullDiskConnection.armed = False  # the disk has room again for the checks below
    message = str(err.value)
    assert cause in message and "\n" not in message
    assert leftovers(index_dir) == []
    after = read_state(index_dir)
    assert after.meta["faiss.audio"] == before.meta["faiss.audio"]  # the generation did not move
    if fault == "commit":
        assert set(after.files) == set(before.files) - {str(clips / "rain.flac")}  # bookkeeping was committed
    hits, rebuilt = query_hits(index_dir)
    assert not rebuilt  # the previous generation's file is intact
    assert hits and all((h.segment_id, h.start_s, h.end_s) in after.windows[h.path] for h in hits)
    assert len(hits) == len(after.vectors)  # FAISS (previous generation) + the committed delta, minus deletions

    monkeypatch.undo()
    _FullDiskConnection.armed = False
    index_folder(clips, index_dir, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    done = read_state(index_dir)
    assert {os.path.basename(p) for p in done.files} == {"Yabc123.mp3", "chirp.ogg", "dog_bark.wav", "new.wav",
                                                         "siren.wav"}
    check_faiss(index_dir, done)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_cli_reports_a_full_disk_in_one_line_with_its_exit_code(fault: str, indexed: tuple[Path, Path],
                                                                 tiny_clap_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    clips, index_dir = indexed
    write_noise(clips / "more.wav", 1.0, seed=9)
    cause = FAULTS[fault](monkeypatch)
    import diffgap_search.cli.loaders as cli_app

    monkeypatch.setattr(cli_app, "encoder_loader", lambda: arming_loader)
    r = CliRunner().invoke(app, ["index", str(clips), "--index", str(index_dir), "--workers", "0"])
    assert r.exit_code == 12, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("dgsearch:")]  # after the progress bar
    assert len(errors) == 1 and errors[0].startswith("dgsearch: error: cannot write the ") and cause in errors[0]
    assert r.stderr.endswith(errors[0] + "\n") and "internal error" not in r.stderr and "Traceback" not in r.output


@pytest.mark.slow
def test_subprocess_full_disk_exit_code(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    """The same through the installed console script, with the fault shim (a deletion-only run: no model)."""
    clips, index_dir = indexed
    for k, fault in enumerate(sorted(FAULTS)):
        next(p for p in sorted(clips.rglob("*")) if p.suffix in {".wav", ".flac", ".ogg", ".mp3"}).unlink()
        code, out, err, _ = dgsearch(["index", clips, "--index", index_dir, "--workers", "0"], tmp_path / f"w{k}",
                                     _fault(fault))
        assert code == 12, err
        assert err.strip().splitlines()[-1].startswith("dgsearch: error: cannot write the ")
        assert "internal error" not in err and "Traceback" not in err
        hits, _ = query_hits(index_dir)
        assert hits


def _fault(name: str) -> Any:
    from reliability_helpers import Fault

    return Fault(fail=name)


# -- a real full disk: a 3 MiB tmpfs, when this machine lets us mount one ----------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.decode().strip()}); the ENOSPC tests above cover it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_disk(small_disk: Path, clips_dir: Path, tiny_clap_dir: Path) -> None:
    index_dir = small_disk / "ix"
    args = ["index", str(clips_dir), "--index", str(index_dir), "--model", str(tiny_clap_dir), "--workers", "0",
            "--batch-size", "2"]
    (clips_dir / "rain.flac").rename(clips_dir.parent / "rain.flac")
    assert CliRunner().invoke(app, args).exit_code == 0
    before = read_state(index_dir)
    filler = small_disk / "filler"
    with open(filler, "wb") as fh:  # fill the disk to the last byte
        try:
            while True:
                fh.write(b"\0" * 65_536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    for i in range(12):
        write_noise(clips_dir / f"extra{i}.wav", 1.0, seed=100 + i)
    (clips_dir.parent / "rain.flac").rename(clips_dir / "rain.flac")
    r = CliRunner().invoke(app, args + ["--json"])
    assert r.exit_code == 12, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("dgsearch:")]
    assert len(errors) == 1 and errors[0].startswith("dgsearch: error: cannot write the "), r.stderr
    assert "full" in errors[0] or "No space left" in errors[0]
    hits, _ = query_hits(index_dir)
    assert {h.path for h in hits} >= set(before.files)
    filler.unlink()
    r = CliRunner().invoke(app, args + ["--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["found"] == 17
    check_faiss(index_dir, read_state(index_dir))
