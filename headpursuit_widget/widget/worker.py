"""The widget's background thread: runs the latest request of each kind, cancellable."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

SUPERSEDED, STOPPED, CLOSED = "superseded", "stopped", "closed"
# the order pending kinds run in; other kinds after these. A check of the applied edits (verify) needs
# no selection (refine), so it runs before a pending one
PRIORITY = ("rank", "compare", "generate", "verify", "refine")


class Cancel(threading.Event):
    """An Event that says why it was set: SUPERSEDED (a newer request of the same kind),
    STOPPED (the user's Stop) or CLOSED (the widget closed). The engine polls ``is_set()``;
    ``seq`` numbers the job, so the front end can drop pieces of an older answer."""

    def __init__(self, seq: int = 0):
        super().__init__()
        self.seq = seq
        self.reason: str | None = None

    def set(self, reason: str = SUPERSEDED) -> None:
        """Cancel for ``reason``; the first reason given wins."""
        if self.reason is None:
            self.reason = reason
        super().set()


class Worker:
    """One background thread running the latest request of each kind, in ``PRIORITY`` order.

    A new request of a kind cancels the running one of that kind (reason SUPERSEDED) and
    replaces any pending one; ``delay`` debounces it. The thread exits when idle. Jobs are
    ``fn(cancel: Cancel)``; their exceptions go to ``on_error``.
    """

    def __init__(self, on_error: Callable[[Exception], None]):
        self._cv = threading.Condition(threading.RLock())
        self._pending: dict = {}
        self._running: tuple[str, Cancel] | None = None
        self._thread: threading.Thread | None = None
        self._seq = itertools.count(1)
        self._on_error = on_error
        self._closed = False

    def submit(self, kind: str, fn: Callable[[Cancel], None], delay: float = 0.0) -> None:
        """Queue ``fn`` as the latest request of ``kind``, after ``delay`` seconds; nothing once closed."""
        with self._cv:
            if self._closed:
                return
            self._pending[kind] = (fn, time.monotonic() + delay)
            if self._running and self._running[0] == kind:
                self._running[1].set(SUPERSEDED)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="headpursuit-worker", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def cancel(self, kind: str, reason: str) -> bool:
        """Drop a pending request of ``kind`` and cancel the running one; True if one was running."""
        with self._cv:
            self._pending.pop(kind, None)
            if self._running and self._running[0] == kind:
                self._running[1].set(reason)
                return True
            return False

    def running(self, kind: str) -> bool:
        """True if a request of ``kind`` is running or pending."""
        with self._cv:
            return kind in self._pending or bool(self._running and self._running[0] == kind)

    def publish(self, cancel: Cancel, fn: Callable[[], None]) -> bool:
        """Run ``fn`` unless ``cancel`` is set, atomically with respect to ``submit``."""
        with self._cv:
            if cancel.is_set():
                return False
            fn()
            return True

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new requests, drop the pending ones, cancel the running one (CLOSED) and join the thread
        for at most ``timeout`` seconds (None: until it ends). True once no job runs; False if one still
        runs (it did not reach a cancellation point in time, or this is the worker's own thread)."""
        with self._cv:
            self._closed = True
            self._pending.clear()
            if self._running:
                self._running[1].set(CLOSED)
            thread = self._thread
            self._cv.notify_all()
        if thread is None:
            return True
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._pending or self._running:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def _next(self):
        with self._cv:
            while self._pending:
                kind = min(self._pending, key=lambda k: PRIORITY.index(k) if k in PRIORITY else len(PRIORITY))
                fn, due = self._pending[kind]
                now = time.monotonic()
                if due > now:
                    self._cv.wait(due - now)
                    continue
                del self._pending[kind]
                self._running = (kind, Cancel(next(self._seq)))
                return fn, self._running[1]
            self._thread = None
            self._cv.notify_all()
            return None

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            fn, cancel = job
            try:
                fn(cancel)
            except Exception as exc:  # shown in the widget, never lost on the thread
                self._on_error(exc)
            finally:
                with self._cv:
                    self._running = None
                    self._cv.notify_all()
