"""The Ray engine's row payloads (``ray_engine/rows_codec.py``): what is packed comes back equal, with its types,
and a payload can never name a class outside the allow-list nor an array that is not plain numeric (nothing
read from a row is unpickled)."""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.indexing.ray_engine.rows_codec import MAGIC, pack, unpack
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
    with pytest.raises(TypeError, match="an array of dtype '<U3' cannot travel in a Ray row: only numeric ones"):
        pack(np.array(["dog"]))


def _payload(tree: object, arrays: list[dict[str, object]], tail: bytes = b"") -> bytes:
    """Bytes in the codec's layout, written by hand: MAGIC, the header's length, the header, then ``tail``."""
    header = json.dumps({"tree": tree, "arrays": arrays}).encode("utf-8")
    return MAGIC + struct.pack("<I", len(header)) + header + tail


def test_arrays_keep_dtype_shape_and_order_and_come_back_writable() -> None:
    rng = np.random.default_rng(3)
    arrays = [np.array(3.5, dtype=np.float32), np.zeros((0, 3), dtype=np.int16), rng.standard_normal((3, 4)).T,
              np.array([True, False]), np.arange(3, dtype=np.complex64) * 1j,
              rng.integers(0, 255, (2, 5, 5, 3), dtype=np.uint8), np.arange(6, dtype=">i4")]
    data = pack({"arrays": arrays, "nested": (1, "z", None, [arrays[2]])})
    assert data[:4] == MAGIC
    got = unpack(data)
    for before, after in zip([*arrays, arrays[2]], [*got["arrays"], got["nested"][3][0]]):
        assert (after.dtype, after.shape, after.flags.writeable) == (before.dtype, before.shape, True)
        np.testing.assert_array_equal(after, before)
    got["arrays"][2][0, 0] = 7.0  # a copy: the payload's bytes are not written through
    assert unpack(data)["arrays"][2][0, 0] == arrays[2][0, 0]


def test_a_row_naming_another_class_is_refused_when_unpacked() -> None:
    with pytest.raises(ValueError, match="a Ray row names an unknown class 'Popen'"):
        unpack(_payload({"$dc": "Popen", "fields": {"args": "rm -rf /"}}, []))


def test_bytes_that_are_not_a_numeric_row_are_refused_when_unpacked() -> None:
    buf = io.BytesIO()
    np.savez(buf, tree=np.frombuffer(b"[]", dtype=np.uint8))  # the layout before 2026-12-04
    with pytest.raises(ValueError, match="not a diffgap-search Ray row"):
        unpack(buf.getvalue())
    with pytest.raises(ValueError, match="not a diffgap-search Ray row"):
        unpack(pickle.dumps((0.0, 1.0)))
    with pytest.raises(ValueError, match="only numeric arrays travel"):
        unpack(_payload({"$nd": 0}, [{"dtype": "|O", "shape": [1], "offset": 0}], bytes(256)))
    with pytest.raises(ValueError, match="only numeric arrays travel"):
        unpack(_payload({"$nd": 0}, [{"dtype": "<U4", "shape": [1], "offset": 0}], bytes(256)))
    with pytest.raises(ValueError, match="a Ray row's array runs past its end"):
        unpack(_payload({"$nd": 0}, [{"dtype": "<f4", "shape": [1000], "offset": 0}], bytes(256)))
    with pytest.raises(ValueError, match="a Ray row names array 1 of 1"):
        unpack(_payload({"$nd": 1}, [{"dtype": "<f4", "shape": [1], "offset": 0}], bytes(256)))
    with pytest.raises(ValueError, match="a Ray row's header runs past its end"):
        unpack(MAGIC + struct.pack("<I", 1000) + b"{}")
