"""The Ray engine's row payloads (``ray_engine/rows_codec.py``): what is packed comes back equal, with its types,
and a payload can never name a class outside the allow-list (nothing read from a row is unpickled)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.indexing.ray_engine.rows_codec import pack, unpack
from diffgap_search.indexing.ray_engine.work import FileEnd
from diffgap_search.media.tags import FileTags


def test_a_decode_task_and_its_rows_come_back_equal() -> None:
    rng = np.random.default_rng(7)
    task = (Path("/clips/dog bark é.wav"), "audio", WindowConfig(window_s=2.0, hop_s=1.0), VideoConfig(fps=2.0), 0)
    window = (0.0, 2.0, rng.standard_normal(96_000).astype(np.float32), None)
    frames = (4.0, 6.0, None, rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8))
    vectors = (2.0, 4.0, {"audio": rng.standard_normal(512).astype(np.float32)})
    end = FileEnd(3, True, FileTags((("title", "Dog"), ("artist", "")), 48_000, 2), None)
    failed = FileEnd(0, error="no audio samples")

    assert unpack(pack(task)) == task
    got = unpack(pack(window))
    assert (type(got), got[:2], got[2].dtype, got[3]) == (tuple, (0.0, 2.0), np.float32, None)
    np.testing.assert_array_equal(got[2], window[2])
    got = unpack(pack(frames))
    assert (got[3].dtype, got[3].shape) == (np.uint8, (8, 16, 16, 3))
    np.testing.assert_array_equal(got[3], frames[3])
    got = unpack(pack(vectors))
    assert list(got[2]) == ["audio"]
    np.testing.assert_array_equal(got[2]["audio"], vectors[2]["audio"])
    assert unpack(pack(end)) == end
    assert unpack(pack(failed)) == failed


def test_what_cannot_travel_is_refused_when_packed() -> None:
    class Elsewhere:
        pass

    with pytest.raises(TypeError, match="a Elsewhere cannot travel in a Ray row"):
        pack((1.0, Elsewhere()))
    with pytest.raises(TypeError, match="an array of Python objects cannot travel in a Ray row"):
        pack(np.array([object()], dtype=object))
    with pytest.raises(TypeError, match="a dict in a Ray row needs str keys"):
        pack({1: 2})


def test_a_row_naming_another_class_is_refused_when_unpacked() -> None:
    tree = json.dumps({"$dc": "Popen", "fields": {"args": "rm -rf /"}}).encode("utf-8")
    buf = io.BytesIO()
    np.savez(buf, tree=np.frombuffer(tree, dtype=np.uint8))
    with pytest.raises(ValueError, match="a Ray row names an unknown class 'Popen'"):
        unpack(buf.getvalue())
