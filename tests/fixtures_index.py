"""Pytest fixtures for indexing and search: an encoder loader that counts loads, an indexed clip tree."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from diffgap_search.config import EncoderConfig, IndexingConfig


@dataclass
class CountingLoader:
    """Loads the real (tiny) encoder through ``load_encoder`` and counts loads and embedded windows."""

    loads: int = 0
    windows: int = 0
    configs: list[EncoderConfig] = field(default_factory=list)

    def __call__(self, cfg: EncoderConfig) -> Any:
        from diffgap_search.encoders.loading import load_encoder

        self.loads += 1
        self.configs.append(cfg)
        encoder = load_encoder(cfg, progress=False)
        original = encoder.embed_audio

        def counted(windows: Any) -> Any:
            self.windows += len(windows)
            return original(windows)

        encoder.embed_audio = counted  # type: ignore[method-assign]
        return encoder


@dataclass(frozen=True)
class OnWorkers:
    """A loader of the real (tiny) encoder in the process ``driver``; in any other process (a Ray worker: loaders
    pickle by reference, ``tests/`` is on the workers' path) ``on_worker`` decides what loading does."""

    driver: int

    def __call__(self, cfg: EncoderConfig) -> Any:
        import os

        from diffgap_search.encoders.loading import load_encoder

        return load_encoder(cfg, progress=False) if os.getpid() == self.driver else self.on_worker(cfg)

    def on_worker(self, cfg: EncoderConfig) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class NoModelOnWorkers(OnWorkers):
    """Fails on the workers as a node without the model's files does."""

    def on_worker(self, cfg: EncoderConfig) -> Any:
        from diffgap_search.errors import ModelUnavailableError

        raise ModelUnavailableError(f"model directory '{cfg.model}' does not exist")


@dataclass(frozen=True)
class BrokenEncoderOnWorkers(OnWorkers):
    """On the workers the encoder's ``embed_audio`` raises a plain ValueError, as a bug in an encoder would (not a
    DGSearchError: no exit code of its own)."""

    def on_worker(self, cfg: EncoderConfig) -> Any:
        from diffgap_search.encoders.loading import load_encoder

        encoder = load_encoder(cfg, progress=False)

        def broken(windows: Any) -> Any:
            raise ValueError("this encoder cannot embed here")

        encoder.embed_audio = broken  # type: ignore[method-assign]
        return encoder


@dataclass(frozen=True)
class OtherWeightsOnWorkers(OnWorkers):
    """On the workers the model at ``other`` instead, as a node whose copy of the model folder holds other weights."""

    other: str = ""

    def on_worker(self, cfg: EncoderConfig) -> Any:
        from dataclasses import replace

        from diffgap_search.encoders.loading import load_encoder

        return load_encoder(replace(cfg, model=self.other), progress=False)


@dataclass(frozen=True)
class UnpicklableOnWorkers(OnWorkers):
    """Cannot even be unpickled on the workers, as on a node without diffgap-search (the actor's constructor
    arguments fail to import there)."""

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return _unpickled_on_the_driver_only, (self.driver,)


def _unpickled_on_the_driver_only(driver: int) -> UnpicklableOnWorkers:
    import os

    if os.getpid() != driver:
        raise ModuleNotFoundError("No module named 'diffgap_search'")
    return UnpicklableOnWorkers(driver)


INLINE = IndexingConfig(decode_workers=0)


@pytest.fixture
def loader() -> CountingLoader:
    return CountingLoader()


@pytest.fixture
def tiny_cfg(tiny_clap_dir: Path) -> EncoderConfig:
    return EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8)


@pytest.fixture
def indexed(clips_dir: Path, tmp_path: Path, tiny_cfg: EncoderConfig) -> tuple[Path, Path]:
    """``(clips folder, index folder)`` after one inline indexing run of ``clips_dir``."""
    from diffgap_search.indexing import index_folder

    index_dir = tmp_path / "index"
    index_folder(clips_dir, index_dir, load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    return clips_dir, index_dir


@pytest.fixture
def cli_index(clips_dir: Path, tmp_path: Path, tiny_clap_dir: Path) -> Path:
    """``clips_dir`` indexed by ``dgsearch index`` with the tiny CLAP, decoding inline: ``tmp_path / "ix"``."""
    from cli_runner import dg

    index_dir = tmp_path / "ix"
    r = dg("index", clips_dir, "--index", index_dir, "--model", tiny_clap_dir, "--workers", "0")
    assert r.exit_code == 0, r.output
    return index_dir
