"""An indexing run is its stages: swapping one (a recording embed, a counting commit and publish, all
delegating to the real ones) changes nothing in the index, and the runner calls each exactly as documented.
The models an existing index keeps are decided by the library (``run_configs``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from fixtures_index import INLINE, CountingLoader

from diffgap_search.config import DEFAULT_MODEL, DEFAULT_VIDEO_MODEL, EncoderConfig, FaissConfig, VideoConfig
from diffgap_search.indexing import ModelChoice, RunSettings, default_stages, index_folder, run_index
from diffgap_search.indexing.commit import EmbeddedFile, FailedFile, commit_files
from diffgap_search.indexing.decode import SegmentData
from diffgap_search.indexing.embed import Vectors, embed_segments
from diffgap_search.indexing.models import RunModels, run_configs
from diffgap_search.media.captions import CaptionIndex
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import stored_encoder
from diffgap_search.store.vector_index import Published, publish


class RecordingEmbed:
    """The real embed stage, remembering the start seconds of every batch and the vectors it returned."""

    def __init__(self) -> None:
        self.batches: list[list[float]] = []
        self.vectors: list[Vectors] = []

    def __call__(self, models: RunModels, segments: list[SegmentData]) -> list[Vectors]:
        out = embed_segments(models, segments)
        self.batches.append([s.start_s for s in segments])
        self.vectors.extend(out)
        return out


class CountingCommit:
    """The real commit stage, remembering the file names of every transaction."""

    def __init__(self) -> None:
        self.transactions: list[tuple[list[str], list[str]]] = []

    def __call__(self, catalog: Catalog, embedded: Sequence[EmbeddedFile], failed: Sequence[FailedFile],
                 captions: CaptionIndex) -> None:
        commit_files(catalog, embedded, failed, captions)
        self.transactions.append(([e.item.file.path.name for e in embedded], [f.file.path.name for f in failed]))


class CountingPublish:
    """The real publish stage, remembering each space published and its dimension."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, index_dir: Path, catalog: Catalog, space: str, dim: int, cfg: FaissConfig) -> Any:
        self.calls.append((space, dim))
        return publish(index_dir, catalog, space, dim, cfg)


def test_swapped_stages_see_every_batch_and_write_the_same_index(clips_dir: Path, tmp_path: Path,
                                                                 tiny_cfg: EncoderConfig) -> None:
    embed, commit, publish_ = RecordingEmbed(), CountingCommit(), CountingPublish()
    stages = replace(default_stages(), embed=embed, commit=commit, publish=publish_)
    cfg = replace(tiny_cfg, batch_size=2)  # a batch closes once it holds 2 windows
    (clips_dir / "broken.wav").write_text("not audio at all")
    settings = RunSettings(clips_dir, tmp_path / "ix", CountingLoader(), cfg, indexing_cfg=INLINE)
    report = run_index(settings, stages)
    assert (report.found, report.embedded_files, report.windows_embedded, len(report.failed)) == (6, 5, 7, 1)
    # discovery order (bytes of the paths): birds/Yabc123.mp3 (1 window), birds/chirp.ogg (1), broken.wav
    # (fails), dog_bark.wav (1), long/siren.wav (3: 0-10, 10-20, 15-25 s), rain.flac (1)
    assert embed.batches == [[0.0, 0.0], [0.0, 0.0, 10.0, 15.0], [0.0]]
    assert commit.transactions == [(["Yabc123.mp3", "chirp.ogg"], []),
                                   (["dog_bark.wav", "siren.wav"], ["broken.wav"]),
                                   (["rain.flac"], [])]
    with Catalog.open(tmp_path / "ix") as cat:
        dim = int(stored_encoder(cat)["dim"])  # type: ignore[index]
        ids, vecs = next(cat.read_vectors("audio"))
        pub = Published.read(cat, "audio")
    assert publish_.calls == [("audio", dim)]
    assert pub is not None and pub.count == 7
    assert ids.tolist() == list(range(1, 8))  # segment ids in commit order, one per window
    np.testing.assert_array_equal(vecs, np.stack([v["audio"] for v in embed.vectors]))

    again = run_index(settings, stages)  # unchanged: no stage past the plan runs
    assert (again.unchanged, again.embedded_files) == (5, 0)
    assert len(embed.batches) == 3 and len(commit.transactions) == 3 and publish_.calls == [("audio", dim)]


def test_the_default_stages_build_what_index_folder_builds(clips_dir: Path, tmp_path: Path,
                                                           tiny_cfg: EncoderConfig) -> None:
    a = index_folder(clips_dir, tmp_path / "a", load_encoder=CountingLoader(), encoder_cfg=tiny_cfg, indexing_cfg=INLINE)
    b = run_index(RunSettings(clips_dir, tmp_path / "b", CountingLoader(), tiny_cfg, indexing_cfg=INLINE),
                  default_stages())
    assert (a.found, a.windows_embedded) == (b.found, b.windows_embedded) == (5, 7)
    with Catalog.open(tmp_path / "a") as ca, Catalog.open(tmp_path / "b") as cb:
        ia, va = next(ca.read_vectors("audio"))
        ib, vb = next(cb.read_vectors("audio"))
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(va, vb)


def test_an_existing_index_keeps_its_models(indexed: tuple[Path, Path], tmp_path: Path, tiny_clap_dir: Path) -> None:
    _, index_dir = indexed
    kept, video = run_configs(index_dir, ModelChoice(device="cpu", batch_size=4))
    assert kept == EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=4, revision=None,
                                 preprocessing={"audio": 1, "text": 1})  # the versions its vectors were made with
    assert video == VideoConfig()  # no video encoder recorded yet: the default
    fresh, video = run_configs(tmp_path / "new", ModelChoice())
    assert (fresh, video) == (EncoderConfig(), VideoConfig()) and fresh.model == DEFAULT_MODEL
    assert video.model == DEFAULT_VIDEO_MODEL
    pinned, _ = run_configs(index_dir, ModelChoice(model="laion/clap-htsat-fused", revision="main"))
    assert (pinned.model, pinned.revision) == ("laion/clap-htsat-fused", "main")  # asked for: not the index's
    _, cavp = run_configs(tmp_path / "new", ModelChoice(video_model="cavp", frames=False))
    assert (cavp.model, cavp.fit, cavp.fps, cavp.frames) == ("cavp", "squash", 4.0, False)
