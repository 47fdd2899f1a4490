"""The weighted cosine terms a query is scored by: one plain term without a bridge; with a DiffGAP bridge,
the fusion the bridge tuned on its validation pairs (``gap/fusion.py``).

Text -> audio with a bridge fuses three cosines: the bridged query (text -> audio) against the audio
windows, the raw query against the windows' bridged text-side vectors (``audio_as_text``), and the raw query
against the audio windows (CLAP's text and audio share a space). Video -> audio on a CLIP index goes
through the bridge only (the raw spaces are unrelated); on a CAVP index see ``search/cavp.py``. Audio ->
audio is one plain cosine term.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.search.cavp import cavp_video_terms
from diffgap_search.search.types import SearchTerm

if TYPE_CHECKING:
    from diffgap_search.gap.bridge import Bridge
    from diffgap_search.gap.served_bridge import ServedBridge


def bridge_for(bridge: Bridge | ServedBridge | None, modality: str) -> Bridge | ServedBridge | None:
    """``bridge`` when it can turn ``modality`` queries into audio-side vectors, else None."""
    if modality == "audio" or bridge is None:
        return None
    if f"audio|{modality}" not in {d.value for d in bridge.directions}:
        return None
    return bridge


def query_terms(modality: str, qvecs: np.ndarray, bridge: Bridge | ServedBridge | None, *, cavp_video: bool,
                text_shares_audio: bool = True) -> list[SearchTerm]:
    """The terms of a query of ``modality`` with vectors ``qvecs (Q, D) float32`` (one term without a
    usable bridge); ``cavp_video``: the index's video encoder is CAVP; ``text_shares_audio`` False: the
    index's words come from a text encoder of their own (``--text-model``), so the raw text-audio cosine is
    no term. Zero-weight terms are dropped."""
    usable = bridge_for(bridge, modality)
    if modality == "video" and cavp_video:
        return [SearchTerm(space, q, w) for space, q, w in cavp_video_terms(usable, qvecs)]
    if usable is None:
        return [SearchTerm("audio", qvecs, 1.0)]
    fusion = usable.fusion_for(modality, "audio")
    bridged = usable.apply(qvecs, modality, "audio")
    terms = [SearchTerm("audio", bridged, fusion.w_query_bridged),
             SearchTerm(f"audio_as_{modality}", qvecs, fusion.w_item_bridged)]
    if modality == "text" and text_shares_audio and fusion.w_raw > 0:  # CLAP's text and audio share a space; video's does not
        terms.append(SearchTerm("audio", qvecs, fusion.w_raw))
    served = [t for t in terms if t.weight > 0]
    return served or [SearchTerm("audio", bridged, 1.0)]  # only the dropped raw term was weighted: the bridged query
