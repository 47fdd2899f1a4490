"""Which indexed windows lack their CAVP vectors: what switching an index to ``--video-model cavp`` must embed;
with ``sound`` off, which videos lack frame vectors: what switching an index from ``--no-frames`` to
``--frames`` must embed (CLIP frames too).

A window needs ``cavp_audio`` when it has an ``audio`` vector (it has sound) and ``video`` when it belongs to a
video file none of whose windows has a ``video`` vector (indexed with ``--no-frames``, or before CAVP; a window
past a video's last frame legitimately has none, and must not be decoded again on every run). Only SQL here
(``store/`` owns it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diffgap_search.store.catalog import Catalog


@dataclass(frozen=True)
class FileGap:
    """An ok file with at least one window lacking a CAVP vector: its segments in order ``(id, start_s, end_s)``
    and the ids missing ``cavp_audio`` / ``video``."""

    file_id: int
    path: Path
    kind: str
    segments: list[tuple[int, float, float]]
    missing_audio: frozenset[int]
    missing_video: frozenset[int]


def cavp_gaps(catalog: Catalog, *, frames: bool, sound: bool = True) -> list[FileGap]:
    """Files (in id order) whose windows lack ``cavp_audio`` (windows with an ``audio`` vector; not asked without
    ``sound``) or, with ``frames``, ``video`` (windows of video files)."""
    import os

    conn = catalog.conn
    missing_audio = {int(r[0]) for r in conn.execute(
        "SELECT a.segment_id FROM vectors a WHERE a.space = 'audio' AND NOT EXISTS"
        " (SELECT 1 FROM vectors c WHERE c.space = 'cavp_audio' AND c.segment_id = a.segment_id)")} if sound else set()
    missing_video: set[int] = set()
    if frames:
        missing_video = {int(r[0]) for r in conn.execute(
            "SELECT s.id FROM segments s JOIN files f ON f.id = s.file_id WHERE f.kind = 'video' AND f.status = 'ok'"
            " AND NOT EXISTS (SELECT 1 FROM segments s2 JOIN vectors v ON v.segment_id = s2.id AND v.space = 'video'"
            " WHERE s2.file_id = f.id)")}
    todo = missing_audio | missing_video
    if not todo:
        return []
    gaps: list[FileGap] = []
    rows = conn.execute(
        "SELECT f.id, f.path_key, f.kind, s.id, s.start_s, s.end_s FROM files f JOIN segments s ON s.file_id = f.id"
        " WHERE f.status = 'ok' ORDER BY f.id, s.seq").fetchall()
    by_file: dict[int, tuple[bytes, str, list[tuple[int, float, float]]]] = {}
    for fid, key, kind, sid, start, end in rows:
        by_file.setdefault(int(fid), (bytes(key), str(kind), []))[2].append((int(sid), float(start), float(end)))
    for fid, (key, kind, segs) in by_file.items():
        ids = {s[0] for s in segs}
        if ids & todo:
            gaps.append(FileGap(fid, Path(os.fsdecode(key)), kind, segs, frozenset(ids & missing_audio),
                                frozenset(ids & missing_video)))
    return gaps
