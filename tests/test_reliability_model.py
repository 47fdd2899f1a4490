"""A model of the whole: a Hypothesis state machine adds, modifies, deletes and renames files, indexes and
queries, checked against an in-memory oracle after every step: every hit names a live file and window,
no live file is missing, no vector is orphaned, FAISS and the catalog agree, and a content always gets the
same vectors whatever its path or history."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from reliability_helpers import check_faiss, clip_samples, read_state

from diffgap_search.config import EncoderConfig, IndexingConfig, SearchConfig, SearchMode
from diffgap_search.indexing import index_folder
from diffgap_search.search import Searcher

NAMES = ["a.wav", "b.wav", "sub/c.wav", "sub/d.wav", "e.wav"]
CONTENTS = 4


def test_state_machine(tiny_encoder: Any) -> None:
    from fixtures_media import write_audio

    def loader(cfg: EncoderConfig) -> Any:
        return tiny_encoder

    vectors_of: dict[str, list[tuple[float, float, np.ndarray]]] = {}  # sha -> windows, across examples

    class Index(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.tmp = Path(tempfile.mkdtemp(prefix="dgs-model-"))
            self.clips, self.ix = self.tmp / "clips", self.tmp / "ix"
            self.clips.mkdir()
            self.disk: dict[str, int] = {}  # name -> content id
            self.indexed: dict[str, int] | None = None  # what the last index run saw

        def teardown(self) -> None:
            shutil.rmtree(self.tmp, ignore_errors=True)

        def _write(self, name: str, content: int) -> None:
            write_audio(self.clips / name, clip_samples(content, variant=2), 8_000)
            self.disk[name] = content

        @rule(name=st.sampled_from(NAMES), content=st.integers(0, CONTENTS - 1))
        def add_or_modify(self, name: str, content: int) -> None:
            self._write(name, content)

        @rule(name=st.sampled_from(NAMES))
        def delete(self, name: str) -> None:
            if name in self.disk:
                (self.clips / name).unlink()
                del self.disk[name]

        @rule(src=st.sampled_from(NAMES), dst=st.sampled_from(NAMES))
        def rename(self, src: str, dst: str) -> None:
            if src in self.disk and src != dst:
                (self.clips / dst).parent.mkdir(parents=True, exist_ok=True)
                (self.clips / src).rename(self.clips / dst)
                self.disk[dst] = self.disk.pop(src)

        @rule()
        def index(self) -> None:
            if not self.disk:
                return
            index_folder(self.clips, self.ix, load_encoder=loader, encoder_cfg=EncoderConfig(device="cpu", batch_size=4),
                         indexing_cfg=IndexingConfig(decode_workers=0))
            self.indexed = dict(self.disk)
            state = read_state(self.ix)
            expected = {str(self.clips / n) for n in self.disk}
            assert set(state.files) == expected  # no live file missing, no dead file kept
            seg_ids = {sid for ws in state.windows.values() for sid, _, _ in ws}
            assert set(state.vectors) == seg_ids  # no orphan vector, no window without a vector
            for path, (status, sha) in state.files.items():
                assert status == "ok" and sha == hashlib.sha256(Path(path).read_bytes()).hexdigest()
                got = [(s, e, state.vectors[sid]) for sid, s, e in state.windows[path]]
                known = vectors_of.setdefault(sha, got)
                assert [(s, e) for s, e, _ in got] == [(s, e) for s, e, _ in known]
                for (_, _, v), (_, _, k) in zip(got, known):
                    np.testing.assert_allclose(v, k, rtol=0, atol=1e-6)
            check_faiss(self.ix, state)  # FAISS and the catalog agree

        @rule(seed=st.integers(0, 2**16))
        def query(self, seed: int) -> None:
            if self.indexed is None:
                return
            state = read_state(self.ix)
            q = np.random.default_rng(seed).standard_normal((1, 32)).astype(np.float32)
            q /= np.linalg.norm(q)
            with Searcher(self.ix, loader) as s:
                hits, _, _ = s.search_vectors(q, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=100,
                                                                       group_by_file=False, all_copies=True))
                once, _, _ = s.search_vectors(q, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=100, group_by_file=False))
            assert len(hits) == len(state.vectors)
            for h in hits:
                assert (h.segment_id, h.start_s, h.end_s) in state.windows[h.path]
                assert abs(h.score - float(q[0] @ state.vectors[h.segment_id])) < 1e-5
            # by default the windows of files with the same content are one hit each
            contents = {(state.files[p][1], s0, e0) for p, ws in state.windows.items() for _, s0, e0 in ws}
            assert len(once) == len(contents)

        @invariant()
        def catalog_matches_last_index_run(self) -> None:
            if self.indexed is not None:
                assert set(read_state(self.ix).files) == {str(self.clips / n) for n in self.indexed}

    run_state_machine_as_test(Index, settings=settings(
        max_examples=40, stateful_step_count=20, derandomize=True, deadline=None,
        suppress_health_check=list(HealthCheck), database=None))
