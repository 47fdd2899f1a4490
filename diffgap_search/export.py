"""``dgsearch export``: bridged embeddings for an audio generator conditioned on CLAP (or CAVP) embeddings.

DiffGAP's other use in the paper: the bridge turns a text (or video) embedding into the audio-side
embedding a generator conditioned on audio embeddings expects. Three sources of rows, one per call:

- ``texts``: each text embedded with the index's CLAP text tower and bridged text -> audio;
- ``videos``: each video's frames embedded per window (the index's windowing) and bridged video -> audio;
- ``windows`` (``"text"`` or ``"video"``): every stored audio window's bridged counterpart, read from the
  index's bridged space (``audio_as_text`` / ``audio_as_video``: what the bridge generated for it), with its
  segment id, file path and start/end seconds. Nothing is decoded or embedded again.

Written as ``PREFIX.npy`` (``(N, D) float32``, L2-normalised, row i = ``rows[i]``) and ``PREFIX.json`` (the
sidecar: direction, rows, the encoders' and the bridge's fingerprints, the sampler), or as one
``PREFIX.parquet`` (columns of the rows plus ``embedding``: a list of D float32) when pyarrow is installed.
Bridging is deterministic: the same query and bridge give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.atomic_files import write_bytes
from diffgap_search.config import DEFAULT_EXPORT_FORMAT, EncoderRole, ExportFormat, ExportWindows
from diffgap_search.errors import BridgeUnavailableError, InputNotFoundError, UsageError
from diffgap_search.media.discover import exact_path_field
from diffgap_search.store.settings import stored_encoder

if TYPE_CHECKING:
    from diffgap_search.search.searcher import Searcher

FORMATS = tuple(ExportFormat)
WINDOW_SPACES = {ExportWindows.TEXT: "audio_as_text", ExportWindows.VIDEO: "audio_as_video"}
FORMAT_ERROR = f"--format takes {' or '.join(FORMATS)}, got {{!r}}"
WINDOWS_ERROR = "--windows takes text or video, got {!r}"


@dataclass(frozen=True)
class ExportOutcome:
    """What was written: ``files`` (paths), ``count`` rows of ``dim`` floats, ``direction`` (``"text->audio"``)."""

    files: list[str]
    count: int
    dim: int
    direction: str
    bridge: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``dgsearch export --json``)."""
        return asdict(self)


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file (``--text-file``). InputNotFoundError when unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputNotFoundError(f"cannot read queries from {path}: {exc.__class__.__name__}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _choose(texts: Sequence[str], videos: Sequence[Path], windows: ExportWindows | str | None) -> str:
    """Which kind of rows to export: ``text``, ``video`` or ``windows``; UsageError unless exactly one."""
    given = [name for name, on in (("text", bool(texts)), ("video", bool(videos)), ("windows", windows is not None)) if on]
    if len(given) != 1:
        raise UsageError("export one kind of rows: --text/--text-file, --video, or --windows text|video")
    if windows is not None:
        ExportWindows.parse(windows, WINDOWS_ERROR)
    if any(not t.strip() for t in texts):
        raise UsageError("an exported text is empty")
    return given[0]


def _query_rows(searcher: Searcher, texts: Sequence[str],
                videos: Sequence[Path]) -> tuple[np.ndarray, list[dict[str, Any]], str]:
    """Bridged query rows: ``((N, D) float32, rows, direction)``."""
    from diffgap_search.search import Query

    modality = "text" if texts else "video"
    bridge = searcher.bridge_for(modality)
    if bridge is None:
        raise BridgeUnavailableError(
            f"exporting {modality} -> audio embeddings needs a DiffGAP bridge for {modality}: run `dgsearch train`"
        )
    if texts:
        raw = np.concatenate([searcher.embed_query(Query(text=t)) for t in texts])
        rows = [{"id": i, "text": t} for i, t in enumerate(texts)]
    else:
        parts: list[np.ndarray] = []
        rows = []
        for path in videos:
            vecs = searcher.embed_query(Query(video=Path(path)))
            parts.append(vecs)
            rows += [{"id": len(rows) + w, "path": str(path), "window": w} for w in range(len(vecs))]
        raw = np.concatenate(parts)
    return bridge.apply(raw, modality, "audio"), rows, f"{modality}->audio"


def _window_rows(searcher: Searcher, target: ExportWindows) -> tuple[np.ndarray, list[dict[str, Any]], str]:
    """Every stored window's bridged vector of space ``audio_as_<target>``, in segment-id order."""
    catalog, space, bridge = searcher.catalog, WINDOW_SPACES[target], searcher.bridge
    if bridge is None or f"{target.value}|audio" not in {d.value for d in bridge.directions}:
        raise BridgeUnavailableError(f"exporting audio -> {target.value} embeddings needs a DiffGAP bridge for"
                                     f" {target.value}: run `dgsearch train`")
    ids_parts, vec_parts = [], []
    for ids, vecs in catalog.read_vectors(space, dim=bridge.dim):
        ids_parts.append(ids)
        vec_parts.append(vecs)
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int64)
    vectors = np.concatenate(vec_parts) if vec_parts else np.zeros((0, bridge.dim), np.float32)
    hits = catalog.hit_rows(ids.tolist())
    keep = np.array([int(i) in hits for i in ids], dtype=bool)  # windows of files still indexed
    rows = [{"segment_id": int(i), "path": hits[int(i)].path, "kind": hits[int(i)].kind,
             "start_s": hits[int(i)].start_s, "end_s": hits[int(i)].end_s,
             **exact_path_field(hits[int(i)].path, hits[int(i)].path_key)} for i in ids[keep]]
    return vectors[keep], rows, f"audio->{target.value}"


