"""Shared pytest fixtures. Fixture modules live beside this file, one per stage, and are loaded here."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = [
    "fixtures_media",
    "fixtures_models",
    "fixtures_video",
    "fixtures_index",
    "fixtures_cavp",
    "fixtures_serve",
    "fixtures_ray",
]


@pytest.fixture(autouse=True)
def _torch_threads_kept() -> Iterator[None]:
    """Give torch its intra-op thread count back after each test: a benchmark's ``main`` run in process sets one
    thread (``anchor_rules``), and every later test would run on it (found with lanes' tests, 2026-12-07)."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    if before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)
