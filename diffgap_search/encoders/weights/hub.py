"""Fetch a model from the Hugging Face hub into the standard Hugging Face cache, or find it there.

Only the files a loader needs are fetched, chosen from the repository's listing (``encoders/weights/layout.py``): the
config, one weights format (safetensors where published, else the pickled ``pytorch_model.bin``, read later
with ``weights_only=True``), the preprocessing settings and, for CLAP, the tokenizer. ``HF_HUB_OFFLINE=1``
means cache only. The cache location, endpoint and offline switch are huggingface_hub's own (``HF_HOME``,
``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``). Every failure becomes one ``ModelUnavailableError``
with what to do next.

Imports huggingface_hub lazily; no torch.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from diffgap_search.atomic_files import write_text
from diffgap_search.encoders.weights.progress import DownloadProgress, NoDownloadProgress, tqdm_bridge
from diffgap_search.encoders.weights.fingerprint import file_sha256
from diffgap_search.encoders.weights.layout import ROLE_NAME, Role, choose_weights, missing_in_folder, shard_names, wanted_files
from diffgap_search.errors import ModelUnavailableError

LOCAL_COPY_HINT = "pass --model DIR with a local copy (config.json, the weights, tokenizer and preprocessor files)"
_COMMIT = re.compile(r"[0-9a-f]{40}")
T = TypeVar("T")
_QUIET_BELOW = 1_000_000  # bytes: config and tokenizer files download without a progress line


@dataclass(frozen=True)
class HubSnapshot:
    """A model repository's files at one commit, in the Hugging Face cache.

    ``path``: the snapshot folder (``<cache>/models--owner--name/snapshots/<commit>``); ``revision``: what was
    asked for (None: the default branch); ``commit``: the 40-hex commit it resolved to.
    """

    path: Path
    repo_id: str
    revision: str | None
    commit: str


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, now or when huggingface_hub was imported."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.is_offline_mode() or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


def fetch_model(
    repo_id: str,
    revision: str | None = None,
    *,
    role: Role = "clap",
    progress: DownloadProgress | None = None,
) -> HubSnapshot:
    """The files a ``role`` loader needs from ``repo_id`` at ``revision``, downloading what is not cached.

    Cache first: a cached snapshot that holds everything the loader needs is used without any network call,
    so a model once fetched keeps its weights (and the fingerprint an index was built with) and loads without
    delay behind a slow or blocked network; ``HF_HUB_OFFLINE=1`` means cache only. Otherwise the repository's
    listing decides what to fetch (``layout.wanted_files``: one weights format, safetensors first; never TF,
    Flax or ONNX files), each weights file is checked against the sha256 the hub states for it, and the
    branch or tag is recorded in the cache's ``refs/`` so the next run finds the snapshot offline.
    """
    return cache_first(repo_id, revision, lambda: _cached_snapshot(repo_id, revision, role),
                       lambda: _download(repo_id, revision, role, progress or NoDownloadProgress()))


def cache_first(repo_id: str, revision: str | None, cached: Callable[[], T | None], download: Callable[[], T]) -> T:
    """``cached()`` when it finds what is wanted, else (unless ``HF_HUB_OFFLINE``) ``download()``; every
    failure becomes one user-facing ModelUnavailableError naming the repository and revision."""
    offline = hub_offline()
    try:
        found = cached()
    except Exception as error:  # noqa: BLE001 - e.g. an invalid repo id
        raise _translate(error, repo_id, revision, offline) from error
    if found is not None:
        return found
    if offline:
        raise _translate(LookupError("not cached"), repo_id, revision, offline)
    try:
        return download()
    except ModelUnavailableError:
        raise
    except Exception as error:  # noqa: BLE001 - every failure becomes one user-facing error
        raise _translate(error, repo_id, revision, offline) from error


def _repo_cache(repo_id: str) -> Path:
    from huggingface_hub import constants
    from huggingface_hub.utils import validate_repo_id

    validate_repo_id(repo_id)
    return Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def cached_commit(folder: Path, revision: str | None) -> str | None:
    """The commit a repository's cache ``folder`` records for ``revision`` (a commit id is itself; a branch
    or tag is read from ``refs/``), or None when the cache knows none."""
    wanted = revision or "main"
    if _COMMIT.fullmatch(wanted):
        return wanted
    try:
        commit = (folder / "refs" / wanted).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return commit if _COMMIT.fullmatch(commit) else None


def _cached_snapshot(repo_id: str, revision: str | None, role: Role) -> HubSnapshot | None:
    """The cached snapshot of ``repo_id`` at ``revision`` when it holds all a ``role`` loader needs."""
    folder = _repo_cache(repo_id)
    commit = cached_commit(folder, revision)
    if commit is None:
        return None
    snapshot = folder / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    try:
        if missing_in_folder(snapshot, role):
            return None
    except ModelUnavailableError:
        return None  # a damaged shard index: fetch again
    return HubSnapshot(snapshot, repo_id, revision, commit)


def _download(repo_id: str, revision: str | None, role: Role, progress: DownloadProgress) -> HubSnapshot:
    """Resolve ``revision`` to a commit, then fetch the files ``role`` needs at that commit."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    commit = str(info.sha)
    listing = {s.rfilename: s for s in info.siblings or []}
    try:
        names = wanted_files(listing, role)
    except ModelUnavailableError as error:
        at = f" at revision '{revision}'" if revision else ""
        raise ModelUnavailableError(
            f"model '{repo_id}' on the Hugging Face hub{at} {error}: it cannot be used as a "
            f"{ROLE_NAME[role]}, or {LOCAL_COPY_HINT}"
        ) from None
    folder: Path | None = None
    for name in names:
        path = _fetch_file(repo_id, commit, name, listing.get(name), progress)
        folder = path.parent
    assert folder is not None
    weights = choose_weights(names)
    if weights is not None and weights.sharded:
        for name in shard_names(folder / weights.file):
            _fetch_file(repo_id, commit, name, listing.get(name), progress)
    if revision is None or revision != commit:
        _record_ref(_repo_cache(repo_id), revision or "main", commit)
    return HubSnapshot(folder, repo_id, revision, commit)


