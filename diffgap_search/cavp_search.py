"""The score of a video query on an index whose video encoder is CAVP.

CAVP embeds video windows and sound into one space (``encoders/cavp_encoder.py``), so without a bridge a video
query is the plain cosine of its windows against every window's ``cavp_audio`` vector (a window's score is its
best match over the query's windows, as for audio queries). With a DiffGAP bridge trained in CAVP's space
(``dgsearch train --pairs video``: video windows paired with their soundtracks' ``cavp_audio`` vectors) it is
fused as a text query is: the raw cosine, the bridged query (video -> audio) against ``cavp_audio``, and the
raw query against the windows' bridged ``audio_as_video`` vectors. The bridge's tuning gives the raw term no
weight for video (``gap/fusion.raw_term_served``: with CLIP frames the spaces are unrelated), so here the raw
CAVP cosine keeps a fixed third of the weight and the two bridged terms share the rest in their tuned ratio.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffgap_search.encoders.cavp_encoder import CAVP_SPACE

RAW_SHARE = 1.0 / 3.0  # the raw CAVP cosine's weight in the fused score (untuned, see the module docstring)


def cavp_video_terms(bridge: Any, qvecs: np.ndarray) -> list[tuple[str, np.ndarray, float]]:
    """``(space, queries (Q, D) float32, weight)`` terms of a video query; weights sum to 1."""
    if bridge is None:
        return [(CAVP_SPACE, qvecs, 1.0)]
    fusion = bridge.fusion_for("video", "audio")
    bridged = bridge.apply(qvecs, "video", "audio")
    total = fusion.w_query_bridged + fusion.w_item_bridged
    rest = 1.0 - RAW_SHARE
    terms = [(CAVP_SPACE, qvecs, RAW_SHARE),
             (CAVP_SPACE, bridged, rest * fusion.w_query_bridged / total),
             ("audio_as_video", qvecs, rest * fusion.w_item_bridged / total)]
    return [t for t in terms if t[2] > 0]
