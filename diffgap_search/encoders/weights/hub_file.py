"""Fetch one named file of a Hugging Face repository (a checkpoint that is not a transformers model folder),
with ``encoders/weights/hub.py``'s rules: cache first (a cached snapshot that holds the file needs no network call),
``HF_HUB_OFFLINE=1`` means cache only, the download is checked against the sha256 the hub states for it, the
branch is recorded in the cache's ``refs/``, and every failure is one ``ModelUnavailableError``.

Imports huggingface_hub lazily; no torch.
"""

from __future__ import annotations

from pathlib import Path

from diffgap_search.encoders.weights.progress import (
    DownloadProgress,
    NoDownloadProgress,
)
from diffgap_search.encoders.weights.hub import (
    HubSnapshot,
    _fetch_file,
    _record_ref,
    _repo_cache,
    cache_first,
    cached_commit,
)
from diffgap_search.errors import ModelUnavailableError


def fetch_hub_file(repo_id: str, filename: str, revision: str | None = None, *,
                   progress: DownloadProgress | None = None) -> tuple[Path, HubSnapshot]:
    """``(local path of filename, the snapshot it belongs to)`` for ``repo_id`` at ``revision``."""
    return cache_first(repo_id, revision, lambda: _cached(repo_id, filename, revision),
                       lambda: _download(repo_id, filename, revision, progress or NoDownloadProgress()))


def _cached(repo_id: str, filename: str, revision: str | None) -> tuple[Path, HubSnapshot] | None:
    folder = _repo_cache(repo_id)
    commit = cached_commit(folder, revision)
    if commit is None:
        return None
    snapshot = folder / "snapshots" / commit
    path = snapshot / filename
    if not path.is_file():
        return None
    return path, HubSnapshot(snapshot, repo_id, revision, commit)


def _download(repo_id: str, filename: str, revision: str | None,
              progress: DownloadProgress) -> tuple[Path, HubSnapshot]:
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    commit = str(info.sha)
    listing = {s.rfilename: s for s in info.siblings or []}
    if filename not in listing:
        at = f" at revision '{revision}'" if revision else ""
        raise ModelUnavailableError(
            f"model '{repo_id}' on the Hugging Face hub{at} has no file '{filename}': check the repository, or "
            "pass the checkpoint file's local path"
        )
    path = _fetch_file(repo_id, commit, filename, listing[filename], progress)
    if revision is None or revision != commit:
        _record_ref(_repo_cache(repo_id), revision or "main", commit)
    snapshot = path
    for _ in Path(filename).parts:
        snapshot = snapshot.parent
    return path, HubSnapshot(snapshot, repo_id, revision, commit)
