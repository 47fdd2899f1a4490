"""LAION-CLAP ``.pt`` checkpoints embed audio exactly as LAION-CLAP's own code does, on real recordings.

The reference is ``laion_clap`` 1.1.7 from PyPI, unmodified, in an environment of its own (``laion_env.py``),
run as a subprocess (``reference/run_laion_clap.py``): it builds its full-size HTSAT-tiny CLAP with random
weights, sets the audio branch's BatchNorm to the recordings' statistics (so different recordings score far
apart), saves the checkpoint as its trainer does and embeds the windows through ``CLAP_Module.
get_audio_embedding_from_data`` (its inference path: the int16 round trip, ``get_audio_features``, the model).
Our loader reads that checkpoint and ``ClapEncoder.embed_audio`` embeds the same windows (float32).

Slow: the environment is created once (about a minute of pip, cached), then each run builds and runs a
full-size audio tower on both sides (about a minute on 2 busy cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fixtures_models import _save_tokenizer
from laion_env import hf_cache, run_reference
from real_sounds import SAMPLES_DIR, require_real_sounds

from diffgap_search.encoders.clap.encoder import ClapEncoder
from diffgap_search.media.audio import load_audio
from diffgap_search.media.windows import repeat_pad

pytestmark = pytest.mark.slow

SAME = 0.999
STEMS = ("loop_amen", "ambi_choir", "bass_hard_c", "tabla_na", "guit_em9", "vinyl_hiss", "elec_blip",
         "drum_cymbal_open")
SCRIPT = Path(__file__).parent / "reference" / "run_laion_clap.py"


def test_laion_checkpoint_audio_equals_laion_clap(tmp_path: Path) -> None:
    require_real_sounds()
    windows = np.stack([repeat_pad(load_audio(SAMPLES_DIR / f"{s}.flac", 48_000)[:480_000], 480_000) for s in STEMS])
    np.save(tmp_path / "windows.npy", windows)
    _save_tokenizer(tmp_path / "tokenizer", 0)
    hub = hf_cache(tmp_path / "hub", tmp_path / "tokenizer")
    run_reference(SCRIPT, str(tmp_path / "windows.npy"), str(tmp_path), hub=hub)
    reference = np.load(tmp_path / "reference.npy")
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)

    encoder = ClapEncoder.from_laion_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "tokenizer", model_id="ref",
                                                device="cpu", precision="fp32")
    assert encoder.int16_round_trip and encoder.preprocessing == {"audio": 2, "text": 1}
    ours = encoder.embed_audio(windows)
    per_clip = np.sum(ours * reference, axis=1)
    between = reference @ reference.T
    others = between[~np.eye(len(STEMS), dtype=bool)]
    encoder.int16_round_trip = False  # what a hub model's pipeline (transformers' extractor) gives
    without = np.sum(encoder.embed_audio(windows) * reference, axis=1)
    print(f"laion .pt: per clip {np.round(per_clip, 7).tolist()}; without the round trip "
          f"{np.round(without, 6).tolist()}; different recordings max {others.max():.4f}")
    assert others.max() < 0.99, "the model cannot tell these recordings apart: the check could not fail"
    assert per_clip.min() >= SAME, np.round(per_clip, 6).tolist()
