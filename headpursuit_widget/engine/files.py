"""File permissions for files built under temporary names (mkstemp/mkdtemp create them private)."""

from __future__ import annotations

import os
from pathlib import Path


def give_usual_mode(path: Path) -> None:
    """chmod `path` to what a plain open()/mkdir() would have made under the current umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)
