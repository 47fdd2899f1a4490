"""``dgsearch info``: what an index holds, where it came from, what failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffgap_search.store.catalog import Catalog


def _disk_usage(index_dir: Path) -> int:
    return sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file())


def index_info(index_dir: Path) -> dict[str, Any]:
    """``{"summary": {...}, "errors": [{"path", "error"}], "meta": {...}}`` of the index at ``index_dir``."""
    with Catalog.open(index_dir) as cat:
        stats = cat.stats()
        meta = cat.all_meta()
        errors = [{"path": f.path, "error": f.error or ""} for f in cat.files(status="error")]
    encoder = meta.get("encoder") or {}
    window = meta.get("window") or {}
    spaces = {k[6:]: v for k, v in meta.items() if k.startswith("faiss.")}
    summary: dict[str, Any] = {
        "index": str(index_dir),
        "files": stats["files"],
        "audio files": stats["by_kind"].get("audio", 0),
        "video files": stats["by_kind"].get("video", 0),
        "videos without soundtrack": stats["video_without_audio"],
        "failed files": stats["failed_files"],
        "segments": stats["segments"],
        "hours of media": round(stats["seconds"] / 3600, 3),
        "model": encoder.get("model", "-"),
        "weights sha256": encoder.get("fingerprint", "-"),
        "dim": encoder.get("dim", "-"),
        "window": f"{window['window_s']:g} s, hop {window['hop_s']:g} s at {window['sample_rate']} Hz" if window else "-",
        "vector spaces": ", ".join(
            f"{name} ({rec['count']} vectors, {rec['kind']}, generation {rec['generation']})"
            for name, rec in sorted(spaces.items())
        ) or "-",
        "size on disk": f"{_disk_usage(index_dir) / 1e6:.2f} MB",
        "schema version": meta.get("schema_version"),
    }
    return {"summary": summary, "errors": errors, "meta": meta}
