"""The score of a video query on an index whose video encoder is CAVP.

CAVP embeds video windows and sound into one space (``encoders/cavp/encoder.py``), so without a bridge a video
query is the plain cosine of its windows against every window's ``cavp_audio`` vector (a window's score is its
best match over the query's windows, as for audio queries). With a DiffGAP bridge trained in CAVP's space
(``dgsearch train --pairs video``: video windows paired with their soundtracks' ``cavp_audio`` vectors) it is
fused as a text query is: the raw cosine, the bridged query (video -> audio) against ``cavp_audio``, and the
raw query against the windows' bridged ``audio_as_video`` vectors, with the weights the bridge tuned on its
validation pairs (training marks video as sharing the audio space, ``TrainConfig.shared_spaces``, so the raw
term is tuned like text's). A bridge trained before that mark never weighed the raw term: for it the raw
CAVP cosine keeps a fixed third (:data:`LEGACY_RAW_SHARE`) and the bridged terms share the rest in their ratio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.config import CAVP_SPACE

if TYPE_CHECKING:
    from diffgap_search.gap.bridge import Bridge

LEGACY_RAW_SHARE = 1.0 / 3.0  # the raw CAVP cosine's weight with a bridge whose tuning never saw it


def cavp_video_terms(bridge: Bridge | None, qvecs: np.ndarray) -> list[tuple[str, np.ndarray, float]]:
    """``(space, queries (Q, D) float32, weight)`` terms of a video query; weights sum to 1, zeros dropped."""
    if bridge is None:
        return [(CAVP_SPACE, qvecs, 1.0)]
    fusion = bridge.fusion_for("video", "audio")
    if "video" in bridge.shared_spaces:
        total = fusion.w_raw + fusion.w_query_bridged + fusion.w_item_bridged
        w_raw, w_qb, w_ib = (w / total for w in (fusion.w_raw, fusion.w_query_bridged, fusion.w_item_bridged))
    else:
        rest = 1.0 - LEGACY_RAW_SHARE
        bridged = fusion.w_query_bridged + fusion.w_item_bridged
        w_raw = LEGACY_RAW_SHARE
        w_qb, w_ib = rest * fusion.w_query_bridged / bridged, rest * fusion.w_item_bridged / bridged
    terms = [(CAVP_SPACE, qvecs, w_raw)]
    if w_qb > 0:  # DDIM only when its term weighs
        terms.append((CAVP_SPACE, bridge.apply(qvecs, "video", "audio"), w_qb))
    terms.append(("audio_as_video", qvecs, w_ib))
    return [t for t in terms if t[2] > 0]
