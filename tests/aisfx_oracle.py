"""What the aisfx tests share: one file of the installed aisfx package loaded on its own (its ``__init__`` would
pull in its pinned, missing dependencies), and a seeded test signal."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

RATE = 44_100
AISFX_INSTALLED = importlib.util.find_spec("aisfx") is not None


def aisfx_module(relative: str) -> ModuleType:
    """One file of the installed aisfx package, loaded on its own (its ``__init__`` is not run)."""
    spec = importlib.util.find_spec("aisfx")
    assert spec is not None and spec.submodule_search_locations
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    module_spec = importlib.util.spec_from_file_location(f"aisfx_oracle_{path.stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def sweep_and_bursts(seconds: float, seed: int = 0) -> np.ndarray:
    """``(S,) float32`` at 44.1 kHz: a seeded mix of a sweep and noise bursts at about -10 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * RATE))) / RATE
    sweep = 0.3 * np.sin(2 * np.pi * (100 * t + 900 * t**2 / max(seconds, 1e-3)))
    bursts = 0.3 * rng.standard_normal(t.shape) * (np.sin(2 * np.pi * 1.5 * t) > 0.6)
    return (sweep + bursts).astype(np.float32)
