"""A shipped concept's grid in a new session: captured and ranked the first time, read from disk after
(issue 18: <= 2 s the first time, <= 1 s once cached), and the first grid the widget draws meanwhile from a
quarter of the contexts (session.py FIRST_SHARE).

Each run is a fresh child process (an empty memory cache, as a new notebook has) with the model loaded
before the clock starts; it times ``Session(model).rank(concept)`` (what the widget's grid waits for),
then, in the same process, the bare ``rank_heads`` of the same contexts from their activations in memory
(the baseline: the pursuit and the null alone). The folder of its own starts as `headpursuit fetch` (what
`make lab` runs) leaves it: the null's word pool, no capture. The first child finds no capture or ranking
and keeps both; the next ones read the kept ranking (engine/ranking/kept.py).

    python benchmarks/bench_grid_cache.py [--model smollm2] [--concept colours] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import torch
import headpursuit_widget as hp
from headpursuit_widget.widget.session import ACTIVATIONS, Session

torch.set_num_threads(2)
model = hp.load_model(sys.argv[1])
session = Session(model)
first = []
t = time.perf_counter()
session.rank(sys.argv[2], on_first=lambda *_: first.append(time.perf_counter() - t))
grid = time.perf_counter() - t
acts = ACTIVATIONS.capture(model, session.samples_for(sys.argv[2]), positions="last", persist=True)
t = time.perf_counter()
hp.rank_heads(model, None, sys.argv[2], activations=acts, refine=False, progress=False)  # pursuit and null only
done = time.perf_counter() - t
print(json.dumps({"grid_s": grid, "first_grid_s": first[0] if first else None, "from_memory_s": done}))
"""


def child(model: str, concept: str, folder: str) -> dict:
    env = dict(os.environ, HEADPURSUIT_CAPTURES=folder)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model, concept], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--concept", default="colours")
    parser.add_argument("--repeats", type=int, default=3, help="new sessions after the first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        fetch = "import sys; from headpursuit_widget.cli import main; sys.exit(main(['fetch', sys.argv[1]]))"
        subprocess.run(
            [sys.executable, "-c", fetch, args.model], env=dict(os.environ, HEADPURSUIT_CAPTURES=folder), check=True
        )
        runs = [child(args.model, args.concept, folder) for _ in range(1 + args.repeats)]
    for i, r in enumerate(runs):
        label = "first session (captures)" if i == 0 else f"new session {i} (kept)"
        at = r["first_grid_s"]
        first = "" if at is None else f"first grid (a quarter of the contexts) {at:.2f} s, "
        print(
            f"{label:26s} {first}grid {r['grid_s']:.2f} s; bare rank_heads from activations in memory "
            f"{r['from_memory_s']:.2f} s "
            f"({r['grid_s'] / r['from_memory_s']:.2f}x)"
        )


if __name__ == "__main__":
    main()
