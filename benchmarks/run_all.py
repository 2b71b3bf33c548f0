"""`make bench`: every benchmark in its quick mode, one after the other, on the default model.

    .venv/bin/python benchmarks/run_all.py

Results print to the terminal; the experiment benchmark writes its JSON and HTML to a temporary
folder, so the measurements committed under docs/ stay as they are. The full runs and their
options are in each script's docstring. Exits non-zero if any benchmark fails.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def quick_runs(out: Path) -> list[tuple[str, list[str]]]:
    return [
        ("engine", ["bench_engine.py", "--repeats", "1", "--threads", "2"]),
        ("widget", ["bench_widget.py", "--repeats", "1", "--tokens", "8"]),
        (
            "experiments",
            [
                "bench_experiments.py",
                "--out",
                str(out),
                "curves",
                "--concepts",
                "colours",
                "--ks",
                "4",
                "--n-random",
                "2",
            ],
        ),
    ]


def main() -> int:
    failed = []
    with tempfile.TemporaryDirectory(prefix="headpursuit-bench-") as tmp:
        for name, argv in quick_runs(Path(tmp)):
            print(f"=== {name}: {' '.join(argv)}", flush=True)
            start = time.perf_counter()
            code = subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:]])
            print(
                f"=== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - start:.0f} s\n"
            )
            if code:
                failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
