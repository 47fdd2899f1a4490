"""The settings an index is bound to (window, encoder), recorded in ``meta`` and checked on every use."""

from __future__ import annotations

from typing import Any

from diffgap_search import __version__
from diffgap_search.config import WindowConfig
from diffgap_search.encoders.base import Encoder
from diffgap_search.errors import IncompatibleIndexError
from diffgap_search.store.catalog import Catalog


def bind_window(catalog: Catalog, cfg: WindowConfig, where: str) -> WindowConfig:
    """Record ``cfg`` in a new index, or refuse one that differs from what the index was built with."""
    stored = catalog.get_meta("window")
    wanted = {"window_s": cfg.window_s, "hop_s": cfg.hop_s, "sample_rate": cfg.sample_rate}
    if stored is None:
        catalog.set_meta({"window": wanted, "created_with": __version__})
        return cfg
    if stored != wanted:
        raise IncompatibleIndexError(
            f"index {where} was built with {stored['window_s']:g} s windows, hop {stored['hop_s']:g} s at "
            f"{stored['sample_rate']} Hz, not {cfg.window_s:g} s / {cfg.hop_s:g} s at {cfg.sample_rate} Hz: "
            "pass the same --window/--hop, or use another --index"
        )
    return cfg


def stored_window(catalog: Catalog) -> WindowConfig | None:
    stored = catalog.get_meta("window")
    return None if stored is None else WindowConfig(**stored)


def stored_encoder(catalog: Catalog, role: str = "encoder") -> dict[str, Any] | None:
    """The recorded encoder (``{"model", "fingerprint", "dim", "sample_rate"}``) or None for a new index."""
    value = catalog.get_meta(role)
    return value if isinstance(value, dict) else None


def bind_encoder(catalog: Catalog, encoder: Encoder, where: str, role: str = "encoder") -> None:
    """Record the encoder in a new index, or refuse one whose weights differ from the index's."""
    stored = stored_encoder(catalog, role)
    if stored is None:
        catalog.set_meta({role: {"model": encoder.model_id, "fingerprint": encoder.fingerprint,
                                 "dim": encoder.dim, "sample_rate": getattr(encoder, "sample_rate", None)}})
        return
    if stored["fingerprint"] != encoder.fingerprint:
        raise IncompatibleIndexError(
            f"index {where} was built with model {stored['model']!r} (weights {stored['fingerprint'][:12]}); "
            f"model {encoder.model_id!r} has other weights ({encoder.fingerprint[:12]}): use --model "
            f"{stored['model']!r}, or build a new index with --index"
        )
