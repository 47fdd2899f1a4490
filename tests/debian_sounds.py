"""Described sounds from Debian's archive for the slow tests: ``qabcs-data``'s 241 noises (GPL-3+), each named
by the noun it sounds like (``bagpipes.ogg``, ``excavator.ogg``), fetched at test time and never committed.

``apt-get download`` + ``dpkg -x`` into a cache folder (``$DGSEARCH_DEBS_CACHE``, default
``~/.cache/dgsearch-debs``): no root install; the 34 MB package is downloaded once per machine. Where it cannot
be fetched (no apt, no network) the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

QABCS = "qabcs-data"
NOISES = Path("usr/share/qabcs/abcs/all/noises")


def debs_cache() -> Path:
    return Path(os.environ.get("DGSEARCH_DEBS_CACHE", Path.home() / ".cache" / "dgsearch-debs"))


def unpacked(package: str) -> Path:
    """``<cache>/<package>/``: the package unpacked; skips the test when it cannot be fetched."""
    root = debs_cache() / package
    if (root / ".unpacked").exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip(f"{package} cannot be fetched here: apt-get and dpkg are needed (Debian or Ubuntu)")
    debs = debs_cache() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        got = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True, timeout=600)
        if got.returncode != 0:
            pytest.skip(f"`apt-get download {package}` failed (no network or package list?): {got.stderr.strip()[-300:]}")
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=600)
    (root / ".unpacked").write_text(deb.name)
    return root


def qabcs_noises() -> list[Path]:
    """The 241 noises of qabcs-data, sorted by name."""
    return sorted((unpacked(QABCS) / NOISES).glob("*.ogg"))
