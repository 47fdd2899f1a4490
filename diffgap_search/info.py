"""``dgsearch info``: what an index holds, where it came from, what failed."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from diffgap_search.gap.directions import describe_scales
from diffgap_search.media.discover import display_path
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.labels import label_counts
from diffgap_search.store.tags import TagStats, tag_stats


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be indexed, and why."""

    path: str
    error: str


@dataclass(frozen=True)
class IndexInfo:
    """What ``dgsearch info`` shows: ``summary`` (label -> value, in display order), the ``errors`` (files that
    failed), the catalog's ``meta`` values (key -> JSON value) and how the files are ``tags``-ged."""

    summary: dict[str, Any]
    errors: list[FailedFile]
    meta: dict[str, Any]
    tags: TagStats

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``dgsearch info --json``, ``GET /api/info``)."""
        return {"summary": self.summary, "errors": [asdict(e) for e in self.errors], "meta": self.meta,
                "tags": asdict(self.tags)}


def _disk_usage(index_dir: Path) -> int:
    return sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file())


def _text(record: dict[str, Any]) -> str:
    """A separate text model (``--text-model``): name, version and weights, or ``-`` (none, or CLAP's own)."""
    if not record:
        return "-"
    version = record.get("package_version")
    return f"{record['model']}{' ' + version if version else ''} (weights {record['fingerprint'][:12]})"


def _source(encoder: dict[str, Any]) -> str:
    """Where the weights came from: ``hub laion/clap-htsat-unfused, revision main, commit 1a2b…``, a local
    directory, a checkpoint file or a package (indexes from before provenance was recorded: ``-``)."""
    source = encoder.get("source")
    if source is None:
        return "-"
    if source != "hub":
        return str(source)
    return (f"hub {encoder.get('repo_id')}, revision {encoder.get('revision') or 'default branch'}, "
            f"commit {encoder.get('commit')}")


def _precision(encoder: dict[str, Any]) -> str:
    """The precision paths ``--precision auto`` chose for the index's model on this machine (remembered by its
    probe, ``encoders/precision.py``), or that it has not run here yet; ``-`` for a model without paths."""
    from diffgap_search.encoders.precision import remembered_paths

    if not encoder:
        return "-"
    chosen = remembered_paths(str(encoder.get("fingerprint")))
    if not chosen:
        return "auto: not probed on this machine yet (the first index or query run does)"
    return "; ".join(f"{where}: {path}" for where, path in chosen.items())


def _video(encoder: dict[str, Any], frames: bool | None) -> str:
    """The video model recorded, and where the index's runs chose ``--no-frames`` (``frames`` False), that
    videos are indexed by their soundtracks only."""
    if not encoder:
        return "- (videos by their soundtracks only: --no-frames)" if frames is False else "-"
    at = f" (commit {encoder['commit']})" if encoder.get("commit") else ""
    off = "; new videos by their soundtracks only (--no-frames)" if frames is False else ""
    return f"{encoder.get('model')}{at}, weights sha256 {encoder.get('fingerprint')}{off}"


LINEAR_NAMES = {"ridge": "ridge", "procrustes": "Procrustes"}


def task_anchor(anchors: dict[str, str], task: str) -> str:
    """The linear map under a task's pair set: ``task_anchor({"audio-text": "procrustes"}, "text->audio")`` ->
    ``"procrustes"``; ``"ridge"`` where the bridge recorded none (bridges before the anchor choice)."""
    return anchors.get("audio-" + next((m for m in task.split("->") if m != "audio"), "audio"), "ridge")


def _bridge(record: dict[str, Any]) -> str:
    """The DiffGAP bridge and what validation chose for it: epoch kept, the anchor where it is not ridge (``anchored
    audio-text on Procrustes``), residual scale per direction and role (0 = the anchor map alone), validation
    served R@1 beside the anchor + fusion's. ``-`` without a bridge."""
    if not record:
        return "-"
    text = f"{record['fingerprint'][:12]} ({', '.join(record.get('directions', []))})"
    chosen = record.get("chosen") or {}
    if not chosen:
        return text + "; trained before validation chose its checkpoint and residual scale"
    scales = chosen.get("residual_scale", {})
    alphas = describe_scales(scales, chosen.get("residual_scale_items", scales)) if scales else "1"
    counterparts = chosen.get("counterparts_served_R@1", {})
    anchors = chosen.get("anchor") or {}

    def beside(task: str) -> str:
        kind = task_anchor(anchors, task)
        figure = counterparts.get(kind, {}).get(task)
        return f" ({LINEAR_NAMES[kind]} + fusion {figure:.1f})" if figure is not None else ""

    served = "; ".join(f"{k} {v:.1f}{beside(k)}" for k, v in chosen.get("served_R@1", {}).items() if v is not None)
    anchored = [f"{name} on {LINEAR_NAMES[kind]}" for name, kind in anchors.items() if kind != "ridge"]
    shares = chosen.get("confirmation") or {}
    confirm = (f"; residual confirmed in {', '.join(f'{k} {100 * v:.0f} %' for k, v in sorted(shares.items()))} "
               "of resamples (90 % needed)") if shares else ""
    anchor = f", anchored {', '.join(anchored)}" if anchored else ""
    return (f"{text}; chosen on validation: epoch {chosen.get('epoch')} of {chosen.get('epochs_run')}{anchor}, "
            f"residual scale {alphas}; validation served R@1 {served or '-'}{confirm}")


def _space(name: str, rec: dict[str, Any]) -> str:
    """``audio (12000 vectors, opq64_ivf256_pq64, 93 B/vector, budget 3145 MB, generation 2)``: the FAISS
    file's type, its bytes per vector on disk (the file's size, plus a compressed index's on-disk lists, over
    the count: about the memory it takes once loaded, the lists memory-mapped) and the memory budget it was
    chosen under (``budget -`` for a space published before budgets)."""
    size = (rec.get("size") or 0) + (rec.get("data_size") or 0)
    per = f"{size / rec['count']:.0f} B/vector" if rec.get("count") and size else "- B/vector"
    budget = f"{rec['budget_mb']:g} MB" if rec.get("budget_mb") is not None else "-"
    return f"{name} ({rec['count']} vectors, {rec['kind']}, {per}, budget {budget}, generation {rec['generation']})"


def library_folder(bounds: tuple[str, str] | None) -> str:
    """The deepest folder holding every indexed file, from ``Catalog.path_bounds`` (the first and last path in
    byte order share what all share): ``("/sfx/a/x.wav", "/sfx/b/y.wav")`` -> ``"/sfx"``; one file -> its folder;
    files with no common folder but the root -> ``"/"``; ``"-"`` for an empty index."""
    if bounds is None:
        return "-"
    first, last = bounds
    common = first if first == last else os.path.commonprefix([first, last])
    return common[: common.rfind("/")] or "/"  # back to the last whole folder name


def index_info(index_dir: Path) -> IndexInfo:
    """What the index at ``index_dir`` holds (:class:`IndexInfo`)."""
    with Catalog.open(index_dir) as cat:
        stats = cat.stats()
        bounds = cat.path_bounds()
        meta = cat.all_meta()
        errors = [FailedFile(f.path, f.error or "") for f in cat.files(status="error")]
        tags = tag_stats(cat)
        labels = label_counts(cat)
    encoder = meta.get("encoder") or {}
    window = meta.get("window") or {}
    spaces = {k[6:]: v for k, v in meta.items() if k.startswith("faiss.")}
    summary: dict[str, Any] = {
        "index": str(index_dir),
        "library folder": library_folder(bounds),
        "files": stats["files"],
        "audio files": stats["by_kind"].get("audio", 0),
        "video files": stats["by_kind"].get("video", 0),
        "videos without soundtrack": stats["video_without_audio"],
        "failed files": stats["failed_files"],
        "segments": stats["segments"],
        "hours of media": round(stats["seconds"] / 3600, 3),
        "model": encoder.get("model", "-"),
        "model source": _source(encoder),
        "weights sha256": encoder.get("fingerprint", "-"),
        "embeds": ", ".join(encoder.get("modalities", ("audio", "text"))) if encoder else "-",
        "dim": encoder.get("dim", "-"),
        "precision path": _precision(encoder),
        "text model": _text(meta.get("text_encoder") or {}),
        "video model": _video(meta.get("video_encoder") or {}, meta.get("frames")),
        "window": f"{window['window_s']:g} s, hop {window['hop_s']:g} s at {window['sample_rate']} Hz" if window else "-",
        "vector spaces": ", ".join(_space(name, rec) for name, rec in sorted(spaces.items())) or "-",
        "tags": (f"{tags.files_with_tags} files tagged: "
                 + ", ".join(f"{key} {n}" for key, n in tags.by_key.items())) if tags.by_key else "none",
        "labels": ", ".join(f"{c.label} {c.files}" for c in labels[:10]) + (
            f" and {len(labels) - 10} more (dgsearch labels)" if len(labels) > 10 else "") if labels else "none",
        "bridge": _bridge(meta.get("bridge") or {}),
        "size on disk": f"{_disk_usage(index_dir) / 1e6:.2f} MB",
        "schema version": meta.get("schema_version"),
    }
    return IndexInfo(summary, errors, meta, tags)


@dataclass(frozen=True)
class GoneFromDisk:
    """Indexed files no longer on disk, by what is gone on their way: ``gone`` (the display path of the first folder
    on their path that no longer exists, or of the file itself when its folder is still there), ``folder`` (whether
    ``gone`` is a folder) and the ``paths`` of the indexed files it took (failed ones included), in path order."""

    gone: str
    folder: bool
    paths: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"gone": self.gone, "folder": self.folder, "files": len(self.paths), "paths": self.paths}


