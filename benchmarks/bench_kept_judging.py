"""The selection and the verdict of a shipped concept in a new session: measured the first time, read
from disk after (engine/judging/kept.py).

Each run is a fresh child process with the model loaded before the clock starts. An "engine" child ranks
the concept (refine=False), then times ``hp.refine`` (the selection the grid's "does" view and "Edit top
heads" wait for) and ``hp.verify(k=4)``; a "widget" child times ``HeadPursuit(m, concept=...)`` until its
verdict line is in (issue 17: <= 5 s). Each is reported next to the baseline of the same process: one
unedited pass over the verify battery's prompts (what a single edit set costs). Each mode's first child
finds a folder of its own empty; the next ones read what it kept.

    python benchmarks/bench_kept_judging.py [--model smollm2] [--concept colours] [--repeats 2] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import importlib, json, sys, time
import torch
import headpursuit_widget as hp
from headpursuit_widget.engine.judging import categories
from headpursuit_widget.engine.judging.probes import next_token_logprobs

torch.set_num_threads(2)
model = hp.load_model(sys.argv[1])
clock = {}
if sys.argv[3] == "widget":
    t = time.perf_counter()
    w = hp.HeadPursuit(model, concept=sys.argv[2])
    assert w.wait(900, verdict=True)
    clock["widget_verdict_s"] = time.perf_counter() - t
    refined, verdict = w.ranking, w.verdict
    w.close()
else:
    ranking = hp.rank_heads(model, None, sys.argv[2], refine=False, progress=False)
    t = time.perf_counter()
    refined = hp.refine(model, ranking)
    clock["refine_s"] = time.perf_counter() - t
    t = time.perf_counter()
    verdict = hp.verify(model, refined, k=4).summary()
    clock["verify_s"] = time.perf_counter() - t
probe = importlib.import_module("headpursuit_widget.engine.judging.verify")._default_probe(refined.concept, 0)
prompts = categories.battery(model, refined.concept, probe, part="verify").prompts
t = time.perf_counter()
next_token_logprobs(model, prompts)
clock["one_pass_s"] = time.perf_counter() - t
print(json.dumps({**clock, "recommended": [list(h) for h in refined.recommended], "verdict": verdict}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--concept", default="colours")
    parser.add_argument("--repeats", type=int, default=2, help="new sessions after the first")
    parser.add_argument("--out", help="write the runs as JSON here")
    args = parser.parse_args()
    runs: dict[str, list] = {"engine": [], "widget": []}
    for mode, done in runs.items():
        with tempfile.TemporaryDirectory() as folder:
            env = dict(os.environ, HEADPURSUIT_CAPTURES=folder)
            for _ in range(1 + args.repeats):
                argv = [sys.executable, "-c", CHILD, args.model, args.concept, mode]
                out = subprocess.run(argv, env=env, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(out.stderr)
                done.append(json.loads(out.stdout.strip().splitlines()[-1]))
        for i, r in enumerate(done):
            one, same = (
                r["one_pass_s"],
                r["recommended"] == done[0]["recommended"] and r["verdict"] == done[0]["verdict"],
            )
            timed = [f"{k[:-2]} {v:.2f} s = {v / one:.1f} passes" for k, v in r.items() if k.endswith("_s")][:-1]
            print(
                f"{mode} {'first session' if i == 0 else f'new session {i}':14s} {', '.join(timed)} "
                f"(one pass {one:.2f} s); same set and verdict: {same}"
            )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"model": args.model, "concept": args.concept, "runs": runs}, fh, indent=1)


if __name__ == "__main__":
    main()
