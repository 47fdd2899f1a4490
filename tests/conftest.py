"""Shared pytest fixtures. Fixture modules live beside this file, one per stage, and are loaded here."""

from __future__ import annotations

import os

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