@dataclass(frozen=True)
class MissingReport:
    """``dgsearch info --missing``: of the index's ``files`` (rows, failed ones included), those gone from disk,
    grouped (:class:`GoneFromDisk`), most files first."""

    index: str
    files: int
    groups: list[GoneFromDisk]

    @property
    def missing(self) -> int:
        return sum(len(g.paths) for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "files": self.files, "missing": self.missing,
                "gone": [g.to_dict() for g in self.groups]}


def missing_files(index_dir: Path) -> MissingReport:
    """Which indexed files are no longer on disk (one ``lstat`` per file, one per folder above a missing file):
    a drive not mounted, a folder deleted or moved, files deleted since the last run of their library folder."""
    with Catalog.open(index_dir) as cat:
        rows = cat.files()
    folder_there: dict[bytes, bool] = {}

    def there(folder: bytes) -> bool:
        if folder not in folder_there:
            folder_there[folder] = os.path.lexists(os.fsdecode(folder))
        return folder_there[folder]

    gone: dict[bytes, tuple[bool, list[str]]] = {}
    for row in rows:
        if os.path.lexists(os.fsdecode(row.path_key)):
            continue
        top, parent = row.path_key, os.path.dirname(row.path_key)
        while parent not in (b"/", b"") and not there(parent):
            top, parent = parent, os.path.dirname(parent)
        gone.setdefault(top, (top != row.path_key, []))[1].append(row.path)
    groups = [GoneFromDisk(display_path(key), folder, paths) for key, (folder, paths) in gone.items()]
    groups.sort(key=lambda g: (-len(g.paths), g.gone))
    return MissingReport(str(index_dir), len(rows), groups)
