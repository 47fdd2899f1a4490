"""Reading two indexes for ``--engine ray`` tests: everything but row ids, so a local and a Ray build compare."""

from __future__ import annotations

import gc
import json
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from diffgap_search.cli.app import app

VEC_ATOL = 1e-5  # the bound for the same window embedded by two engines


def dump(index_dir: Path) -> dict[str, Any]:
    """Per file path: its row (status, sha256, duration, has_audio, error), windows, vectors by space,
    captions, tags and stream facts; row ids left out (the engines commit in different orders)."""
    conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        out: dict[str, Any] = {}
        for f in conn.execute("SELECT * FROM files ORDER BY path"):
            fid = f["id"]
            segs = conn.execute("SELECT id, seq, start_s, end_s FROM segments WHERE file_id = ? ORDER BY seq", (fid,)).fetchall()
            vectors: dict[tuple[int, str], np.ndarray] = {}
            for s in segs:
                for v in conn.execute("SELECT space, vector FROM vectors WHERE segment_id = ?", (s["id"],)):
                    vectors[(s["seq"], v["space"])] = np.frombuffer(v["vector"], dtype="<f4")
            out[f["path"]] = {
                "row": (f["status"], f["sha256"], f["duration_s"], f["has_audio"], f["error"]),
                "windows": [(s["seq"], s["start_s"], s["end_s"]) for s in segs],
                "vectors": vectors,
                "captions": sorted(r[0] for r in conn.execute("SELECT text FROM captions WHERE file_id = ?", (fid,))),
                "tags": sorted(tuple(r) for r in conn.execute("SELECT key, value FROM tags WHERE file_id = ?", (fid,))),
                "info": [tuple(r) for r in conn.execute("SELECT sample_rate, channels FROM file_info WHERE file_id = ?", (fid,))],
            }
        return out
    finally:
        conn.close()


def committed_paths(index_dir: Path) -> set[str]:
    """The paths of the files committed ``ok`` now (one read: a consistent snapshot, even mid-run)."""
    conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        return {r[0] for r in conn.execute("SELECT path FROM files WHERE status = 'ok'")}
    finally:
        conn.close()


def committed_count(index_dir: Path) -> int:
    """Files committed ``ok`` in the index's catalog, read-only (0 when there is no readable catalog yet)."""
    try:
        conn = sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT count(*) FROM files WHERE status = 'ok'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def ray_left_alone() -> list[str]:
    """What of Ray a run left in this process once its frames are collected: "initialized" while it is joined
    (a Ray Data iterator left open finishes when collected, and calls Ray then: Ray joins ``RAY_ADDRESS`` or
    starts a runtime by itself; seen as the next test's "ray.init twice"), and the name of each Ray Data
    executor thread still alive. [] when none."""
    gc.collect()
    ray = sys.modules.get("ray")  # not imported: nothing of it can be left
    left = ["initialized"] if ray is not None and ray.is_initialized() else []
    return left + sorted(t.name for t in threading.enumerate() if t.name.startswith("StreamingExecutor"))


def assert_same_index(a: Path, b: Path) -> None:
    """``a`` and ``b`` hold the same files, windows, captions, tags and vectors (within ``VEC_ATOL``)."""
    da, db = dump(a), dump(b)
    assert sorted(da) == sorted(db)
    for path in da:
        fa, fb = da[path], db[path]
        for key in ("row", "windows", "captions", "tags", "info"):
            assert fa[key] == fb[key], (path, key)
        assert sorted(fa["vectors"]) == sorted(fb["vectors"]), path
        for key, vec in fa["vectors"].items():
            np.testing.assert_allclose(fb["vectors"][key], vec, rtol=0, atol=VEC_ATOL, err_msg=f"{path} {key}")


def query_hits(index_dir: Path, *args: str) -> list[tuple[str, float, float, float]]:
    """``dgsearch query ARGS --json``'s hits as ``(path, start_s, end_s, score to 4 places)``."""
    r = CliRunner().invoke(app, ["query", *args, "--index", str(index_dir), "--json", "-k", "50"])
    assert r.exit_code == 0, r.output
    return [(h["path"], h["start_s"], h["end_s"], round(h["score"], 4)) for h in json.loads(r.stdout)["hits"]]
