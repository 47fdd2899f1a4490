"""Indexes record the preprocessing version of each space and refuse to mix two pipelines (issue 25).

An index built before versions were recorded holds no ``preprocessing`` in its encoder records: every space is
then at version 1. The CAVP spaces moved to version 2 (Pillow-resized native frames, kaiser_best audio) and a
LAION ``.pt`` checkpoint's audio space to version 2 (LAION's int16 round trip); hub CLAP models stayed at 1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_runner import dg

from fixtures_video import make_testsrc
from real_sounds import require_real_sounds

from diffgap_search.config import EncoderIdentity, EncoderRole
from diffgap_search.errors import IncompatibleIndexError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import bind_encoder, stale_spaces


def _old_record(index: Path, role: str) -> dict:
    """Rewrite ``role``'s record as an index built before versions were recorded had it; returns the new one."""
    with Catalog.open(index) as cat:
        record = cat.get_meta(role)
        del record["preprocessing"]
        cat.set_meta({role: record})
    return record


@pytest.fixture()
def sounds(tmp_path: Path) -> Path:
    root = tmp_path / "sfx"
    root.mkdir()
    for sound in require_real_sounds()[:3]:
        shutil.copy(sound.path, root / sound.path.name)
    return root


def test_an_old_cavp_index_asks_for_a_reindex_and_its_clap_spaces_still_serve(
        sounds: Path, tiny_clap_dir: Path, tiny_cavp_ckpt: Path, tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    built = dg("index", sounds, "--index", ix, "--model", tiny_clap_dir, "--video-model", tiny_cavp_ckpt,
               "--workers", "0")
    assert built.exit_code == 0, built.output
    with Catalog.open(ix) as cat:
        assert cat.get_meta("encoder")["preprocessing"] == {"audio": 1, "text": 1}
        assert cat.get_meta("video_encoder")["preprocessing"] == {"video": 2, "cavp_audio": 2}
    _old_record(ix, "video_encoder")
    clip = make_testsrc(tmp_path / "clip.mp4", seconds=3.0, size="64x48", rate=10)

    refused = dg("query", "--video", clip, "--index", ix)
    assert refused.exit_code == 6, refused.output
    assert refused.output.strip().splitlines()[-1] == (
        f"dgsearch: error: index {ix} holds video vectors of model {str(tiny_cavp_ckpt)!r} made with preprocessing "
        "version 1; this dgsearch makes version 2 (docs/models.md, 'Preprocessing versions') and does not mix the "
        f"two: re-index that space: build a new index with --index, or delete {ix} and run dgsearch index again"
    )
    # Adding files would embed new windows with the new pipeline beside the old ones: refused too.
    shutil.copy(require_real_sounds()[5].path, sounds / "added.flac")
    added = dg("index", sounds, "--index", ix, "--workers", "0")
    assert added.exit_code == 6, added.output
    assert "holds video vectors" in added.output
    # The hub CLAP model's spaces are unchanged (version 1, as recorded or not): text queries still answer.
    _old_record(ix, "encoder")
    text = dg("query", "a drum", "--index", ix, "--json", "-k", "3")
    assert text.exit_code == 0, text.output
    assert len(json.loads(text.stdout)["hits"]) == 3


def test_a_laion_checkpoint_index_of_the_old_pipeline_is_refused_and_a_current_one_binds(tmp_path: Path) -> None:
    """The record of a ``.pt`` model (audio at version 2 now) against an index written before (no version)."""
    current = EncoderIdentity(model="630k-audioset-best.pt", fingerprint="ab" * 32, dim=512, sample_rate=48_000,
                              provenance={"source": "checkpoint"}, preprocessing={"audio": 2, "text": 1})
    old = {k: v for k, v in current.record().items() if k != "preprocessing"}
    assert stale_spaces(old, current) == [("audio", 1, 2)]
    assert stale_spaces(current.record(), current) == []
    with Catalog.open(tmp_path / "old", create=True) as cat:
        cat.set_meta({str(EncoderRole.AUDIO): old})
        with pytest.raises(IncompatibleIndexError, match=r"holds audio vectors of model '630k-audioset-best.pt' "
                                                         r"made with preprocessing version 1; this dgsearch makes "
                                                         r"version 2"):
            bind_encoder(cat, current, "old")
    with Catalog.open(tmp_path / "new", create=True) as cat:
        bind_encoder(cat, current, "new")  # a new index records the versions ...
        assert cat.get_meta("encoder")["preprocessing"] == {"audio": 2, "text": 1}
        bind_encoder(cat, current, "new")  # ... and binds again
