"""Numpy arrays <-> binary widget buffers.

A synced array travels as ``{"dtype", "shape", "buffer"}`` where ``buffer`` is a
memoryview, which ipywidgets sends as a binary buffer (``js/codecs.ts`` decodes it).
Floats go as float32, integers as int32, booleans as one byte each.
"""

from __future__ import annotations

import numpy as np


def array_to_json(value, widget=None) -> dict | None:
    """Encode an array (or None) for a synced trait."""
    if value is None:
        return None
    a = np.asarray(value)
    if a.dtype == np.bool_:
        dtype, a = "bool", a.astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        dtype, a = "float32", a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        dtype, a = "int32", a.astype(np.int32)
    else:
        raise TypeError(f"cannot send an array of dtype {a.dtype} to the widget")
    a = np.ascontiguousarray(a)
    return {"dtype": dtype, "shape": list(a.shape), "buffer": memoryview(a.tobytes())}


_NUMPY = {"bool": np.bool_, "float32": np.float32, "float64": np.float64, "int32": np.int32, "uint8": np.uint8}


def array_from_json(value, widget=None) -> np.ndarray | None:
    """Decode what ``array_to_json`` produced (the buffer may come back as bytes or a view)."""
    if value is None:
        return None
    dtype = value["dtype"]
    if dtype not in _NUMPY:
        raise TypeError(f"unsupported dtype {dtype!r} in widget array")
    raw: np.ndarray = np.frombuffer(bytes(value["buffer"]), dtype=np.uint8 if dtype == "bool" else _NUMPY[dtype])
    return raw.astype(np.bool_).reshape(value["shape"]) if dtype == "bool" else raw.reshape(value["shape"])


ARRAY = {"to_json": array_to_json, "from_json": array_from_json}
