"""The bytes in a Ray row's ``payload`` / ``task`` column, without pickle: a JSON tree beside the arrays of an
``.npz`` (``np.load(allow_pickle=False)``), so a row can never run code where it is read.

A payload is built of ``None``, ``bool``, ``int``, ``float``, ``str``, ``Path``, ``tuple``, ``list``, ``dict``
with ``str`` keys, numpy arrays of a numeric dtype, and the dataclasses of :data:`DATACLASSES` (rebuilt by
their constructors, so their checks run again). Anything else raises ``TypeError`` when packed; a payload
naming another class raises ``ValueError`` when unpacked.
"""

from __future__ import annotations

import dataclasses
import io
import json
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


def pack(obj: Any) -> bytes:
    """``obj`` as bytes: ``np.savez`` of its arrays (``a0``, ``a1``...) and its tree as JSON (``tree``)."""
    arrays: list[np.ndarray] = []
    tree = json.dumps(_encode(obj, arrays), allow_nan=True, separators=(",", ":"))
    buf = io.BytesIO()
    np.savez(buf, tree=np.frombuffer(tree.encode("utf-8"), dtype=np.uint8),
             **{f"a{i}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


def unpack(data: bytes) -> Any:
    """What :func:`pack` was given (tuples as tuples, arrays with their dtype and shape)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        tree = json.loads(npz["tree"].tobytes().decode("utf-8"))
        return _decode(tree, npz)


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


def _decode(node: Any, npz: Any) -> Any:
    if isinstance(node, list):
        return [_decode(x, npz) for x in node]
    if not isinstance(node, dict):
        return node
    if "$nd" in node:
        return npz[f"a{int(node['$nd'])}"]
    if "$path" in node:
        return Path(node["$path"])
    if "$tuple" in node:
        return tuple(_decode(x, npz) for x in node["$tuple"])
    if "$dict" in node:
        return {k: _decode(v, npz) for k, v in node["$dict"].items()}
    if "$dc" in node:
        cls = DATACLASSES.get(node["$dc"])
        if cls is None:
            raise ValueError(f"a Ray row names an unknown class {node['$dc']!r}")
        return cls(**{k: _decode(v, npz) for k, v in node["fields"].items()})
    raise ValueError(f"a Ray row holds an unknown node {sorted(node)!r}")
