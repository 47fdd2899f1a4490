"""Identify model weights: the sha256 digest of the weights file(s) as published, and the embedding size.

The digest is computed by streaming the file in chunks and remembered in a small JSON cache keyed by the
file's real path, size and ``mtime_ns``, so a 600 MB checkpoint is hashed once per machine, not once per
run. A weights file fetched from the hub is hashed once, right after its download, and must equal the
sha256 the hub states for it (``encoders/weights/hub.py``). The Hugging Face cache's ``blobs/<name>`` file names are *not*
trusted as digests on their own: huggingface_hub 2.x names a blob after the server's ``ETag``
(``X-Linked-Etag``) header without verifying it, which is the LFS sha256 on huggingface.co but can be a git
sha1 (non-LFS files) or anything a mirror sends.

Light module: no torch, no transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from diffgap_search.atomic_files import write_text
from diffgap_search.encoders.weights.layout import PICKLE, SAFETENSORS, WeightsChoice, choose_weights, folder_names, shard_names
from diffgap_search.errors import ModelUnavailableError

CACHE_DIR_ENV = "DGSEARCH_CACHE_DIR"
_CHUNK = 4 * 1024 * 1024
_CACHE_NAME = "weights-sha256.json"


def cache_dir() -> Path:
    """diffgap-search's own cache folder: ``$DGSEARCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/diffgap-search``."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "diffgap-search"


def file_sha256(path: Path) -> str:
    """sha256 hex digest of one file's bytes, streamed; remembered by (real path, size, mtime_ns)."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = _read_cache()
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    remember_sha256(Path(real), value)
    return value


def weights_fingerprint(model_dir: Path, weights: WeightsChoice | None = None) -> str:
    """sha256 hex digest identifying the weights of a model folder, as published.

    One weights file (``model.safetensors`` or ``pytorch_model.bin``): its sha256. Sharded weights: the sha256
    of the lines ``<shard name> <shard sha256>`` sorted by name. ``weights`` defaults to the folder's choice
    (safetensors first, see ``layout.choose_weights``).
    """
    weights = weights or choose_weights(folder_names(model_dir))
    if weights is None:
        raise ModelUnavailableError(f"model directory '{model_dir}' has no weights ({SAFETENSORS} or {PICKLE})")
    if not weights.sharded:
        return file_sha256(model_dir / weights.file)
    lines = "".join(f"{name} {file_sha256(model_dir / name)}\n" for name in shard_names(model_dir / weights.file))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def remember_sha256(path: Path, digest: str) -> None:
    """Record ``digest`` as the sha256 of ``path`` as it is now (size, mtime), so it is never hashed again."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    cache = {k: v for k, v in _read_cache().items() if not k.startswith(f"{real}|")}
    cache[f"{real}|{stat.st_size}|{stat.st_mtime_ns}"] = digest
    _write_cache(cache)


def config_dim(model_dir: Path) -> int:
    """D, the joint embedding size, read from ``config.json`` (``projection_dim``; 512 for LAION-CLAP)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return int(config.get("projection_dim", 512))


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads((cache_dir() / _CACHE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_cache(cache: dict[str, str]) -> None:
    """Atomically replace the cache file; a read-only or full disk only costs a re-hash next time."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / _CACHE_NAME, json.dumps(cache, indent=0, sort_keys=True))
    except OSError:
        pass
