"""The one exception type the engine raises for bad input (and Cancelled, for a stopped computation), and
`shorten` for echoing that input in messages."""

from __future__ import annotations

import threading


class HeadPursuitError(ValueError):
    """Bad input to the engine: the message says what was wrong and what is accepted."""


def shorten(text, limit: int = 60) -> str:
    """`text` (str() of anything) cut to at most `limit` characters with an ellipsis, for echoing user input."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_int(value, what: str, minimum: int = 1) -> int:
    """`value` as a plain int >= minimum; numpy integers count, bools and floats do not."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise HeadPursuitError(f"{what} must be {kind} (not a bool), got {shorten(repr(value))}")
    return int(value)


class Cancelled(HeadPursuitError):
    """A long computation (refine, verify) was stopped through its `cancel` event."""


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise Cancelled when the event is set (checked between forward passes)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled: the computation was stopped before it finished")