OUTPUT_EXTENSIONS = (".npy", ".json", ".parquet")  # what --out may name besides the prefix


def _write(prefix: Path, vectors: np.ndarray, sidecar: dict[str, Any], fmt: ExportFormat) -> list[str]:
    """Write ``vectors (N, D) float32`` and ``sidecar`` under ``prefix`` in ``fmt``; returns the paths written. A
    prefix given with one of the written extensions (``emb.npy``, ``emb.json``, ``emb.parquet``) loses it, as
    ``numpy.save`` keeps a ``.npy`` name: ``emb.npy`` + ``emb.json``, not ``emb.npy.npy``."""
    if prefix.suffix.lower() in OUTPUT_EXTENSIONS:
        prefix = prefix.with_suffix("")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    if fmt is ExportFormat.PARQUET:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UsageError("--format parquet needs pyarrow (pip install pyarrow); --format npy needs nothing") from None
        rows = sidecar["rows"]
        columns = {k: [r.get(k) for r in rows] for k in dict.fromkeys(k for r in rows for k in r)}
        columns["embedding"] = [v.tolist() for v in vectors]
        table = pa.table(columns).replace_schema_metadata({"diffgap": json.dumps({k: v for k, v in sidecar.items()
                                                                                  if k != "rows"}, sort_keys=True)})
        out = prefix.with_name(prefix.name + ".parquet")
        pq.write_table(table, out)
        return [str(out)]
    npy, side = prefix.with_name(prefix.name + ".npy"), prefix.with_name(prefix.name + ".json")
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32))
    write_bytes(npy, buf.getvalue())
    write_bytes(side, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    return [str(npy), str(side)]


def export_bridged(
    searcher: Searcher,
    out: Path,
    *,
    texts: Sequence[str] = (),
    videos: Sequence[Path] = (),
    windows: ExportWindows | str | None = None,
    fmt: ExportFormat | str = DEFAULT_EXPORT_FORMAT,
) -> ExportOutcome:
    """Bridge the given queries (or every stored window) and write them under the prefix ``out``.

    ``searcher``: an open ``search.Searcher`` on the index (its encoders, its bridge). Exactly one of
    ``texts``, ``videos``, ``windows`` (see the module docstring). Raises UsageError (bad arguments, no
    rows), BridgeUnavailableError (no bridge for that modality, exit 10), QueryNotSupportedError and the
    query errors of ``Searcher.embed_query``.
    """
    file_format = ExportFormat.parse(fmt, FORMAT_ERROR)
    kind = _choose(texts, videos, windows)
    if kind == "windows":
        assert windows is not None
        vectors, rows, direction = _window_rows(searcher, ExportWindows.parse(windows, WINDOWS_ERROR))
    else:
        vectors, rows, direction = _query_rows(searcher, texts, videos)
    if len(rows) == 0:
        raise UsageError(f"nothing to export: index {searcher.index_dir} has no {direction} vectors")
    bridge = searcher.bridge
    assert bridge is not None  # rows were bridged (or read from a bridged space) by it
    encoders = {role.value: {k: v for k, v in (stored_encoder(searcher.catalog, role) or {}).items()
                       if k in ("model", "fingerprint", "commit", "dim")}
                for role in EncoderRole if stored_encoder(searcher.catalog, role)}
    sidecar = {
        "direction": direction, "count": len(rows), "dim": int(vectors.shape[1]), "dtype": "float32",
        "normalised": "L2", "rows": rows, "encoders": encoders,
        "bridge": {"fingerprint": bridge.fingerprint, "encoder_fingerprints": bridge.encoder_fingerprints,
                   "sampler": asdict(bridge.sample)},
    }
    files = _write(Path(out), vectors, sidecar, file_format)
    return ExportOutcome(files, len(rows), int(vectors.shape[1]), direction, bridge.fingerprint)


__all__ = ["ExportOutcome", "export_bridged", "read_lines"]
