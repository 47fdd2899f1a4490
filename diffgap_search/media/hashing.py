"""Content hashing of media files (rename detection, weights checksums)."""

from __future__ import annotations

import hashlib
import os

CHUNK_BYTES = 1 << 20  # 1 MiB


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes as 64 lowercase hex digits, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
