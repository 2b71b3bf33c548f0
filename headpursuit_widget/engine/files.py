"""Files: ranking and effects files (.npz of plain arrays plus JSON metadata) read and written safely, and
the usual mode for files built under temporary names (mkstemp/mkdtemp create them private).

Nothing is unpickled. Before any array is read its npy header is checked: a numeric dtype, the
shape its table entry names (dimension names such as "n_layers" bound once per file, so every array
must agree), and a size cap. Writing goes to a temporary file in the same folder that replaces the
target only when complete, so an interrupted save leaves the previous file intact.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import HeadPursuitError, shorten

MAX_ARRAY_BYTES = 1 << 30  # no real ranking comes near this (SmolLM2, k=50: about 1 MB per array)
MAX_META_BYTES = 64 << 20


def give_usual_mode(path: Path) -> None:
    """chmod `path` to what a plain open()/mkdir() would have made under the current umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


def write_atomic(path: Path, meta: dict, arrays: dict) -> Path:
    """Write meta (JSON-able dict) and arrays {name: ndarray} to `path` through a temporary file + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        give_usual_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _header(zf: zipfile.ZipFile, name: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) declared by member `name`.npy, read without loading its data."""
    with zf.open(name + ".npy") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fh)
    return shape, dtype


def _layout(shapes: dict) -> str:
    return ", ".join(f"{name} ({', '.join(dims)})" for name, dims in shapes.items())


def read_checked(path: Path, shapes: dict[str, tuple[str, ...]], dims_of, what: str = "head ranking file"):
    """(meta dict, {name: ndarray}) from a ranking file. shapes: array name -> its dimension names;
    dims_of(meta) -> sizes the metadata fixes for some of those names. Raises HeadPursuitError naming
    the first problem; no array is read before its header passed."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = set(zf.namelist())
            absent = [n for n in ("meta", *shapes) if n + ".npy" not in members]
            if absent:
                raise HeadPursuitError(f"{path} is not a {what}: it has no {', '.join(absent)}")
            meta_shape, meta_dtype = _header(zf, "meta")
            if meta_shape != () or meta_dtype.kind != "U" or meta_dtype.itemsize > MAX_META_BYTES:
                raise HeadPursuitError(f"{path}: metadata must be one JSON string of at most {MAX_META_BYTES} bytes")
            with zf.open("meta.npy") as fh:
                meta = json.loads(str(np.lib.format.read_array(fh, allow_pickle=False)))
            if not isinstance(meta, dict):
                raise HeadPursuitError(f"{path}: metadata must be a JSON object, got {type(meta).__name__}")
            bound = dict(dims_of(meta))
            for name, names in shapes.items():
                _check_header(path, name, *_header(zf, name), names, bound, shapes)
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in shapes}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        if isinstance(exc, HeadPursuitError):
            raise
        raise HeadPursuitError(f"{path} is not a {what} or is corrupted ({shorten(str(exc))})") from None
    return meta, arrays


def _check_header(path, name: str, shape: tuple, dtype, names: tuple, bound: dict, shapes: dict) -> None:
    """Raise unless array `name` is numeric, has the dimensions `names` (sizes in `bound`, which
    records the first size seen for each new name) and fits the size cap."""
    if dtype.kind not in "biuf":
        raise HeadPursuitError(f"{path}: array {name!r} has dtype {dtype}, expected numbers")
    if len(shape) != len(names):
        raise HeadPursuitError(f"{path}: array {name!r} has shape {shape}; expected shapes: {_layout(shapes)}")
    for size, dim in zip(shape, names):
        if bound.setdefault(dim, size) != size:
            raise HeadPursuitError(
                f"{path}: array {name!r} has shape {shape}: its {dim} is {size}, but the file's {dim} is "
                f"{bound[dim]}; expected shapes: {_layout(shapes)}"
            )
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise HeadPursuitError(
            f"{path}: array {name!r} declares {nbytes / 2**30:.1f} GiB (shape {shape}), more than the "
            f"{MAX_ARRAY_BYTES >> 30} GiB a ranking file may hold"
        )


def parse_vocab(path: Path, raw, needed) -> dict[int, str]:
    """{int id: token string} from the metadata's vocab; every id in `needed` must be present."""
    if not isinstance(raw, dict):
        raise HeadPursuitError(f"{path}: metadata 'vocab' must be an object {{token id: string}}, got {raw!r:.60}")
    vocab = {}
    for key, value in raw.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and isinstance(value, str)):
            raise HeadPursuitError(
                f"{path}: vocab entry {shorten(repr(key))}: {shorten(repr(value))} is not 'token id': 'string'"
            )
        vocab[int(key)] = value
    missing = sorted({int(i) for i in needed} - vocab.keys())
    if missing:
        raise HeadPursuitError(f"{path}: vocab lacks {len(missing)} token id(s) the ranking uses, e.g. {missing[:5]}")
    return vocab
