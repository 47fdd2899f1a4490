"""Identify model weights: a sha256 digest of the safetensors file(s) and the embedding size from config.json.

The digest is computed by streaming the file in chunks and remembered in a small JSON cache keyed by the
file's real path, size and ``mtime_ns``, so a 600 MB checkpoint is hashed once per machine, not once per
run. The Hugging Face cache's ``blobs/<name>`` file names are *not* trusted as digests: huggingface_hub
2.x names a blob after the server's ``ETag`` (``X-Linked-Etag``) header without verifying it, which is the
LFS sha256 on huggingface.co but can be a git sha1 (non-LFS files) or anything a mirror sends.

Light module: no torch, no transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from diffgap_search.errors import ModelUnavailableError

CACHE_DIR_ENV = "DGSEARCH_CACHE_DIR"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
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
    cache = {k: v for k, v in _read_cache().items() if not k.startswith(f"{real}|")}
    cache[key] = value
    _write_cache(cache)
    return value


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 hex digest identifying the weights of a model folder in the Hugging Face layout.

    One ``model.safetensors``: its sha256. Sharded weights (``model.safetensors.index.json``): the sha256 of
    the lines ``<shard name> <shard sha256>`` sorted by name.
    """
    single = model_dir / WEIGHTS_FILE
    if single.is_file():
        return file_sha256(single)
    index = model_dir / WEIGHTS_INDEX
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        lines = "".join(f"{name} {file_sha256(model_dir / name)}\n" for name in shards)
        return hashlib.sha256(lines.encode("utf-8")).hexdigest()
    raise ModelUnavailableError(f"model directory '{model_dir}' has no {WEIGHTS_FILE}")


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
        fd, tmp = tempfile.mkstemp(prefix=".weights-", suffix=".json", dir=folder)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(cache, handle, indent=0, sort_keys=True)
        os.replace(tmp, folder / _CACHE_NAME)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
