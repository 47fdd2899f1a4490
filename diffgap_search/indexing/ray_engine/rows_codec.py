"""The bytes in a Ray row's ``payload`` / ``task`` column, without pickle: a JSON header (the tree, and each
array's dtype, shape and offset) followed by the arrays' raw bytes, read back with ``np.frombuffer``, so a row
can never run code where it is read. Layout: ``MAGIC``, the header's length (``uint32``, little-endian), the
header (UTF-8 JSON), then the data, from the next multiple of ``ALIGN`` bytes: each array's bytes at its offset
from the data's start (multiples of ``ALIGN`` too). Only plain numeric dtypes travel (bool, integers, floats,
complex; no objects, no records).

Until 2026-12-04 a payload was an ``.npz`` (``np.savez``): a 10 s window at 48 kHz (480,000 float32) took
1.09 ms to pack and 2.01 ms to unpack on an AVX2 EPYC, against 0.12 and 0.09 ms now (medians;
``benchmarks/bench_rows_codec.py``, ``results/rows_codec.md``). Every window is packed once by its decode task
and unpacked once by the embedding actor.

A payload is built of ``None``, ``bool``, ``int``, ``float``, ``str``, ``Path``, ``tuple``, ``list``, ``dict``
with ``str`` keys, numpy arrays of a numeric dtype, and the dataclasses of :data:`DATACLASSES` (rebuilt by
their constructors, so their checks run again). Anything else raises ``TypeError`` when packed; a payload
naming another class raises ``ValueError`` when unpacked.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.media.tags import FileTags

DATACLASSES: dict[str, type] = {"FileTags": FileTags, "WindowConfig": WindowConfig, "VideoConfig": VideoConfig}


def register(cls: type) -> type:
    """Class decorator: ``cls`` (a dataclass) may travel in a payload."""
    DATACLASSES[cls.__name__] = cls
    return cls


MAGIC = b"DGR1"  # a diffgap-search Ray row, layout 1
ALIGN = 64  # arrays start at multiples of this many bytes
_LENGTH = struct.Struct("<I")
_NUMERIC_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex


def pack(obj: Any) -> bytes:
    """``obj`` as bytes: ``MAGIC``, the header's length, the JSON header (``tree``; ``arrays``: each one's
    ``dtype``, ``shape`` and ``offset`` from the data's start), then the data: the arrays' C-ordered bytes. One
    copy of each array."""
    arrays: list[np.ndarray] = []
    tree = _encode(obj, arrays)
    arrays = [np.require(a, requirements="C") for a in arrays]  # C order, any ndim (0-d kept)
    specs, end = [], 0
    for a in arrays:
        specs.append({"dtype": a.dtype.str, "shape": list(a.shape), "offset": end})
        end += _aligned(a.nbytes)
    header = json.dumps({"tree": tree, "arrays": specs}, allow_nan=True, separators=(",", ":")).encode("utf-8")
    head = len(MAGIC) + _LENGTH.size + len(header)
    parts: list[bytes | memoryview] = [MAGIC, _LENGTH.pack(len(header)), header, bytes(_aligned(head) - head)]
    for a in arrays:  # each array's bytes, padded to a multiple of ALIGN: the next starts at its offset
        parts += [memoryview(a.reshape(-1).view(np.uint8)), bytes(_aligned(a.nbytes) - a.nbytes)]
    return b"".join(parts)


def unpack(data: bytes) -> Any:
    """What :func:`pack` was given (tuples as tuples, arrays with their dtype and shape, writable copies).
    Raises ValueError for bytes that are not such a payload (another layout, a dtype that is not plain
    numeric, an array past the end, a class outside :data:`DATACLASSES`)."""
    view = memoryview(data)
    start = len(MAGIC) + _LENGTH.size
    if bytes(view[: len(MAGIC)]) != MAGIC or len(view) < start:
        raise ValueError("not a diffgap-search Ray row (another version of diffgap-search on this node?)")
    (length,) = _LENGTH.unpack(view[len(MAGIC) : start])
    if start + length > len(view):
        raise ValueError("a Ray row's header runs past its end")
    header = json.loads(bytes(view[start : start + length]).decode("utf-8"))
    data = view[_aligned(start + length) :]
    arrays = [_array(data, spec) for spec in header["arrays"]]
    return _decode(header["tree"], arrays)


def _numeric(dtype: np.dtype) -> bool:
    """Whether arrays of ``dtype`` may travel: bool, integers, floats or complex; no objects, no records."""
    return dtype.kind in _NUMERIC_KINDS and dtype.fields is None and not dtype.hasobject


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _array(data: memoryview, spec: dict[str, Any]) -> np.ndarray:
    """One array of a payload, copied out of its data; its dtype must be plain numeric and its bytes inside."""
    dtype = np.dtype(str(spec["dtype"]))
    if not _numeric(dtype):
        raise ValueError(f"a Ray row holds an array of dtype {dtype.str!r}: only numeric arrays travel")
    shape = tuple(int(n) for n in spec["shape"])
    if any(n < 0 for n in shape):
        raise ValueError("a Ray row holds an array of negative shape")
    count, offset = math.prod(shape), int(spec["offset"])
    if offset < 0 or offset + count * dtype.itemsize > len(data):
        raise ValueError("a Ray row's array runs past its end")
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape).copy()


def _encode(obj: Any, arrays: list[np.ndarray]) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("an array of Python objects cannot travel in a Ray row")
        if not _numeric(obj.dtype):
            raise TypeError(f"an array of dtype {obj.dtype.str!r} cannot travel in a Ray row: only numeric ones")
        arrays.append(obj)
        return {"$nd": len(arrays) - 1}
    if isinstance(obj, Path):
        return {"$path": str(obj)}
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(x, arrays) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x, arrays) for x in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("a dict in a Ray row needs str keys")
        return {"$dict": {k: _encode(v, arrays) for k, v in obj.items()}}
    name = type(obj).__name__
    if dataclasses.is_dataclass(obj) and DATACLASSES.get(name) is type(obj):
        fields = {f.name: _encode(getattr(obj, f.name), arrays) for f in dataclasses.fields(obj) if f.init}
        return {"$dc": name, "fields": fields}
    raise TypeError(f"a {name} cannot travel in a Ray row")


def _decode(node: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(node, list):
        return [_decode(x, arrays) for x in node]
    if not isinstance(node, dict):
        return node
    if "$nd" in node:
        index = int(node["$nd"])
        if not 0 <= index < len(arrays):
            raise ValueError(f"a Ray row names array {index} of {len(arrays)}")
        return arrays[index]
    if "$path" in node:
        return Path(node["$path"])
    if "$tuple" in node:
        return tuple(_decode(x, arrays) for x in node["$tuple"])
    if "$dict" in node:
        return {k: _decode(v, arrays) for k, v in node["$dict"].items()}
    if "$dc" in node:
        cls = DATACLASSES.get(node["$dc"])
        if cls is None:
            raise ValueError(f"a Ray row names an unknown class {node['$dc']!r}")
        return cls(**{k: _decode(v, arrays) for k, v in node["fields"].items()})
    raise ValueError(f"a Ray row holds an unknown node {sorted(node)!r}")
