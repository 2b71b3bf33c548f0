"""Results kept on disk between sessions (captures, rankings, edited-pass readings): checked reading,
atomic writing, and the digest of the code that made them.

Each entry is a file beside a ``.json`` record of its SHA-256 (and whatever else the writer records), in a
folder of the captures folder (models/shipped.py captures_dir). Writers and readers hold the folder's lock;
an entry is written to a temporary file that is then renamed, so nobody sees half of one. An entry whose
bytes do not match its SHA-256 is refused with the paths to delete. Keys hold ``code_digest`` of the
stages that compute the kept result, so an edited pipeline never reads an older result, and
``weights_key`` of the model's module, so weights edited in place (a baked head, a scaled MLP) are
measured again although the model's fingerprint reads only a few of them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch

from .errors import HeadPursuitError
from .files import give_usual_mode
from .models.cache import locked, sha256_of

_ROW = 4096  # elements summed in order by one thread (below torch's grain for splitting a reduction)


@torch.no_grad()
def _sum(param: torch.Tensor) -> float:
    """The sum of ``param``'s entries, the same whatever torch's thread count: rows of _ROW are each summed
    in float32 by one thread, then their sums exactly (math.fsum); a plain ``.sum()`` splits the reduction
    by thread, and its last bits changed with ``torch.set_num_threads``."""
    flat = param.detach().reshape(-1)
    n = flat.numel() // _ROW * _ROW
    rows = flat[:n].view(-1, _ROW).float().sum(dim=1)
    return math.fsum(torch.cat([rows, flat[n:].float()]).tolist())


def local_module(model):
    """``model``'s torch module when its passes run in this process (backend "hf"), else None."""
    return model.module if model.backend == "hf" else None


def weights_key(module) -> list | None:
    """[dtype, device type, the sum of each parameter tensor] of a local torch ``module`` (about 30 ms for
    SmolLM2's 135M weights); None for None (a model whose weights are not here: its fingerprint alone)."""
    if module is None:
        return None
    params = list(module.parameters())
    return [str(params[0].dtype), params[0].device.type, [_sum(p) for p in params]]


@cache
def code_digest(stages: tuple[str, ...]) -> str:
    """SHA-256 of the Python source of the engine's `stages` (sub-package names), "" when none is found
    (nothing is kept then)."""
    engine = Path(__file__).resolve().parent
    files = sorted(p for stage in stages for p in (engine / stage).glob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(engine).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest() if files else ""


def read_entry(path: Path, read: Callable[[Path], Any], what: str) -> tuple[Any, dict] | None:
    """(read(path), the entry's .json record) for the file kept at ``path``, None when there is none;
    HeadPursuitError naming both files to delete when the file does not match its recorded SHA-256 or
    ``read`` refuses it. ``what`` names the entry in that error ("cached capture", ...)."""
    meta_path = path.with_suffix(".json")
    if not path.parent.is_dir():
        return None
    with locked(path.parent):  # a writer replaces the file and its .json together under this lock
        if not (path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if sha256_of(path) == meta["sha256"]:
                return read(path), meta
        except (OSError, ValueError, KeyError, TypeError, HeadPursuitError):
            pass
    raise HeadPursuitError(
        f"the {what} {path} is corrupted or incomplete (it does not match {meta_path.name}): "
        f"delete {path} and {meta_path} (it is made again)"
    )


def keep_entry(path: Path, write: Callable[[Path], Any], **record) -> None:
    """write(a temporary file beside ``path``), then record its SHA-256 (and ``record``) in ``path``'s .json
    and rename it to ``path``, all under the folder's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.part-", suffix=path.suffix)
        os.close(fd)
        try:
            write(Path(tmp))
            give_usual_mode(Path(tmp))
            path.with_suffix(".json").write_text(json.dumps({"sha256": sha256_of(Path(tmp)), **record}))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
