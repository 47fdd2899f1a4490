"""Search filters: which files a search may return (``--duration``, ``--sample-rate``, ``--channels``,
``--folder``, ``--tag``, ``--label``, ``--kind``, ``--glob``), decided before ranking so ``k`` hits come back whenever ``k`` files
pass (``search/searcher.py`` decides them once per query, for every ranking)."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.config import SearchConfig
from diffgap_search.errors import InputNotFoundError, UsageError
from diffgap_search.search.file_filter import Allowed, FileFilter, glob_match
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.filters import IdProbe, file_id_range, filtered_file_ids, filtered_files
from diffgap_search.store.labels import fold


# Files a filter may keep and still be listed (their windows then scored exactly, up to scoring's
# EXACT_FILTER_SEGMENTS = 20,000: more files hold more windows); past it the filter is asked about candidates.
# Whether more pass is estimated from the first PROBE_FILES + 1 found (the probe stops there).
LISTED_FILES = 20_000
PROBE_FILES = 2_000
MAX_TAG_TEXT = 1000  # longer than any tag a file holds; SQLite refuses LIKE patterns past 50,000 bytes


def filters_active(cfg: SearchConfig) -> bool:
    return any(v is not None for v in (cfg.kind, cfg.path_glob, cfg.duration_min, cfg.duration_max,
                                       cfg.sample_rate, cfg.channels, cfg.folder, cfg.tag, cfg.label))


def allowed_file_ids(catalog: Catalog, cfg: SearchConfig, *, may_ask: bool = False) -> Allowed:
    """The files that pass ``cfg``'s filters: None when it sets none (every file passes), else their ids; with
    ``may_ask`` (every search), a :class:`~diffgap_search.search.file_filter.FileFilter` instead when more than
    :data:`LISTED_FILES` are estimated to pass from the first :data:`PROBE_FILES` + 1 found (SQLite stops there):
    the rankings then ask about their candidates' files (``search/file_filter.py``). At 10^6 files listing a broad
    filter's files took 190-1,330 ms of a search that takes 7 ms unfiltered (``benchmarks/bench_filters.py``).

    ``cfg.folder`` is a folder on disk (files anywhere below it), or, when no such folder exists and it
    has no ``/``, a folder name (files with a folder of that exact name above them); otherwise
    InputNotFoundError.
    """
    if not filters_active(cfg):
        return None
    folder_key: bytes | None = None
    folder_name: str | None = None
    if cfg.folder is not None:
        folder = Path(os.path.abspath(cfg.folder))
        if not folder.is_dir() and Path(unicodedata.normalize("NFD", str(folder))).is_dir():
            folder = Path(unicodedata.normalize("NFD", str(folder)))  # typed NFC, written NFD by macOS's HFS+
        if folder.is_dir():
            folder_key = os.fsencode(str(folder)).rstrip(b"/") + b"/"
        elif "/" not in cfg.folder.strip("/") and cfg.folder.strip("/"):
            folder_name = cfg.folder.strip("/")
        else:
            raise InputNotFoundError(f"--folder {cfg.folder}: no such folder")
    tag_key, tag_text = parse_tag(cfg.tag) if cfg.tag is not None else (None, None)
    conditions: dict[str, Any] = dict(
        kind=cfg.kind, duration_min=cfg.duration_min, duration_max=cfg.duration_max, sample_rate=cfg.sample_rate,
        channels=cfg.channels, folder_key=folder_key, folder_name=folder_name, tag_key=tag_key, tag_text=tag_text,
        label_folded=fold(cfg.label) if cfg.label is not None else None)
    if not may_ask:
        if cfg.path_glob is None:  # the ids alone: no path read
            return set(filtered_file_ids(catalog, **conditions).tolist())
        return {i for i, p in filtered_files(catalog, **conditions) if glob_match(p, cfg.path_glob)}
    if cfg.path_glob is None:
        probe = IdProbe(catalog, PROBE_FILES, **conditions)
        if len(probe.first) > PROBE_FILES and _passing_estimate(catalog, probe.first) > LISTED_FILES:
            probe.close()
            return FileFilter(catalog, conditions, None)
        return set(probe.rest().tolist())
    rows, found = filtered_files(catalog, **conditions), []
    for i, p in rows:  # the paths read only as far as the probe, unless the filter is listed
        if glob_match(p, cfg.path_glob):
            found.append(i)
            if len(found) > PROBE_FILES:
                break
    if len(found) > PROBE_FILES and _passing_estimate(catalog, np.array(found, dtype=np.int64)) > LISTED_FILES:
        rows.close()
        return FileFilter(catalog, conditions, cfg.path_glob)
    return set(found) | {i for i, p in rows if glob_match(p, cfg.path_glob)}


def _passing_estimate(catalog: Catalog, first: np.ndarray) -> float:
    """How many files pass, from the first ones a probe found: most conditions are met scanning the files (or their
    tags) in id order, so the share of the id range scanned to find them scales their number. Where the scan follows
    another order (a folder path: the path index) the estimate is low, and the filter is listed, as it was always."""
    lo, hi = file_id_range(catalog)
    scanned = max(int(first.max()) - lo + 1, 1)
    return len(first) * (hi - lo + 1) / scanned


def parse_range(text: str, what: str = "--duration") -> tuple[float | None, float | None]:
    """``"MIN..MAX"``, ``"MIN.."``, ``"..MAX"`` (seconds) -> ``(min, max)``; UsageError otherwise."""
    lo, sep, hi = text.partition("..")
    try:
        if not sep:
            raise ValueError
        low = float(lo) if lo.strip() else None
        high = float(hi) if hi.strip() else None
    except ValueError:
        raise UsageError(f"{what} takes MIN..MAX, MIN.. or ..MAX in seconds (e.g. 0.5..3), not {text!r}") from None
    if low is None and high is None:
        raise UsageError(f"{what} needs a bound: MIN..MAX, MIN.. or ..MAX, not {text!r}")
    if low is not None and high is not None and low > high:
        raise UsageError(f"{what} {text}: the minimum is above the maximum")
    return low, high


def parse_tag(text: str) -> tuple[str | None, str]:
    """``"TEXT"`` -> ``(None, "TEXT")`` (any tag), ``"KEY=TEXT"`` -> ``("KEY", "TEXT")``; UsageError when
    the text to look for is empty."""
    key, sep, value = text.partition("=")
    if not sep:
        key, value = "", text
    if not value.strip() or (sep and not key.strip()):
        raise UsageError(f"--tag takes TEXT or KEY=TEXT (e.g. genre=foley), not {text!r}")
    if len(value.strip()) > MAX_TAG_TEXT:
        raise UsageError(f"--tag looks for at most {MAX_TAG_TEXT} characters, not {len(value.strip())}")
    return (key.strip() or None), value.strip()
