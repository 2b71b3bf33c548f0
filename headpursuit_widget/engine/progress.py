"""Progress of long engine work: a tqdm bar on stderr, or the caller's own report (the widget's verdict line).

``progress`` arguments of the judging functions (refine, verify, effects) take False (silent), True (a tqdm
bar per stage) or a callable ``report(stage, done, total)``: a stage's name ("editing every head at the answer",
"measuring the sets", ...) and its forward passes done and in all, called once at 0 and after each pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

Report = Callable[[str, int, int], None]
Progress = bool | Report


def bar(progress: Progress, *, total: int, desc: str) -> Any:
    """A context manager with ``update(n=1)``: a tqdm bar when ``progress`` is True, a silent one when False,
    else calls of ``progress(desc, done, total)``."""
    if callable(progress):
        return _Reported(progress, total, desc)
    return tqdm(total=total, desc=desc, disable=not progress)


class _Reported:
    """A bar that hands each step to ``report(desc, done, total)``."""

    def __init__(self, report: Report, total: int, desc: str):
        self.report, self.total, self.desc, self.n = report, total, desc, 0
        report(desc, 0, total)

    def update(self, n: int = 1) -> None:
        self.n += n
        self.report(self.desc, self.n, self.total)

    def __enter__(self) -> _Reported:
        return self

    def __exit__(self, *exc) -> None:
        return None
