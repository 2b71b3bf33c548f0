"""Hook bookkeeping shared by capture and edits: hooks never outlive the block that added them."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def hooks_removed(handles: list):
    """Remove every handle in `handles` on exit - also on exceptions and KeyboardInterrupt."""
    try:
        yield handles
    finally:
        while handles:
            handles.pop().remove()
