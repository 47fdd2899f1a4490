"""Fetch a model from the Hugging Face hub into the standard Hugging Face cache, or find it there.

Only the files a CLAP model needs are fetched (config, safetensors weights, tokenizer and preprocessor
files: never ``*.bin`` or ``*.pt`` pickles). ``HF_HUB_OFFLINE=1`` means cache only. The cache location,
endpoint and offline switch are huggingface_hub's own (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``). Every failure becomes one ``ModelUnavailableError`` with what to do next.

Imports huggingface_hub lazily; no torch.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diffgap_search.errors import ModelUnavailableError

ALLOW_PATTERNS = [
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
]
LOCAL_COPY_HINT = (
    "pass --model DIR with a local copy (config.json, model.safetensors, tokenizer and preprocessor files)"
)


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, now or when huggingface_hub was imported."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.is_offline_mode() or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


def fetch_snapshot(
    repo_id: str,
    revision: str | None = None,
    *,
    progress: bool = True,
    allow_patterns: Sequence[str] = ALLOW_PATTERNS,
) -> Path:
    """The local snapshot folder of ``repo_id`` at ``revision`` (default branch when None), downloading if needed.

    Cache first: a complete cached snapshot is used without any network call, so a model once fetched
    keeps its weights (and the fingerprint an index was built with) and loads without delay behind a
    slow or blocked network. Otherwise the files matching ``allow_patterns`` are downloaded, with progress
    on stderr (unless ``progress`` is False or ``HF_HUB_DISABLE_PROGRESS_BARS`` is set).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = hub_offline()
    patterns = list(allow_patterns)
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True))
    except LocalEntryNotFoundError as error:  # not cached, or cached only in part
        if offline:
            raise _translate(error, repo_id, revision, offline) from error
    except Exception as error:  # noqa: BLE001 - e.g. an invalid repo id
        raise _translate(error, repo_id, revision, offline) from error
    try:
        folder = snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns, tqdm_class=_progress_class(progress)
        )
    except Exception as error:  # noqa: BLE001 - every failure becomes one user-facing error
        raise _translate(error, repo_id, revision, offline) from error
    return Path(folder)


def _progress_class(progress: bool) -> type:
    """A tqdm class writing to stderr even when it is not a terminal (the hub's own hides bars there)."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from tqdm import tqdm

    disabled = not progress or are_progress_bars_disabled()

    class StderrProgress(tqdm):  # type: ignore[misc, type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = sys.stderr
            kwargs["disable"] = disabled or kwargs.get("disable") is True
            kwargs.setdefault("mininterval", 0.5)
            super().__init__(*args, **kwargs)

    return StderrProgress


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
