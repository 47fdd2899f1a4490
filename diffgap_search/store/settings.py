"""The settings an index is bound to (window, encoder), recorded in ``meta`` and checked on every use."""

from __future__ import annotations

from typing import Any

from diffgap_search import __version__
from diffgap_search.config import (
    DEFAULT_MODEL,
    Device,
    EncoderConfig,
    EncoderIdentity,
    EncoderRole,
    WindowConfig,
    encoder_role,
)
from diffgap_search.errors import IncompatibleIndexError
from diffgap_search.store.catalog import Catalog


def bind_window(catalog: Catalog, cfg: WindowConfig, where: str) -> WindowConfig:
    """Record ``cfg`` in a new index, or refuse one that differs from what the index was built with.

    The sample rate is the audio encoder's (48 kHz for CLAP, 44.1 kHz for aisfx), so a new index binds its
    window once the encoder is loaded; ``check_window`` checks the user's window and hop before that.
    """
    stored = catalog.get_meta("window")
    wanted = {"window_s": cfg.window_s, "hop_s": cfg.hop_s, "sample_rate": cfg.sample_rate}
    if stored is None:
        catalog.set_meta({"window": wanted, "created_with": __version__})
        return cfg
    check_window(catalog, cfg, where)
    if stored["sample_rate"] != cfg.sample_rate:
        raise IncompatibleIndexError(
            f"index {where} holds audio windows at {stored['sample_rate']} Hz; a model reading "
            f"{cfg.sample_rate} Hz cannot add to it: build a new index with --index"
        )
    return cfg


def check_window(catalog: Catalog, cfg: WindowConfig, where: str) -> WindowConfig | None:
    """The index's recorded window (None for a new index); refuses a ``cfg`` with another window or hop."""
    stored = stored_window(catalog)
    if stored is not None and (stored.window_s, stored.hop_s) != (cfg.window_s, cfg.hop_s):
        raise IncompatibleIndexError(
            f"index {where} was built with {stored.window_s:g} s windows, hop {stored.hop_s:g} s at "
            f"{stored.sample_rate} Hz, not {cfg.window_s:g} s / {cfg.hop_s:g} s: "
            "leave out --window and --hop (a run keeps the index's own), or use another --index"
        )
    return stored


def stored_window(catalog: Catalog) -> WindowConfig | None:
    stored = catalog.get_meta("window")
    return None if stored is None else WindowConfig(**stored)


def stored_encoder(catalog: Catalog, role: str = EncoderRole.AUDIO) -> dict[str, Any] | None:
    """The recorded encoder or None for a new index: ``{"model", "fingerprint", "dim", "sample_rate"}`` and,
    since weights are recorded with their provenance, ``"modalities"`` (what it embeds), ``"source"``
    (``hub``, ``directory``, ``checkpoint`` or ``package``), ``"repo_id"``, ``"revision"`` (as asked) and
    ``"commit"`` (what the revision resolved to)."""
    value = catalog.get_meta(str(role))
    return value if isinstance(value, dict) else None


def space_dim(catalog: Catalog, space: str) -> int | None:
    """D of the vectors of ``space``: its encoder's recorded dimension (``config.encoder_role``); None before
    that encoder is recorded."""
    stored = stored_encoder(catalog, encoder_role(space))
    return None if stored is None else int(stored["dim"])


def stored_encoder_config(catalog: Catalog, *, model: str | None = None, device: str = Device.AUTO,
                          precision: str = EncoderConfig.precision) -> EncoderConfig:
    """The ``EncoderConfig`` that loads the index's own audio encoder: its model at the commit it was built
    from (so a moved branch cannot change the weights under an index), unless ``model`` names another copy;
    with the index's separate text model (``text_model``), if it records one, and the preprocessing versions its
    vectors were made with (``preprocessing``; an encoder able to makes those); ``precision`` as asked."""
    stored = stored_encoder(catalog) or {}
    text_model = (stored_encoder(catalog, EncoderRole.TEXT) or {}).get("model")
    recorded = stored.get("preprocessing")
    versions = (dict(recorded) if isinstance(recorded, dict) else {}) if stored else None  # the index's (1 if unnamed)
    if model is not None and model != stored.get("model"):
        return EncoderConfig(model=model, device=device, text_model=text_model, precision=precision,
                             preprocessing=versions)
    return EncoderConfig(model=stored.get("model", DEFAULT_MODEL), device=device, precision=precision,
                         revision=stored.get("commit") or stored.get("revision"), text_model=text_model,
                         preprocessing=versions)