def _fetch_file(repo_id: str, commit: str, name: str, sibling: Any, progress: DownloadProgress) -> Path:
    """Download one file at ``commit`` into the cache; a weights file is checked against its stated sha256."""
    from huggingface_hub import hf_hub_download

    size = getattr(sibling, "size", None)
    lfs = getattr(sibling, "lfs", None)
    shown = lfs is not None or (size or 0) >= _QUIET_BELOW
    sink = progress if shown else NoDownloadProgress()
    sink.begin(f"{repo_id}: {name}", size)
    path = Path(hf_hub_download(repo_id, name, revision=commit, tqdm_class=tqdm_bridge(sink)))
    sink.end()
    stated = getattr(lfs, "sha256", None)
    if stated:
        actual = file_sha256(path)
        if actual != stated:
            raise ModelUnavailableError(
                f"the downloaded '{name}' of model '{repo_id}' does not match the sha256 the hub states for it "
                f"({actual[:12]} instead of {stated[:12]}): delete {_repo_cache(repo_id)} and try again"
            )
    return path


def _record_ref(folder: Path, revision: str, commit: str) -> None:
    """Write ``refs/<revision>`` = ``commit`` atomically (the cache's own layout), so the snapshot is found
    offline; a read-only cache only costs a network call next time."""
    ref = folder / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        if ref.is_file() and ref.read_text(encoding="utf-8").strip() == commit:
            return
        write_text(ref, commit)
    except OSError:
        pass


def _translate(error: Exception, repo_id: str, revision: str | None, offline: bool) -> ModelUnavailableError:
    """One ``ModelUnavailableError`` saying what went wrong with ``repo_id`` and what to do."""
    from huggingface_hub import errors as hf_errors

    at = f" (revision '{revision}')" if revision else ""
    name = f"model '{repo_id}'{at}"
    if isinstance(error, hf_errors.GatedRepoError):
        return ModelUnavailableError(
            f"{name} is gated on the Hugging Face hub: accept its terms on the hub and log in "
            f"(`hf auth login`), or {LOCAL_COPY_HINT}"
        )
    if isinstance(error, hf_errors.RepositoryNotFoundError):
        return ModelUnavailableError(
            f"{name} was not found on the Hugging Face hub (or is private): check the id, "
            f"or {LOCAL_COPY_HINT}"
        )
    if isinstance(error, hf_errors.RevisionNotFoundError):
        return ModelUnavailableError(
            f"revision '{revision}' of model '{repo_id}' was not found on the Hugging Face hub"
        )
    if offline:
        return ModelUnavailableError(
            f"{name} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE and "
            f"connect once to download it, or {LOCAL_COPY_HINT}"
        )
    if isinstance(error, hf_errors.HFValidationError):
        return ModelUnavailableError(
            f"'{repo_id}' is neither an existing model directory nor a valid Hugging Face hub id "
            "(like laion/clap-htsat-unfused)"
        )
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS):
        return ModelUnavailableError(f"cannot write {name} into the Hugging Face cache: {error}")
    return ModelUnavailableError(
        f"{name} is not in the Hugging Face cache and could not be downloaded ({_reason(error)}): "
        f"connect once to download it, or {LOCAL_COPY_HINT}"
    )


def _reason(error: BaseException) -> str:
    """A few words on why the hub could not be reached, from the exception chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    chain: list[BaseException] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        text = str(item).lower()
        kind = type(item).__name__
        if "refused" in text:
            return "connection refused"
        if "timeout" in kind.lower() or "timed out" in text:
            return "connection timed out"
        if kind == "ConnectError":
            return "cannot connect to the hub"
        response = getattr(item, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return f"HTTP {status}"
    return type(error).__name__
