"""The "layer.head" key that names one attention head in edit dicts, the widget's `strengths`
trait and the front end (js/model.ts headKey is its TypeScript twin, checked by tests)."""

from __future__ import annotations

import re

from .errors import HeadPursuitError

_KEY = re.compile(r"(\d+)\.(\d+)")


def head_key(layer: int, head: int) -> str:
    """(12, 3) -> "12.3"."""
    return f"{int(layer)}.{int(head)}"


def parse_head_key(key) -> tuple[int, int]:
    """ "12.3" -> (12, 3); anything but digits '.' digits raises HeadPursuitError.

    Ranges are not checked here (that needs the model: ``adapter.check_head``)."""
    m = _KEY.fullmatch(key) if isinstance(key, str) else None
    if m is None:
        raise HeadPursuitError(f"head key {key!r} is not 'layer.head' (digits '.' digits, e.g. '12.3')")
    return int(m[1]), int(m[2])