def embeds(catalog: Catalog, modality: str) -> bool:
    """Whether the index embeds ``modality`` (``"text"``: its audio encoder does, as CLAP, or it records a text
    encoder of its own, as aisfx with ``--text-model``). Indexes recorded before modalities were recorded hold
    CLAP, which embeds both."""
    stored = stored_encoder(catalog) or {}
    if modality == "text" and not text_shares_audio(catalog):
        return True
    return modality in stored.get("modalities", ("audio", "text"))


def text_shares_audio(catalog: Catalog) -> bool:
    """False when the index's words come from a text encoder of their own (``text_encoder``, unrelated to the
    audio space: only a bridge joins them), True otherwise (CLAP: one space)."""
    return stored_encoder(catalog, EncoderRole.TEXT) is None


def spaces_apart_from_audio(catalog: Catalog) -> tuple[str, ...]:
    """The modalities whose raw cosine to audio search never serves on this index although the default says it
    would: ``("text",)`` for words from a text encoder of their own, else ``()`` (``TrainConfig.separate_spaces``)."""
    return () if text_shares_audio(catalog) else ("text",)


def bind_encoder(catalog: Catalog, encoder: EncoderIdentity, where: str, role: str = EncoderRole.AUDIO) -> None:
    """Record the encoder (with its provenance) in a new index, or refuse one whose weights differ or whose
    preprocessing of a space differs from the one that space's vectors were made with (``stale_spaces``).

    ``encoder``: the loaded model's identity (``encoders.base.identity_of``)."""
    stored = stored_encoder(catalog, role)
    if stored is None:
        catalog.set_meta({str(role): encoder.record()})
        return
    if stored["fingerprint"] != encoder.fingerprint:
        flag = "--text-model" if role == EncoderRole.TEXT else "--model"
        raise IncompatibleIndexError(
            f"index {where} was built with {'text ' if role == EncoderRole.TEXT else ''}model {stored['model']!r}"
            f" (weights {stored['fingerprint'][:12]}); "
            f"model {encoder.model!r} has other weights ({encoder.fingerprint[:12]}): use {flag} "
            f"{stored['model']!r}, or build a new index with --index"
        )
    stale = stale_spaces(stored, encoder)
    if stale:
        space, recorded, current = stale[0]
        raise IncompatibleIndexError(
            f"index {where} holds {space} vectors of model {stored['model']!r} made with preprocessing version "
            f"{recorded}; this dgsearch makes version {current} (docs/models.md, 'Preprocessing versions') and "
            f"does not mix the two: re-index that space: build a new index with --index, or delete {where} "
            "and run dgsearch index again"
        )


def stale_spaces(stored: dict[str, Any], encoder: EncoderIdentity) -> list[tuple[str, int, int]]:
    """``(space, recorded version, current version)`` for each space of ``encoder`` whose vectors in the index
    were made by another preprocessing (``EncoderIdentity.preprocessing``; an index recorded before versions
    were has every space at version 1), in the encoder's order of spaces."""
    recorded = stored.get("preprocessing")
    recorded = recorded if isinstance(recorded, dict) else {}
    out = []
    for space in encoder.modalities:
        old, new = int(recorded.get(space, 1)), int(encoder.preprocessing.get(space, 1))
        if old != new:
            out.append((space, old, new))
    return out


def recorded_frames(catalog: Catalog) -> bool | None:
    """Whether the index embeds videos' frames, as its runs chose (``--frames``/``--no-frames``, recorded by
    :func:`bind_frames`). An index from before the choice was recorded: True where a video model is recorded,
    False where it holds videos and no video model (they were indexed as soundtracks only), else None (no
    video seen yet: the default applies)."""
    frames = catalog.get_meta("frames")
    if frames is not None:
        return bool(frames)
    if stored_encoder(catalog, EncoderRole.VIDEO) is not None:
        return True
    videos = catalog.conn.execute("SELECT 1 FROM files WHERE kind = 'video' AND status = 'ok' LIMIT 1").fetchone()
    return False if videos else None


def bind_frames(catalog: Catalog, frames: bool) -> None:
    """Record a run's ``--frames``/``--no-frames`` (written only when it changes), so a later run that names
    neither keeps it."""
    if catalog.get_meta("frames") != frames:
        catalog.set_meta({"frames": frames})
