"""Peak memory of ranking on the default model, one child process per case (issue 11's targets).

    .venv/bin/python benchmarks/bench_memory.py [--cases words250 words500 words1000 prompts2000]
                                                [--json benchmarks/results/memory-cpu.json]

Cases: concepts of 250, 500 and 1,000 random whole words ranked over the 42 "colours" ranking prompts,
and the "colours" concept over 2,000 prompts. Each child loads SmolLM2, runs one small warm-up ranking
(so that lazily loaded code and tokenizer caches are not counted), then measures resident memory
above that state with the kernel's high-water mark (VmHWM, reset through /proc/self/clear_refs):

- capture_peak_mb: peak while capturing the head writes (words250 only: the other cases rank
  synthetic writes of the same shape, since capturing 2,000 prompts takes too long on 2 shared cores
  and SOMP's memory does not depend on the values);
- rank_peak_mb: peak while ranking with activations= those writes (SOMP for the concept and its 30 nulls, no refinement;
  Logit Lens), the stored writes included;
- stored_mb: the stored writes, (layers, heads, prompts, d_model) float32.

Targets: rank_peak_mb <= 2 x stored_mb for any concept size ("rank_within_2x_stored"), and a
1,000-word concept ranked in at most 1.5 GB above the model.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one

# case -> (words or None for "colours", prompts, capture for real: else synthetic writes of the same shape)
CASES = {
    "words250": (250, 42, True),
    "words500": (500, 42, False),
    "words1000": (1000, 42, False),
    "prompts2000": (None, 2000, False),
}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def _prompts(n: int) -> list[str]:
    """The colours ranking prompts, then every shipped prompt, varied by a counter up to n."""
    from headpursuit_widget import concepts

    base = list(concepts.get("colours").rank_prompts)
    pool = [
        p for name in concepts.names() for p in concepts.get(name).rank_prompts + concepts.get(name).neutral_prompts
    ]
    out = base[:n]
    i = 0
    while len(out) < n:
        out.append(f"{pool[i % len(pool)]} (note {i // len(pool) + 1})")
        i += 1
    return out


def child(case: str) -> dict:
    import torch

    import headpursuit_widget as hp
    from headpursuit_widget.engine.concepts.null_words import random_words

    torch.set_num_threads(2)
    n_words, n_prompts, real = CASES[case]
    m = hp.load_model("smollm2")
    prompts = _prompts(n_prompts)
    if n_words is None:
        concept = "colours"
    else:
        pool = random_words(m.tokenizer)
        concept = [pool[i] for i in np.random.default_rng(0).choice(len(pool), n_words, replace=False)]
    hp.rank_heads(m, prompts[:4], "colours", k=5, n_null=2, refine=False, progress=False)  # warm-up
    gc.collect()
    base = _status_kb("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    if real:
        acts = hp.capture(m, prompts, progress=False)
    else:  # same shape and scale; SOMP's memory does not depend on the values
        acts = torch.randn(m.n_layers, m.n_heads, n_prompts, m.d_model) * 0.05
    t_capture = time.perf_counter() - start
    capture_peak = _status_kb("VmHWM") - base
    _reset_peak()
    start = time.perf_counter()
    ranking = hp.rank_heads(m, prompts, concept, activations=acts, refine=False, progress=False)
    t_rank = time.perf_counter() - start
    rank_peak = _status_kb("VmHWM") - base
    stored = acts.numel() * acts.element_size() / 2**20
    return {
        "case": case,
        "words": n_words or len(ranking.concept["words"]),
        "dictionary_tokens": len(ranking.concept["token_ids"]),
        "prompts": n_prompts,
        "stored_mb": round(stored, 1),
        "activations": "captured" if real else "synthetic (randn, same shape)",
        "capture_peak_mb": round(capture_peak / 1024, 1) if real else None,
        "rank_peak_mb": round(rank_peak / 1024, 1),
        "rank_peak_over_stored": round(rank_peak / 1024 / stored, 2),
        "rank_within_2x_stored": rank_peak / 1024 <= 2 * stored,
        "capture_s": round(t_capture, 1) if real else None,
        "rank_s": round(t_rank, 1),
        "process_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--json", help="write the results here")
    p.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    results = []
    children = [  # in parallel: each measures its own process only
        subprocess.Popen(
            [sys.executable, __file__, "--child", c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c in args.cases
    ]
    for proc in children:
        out, err = proc.communicate()
        if proc.returncode != 0:
            print(err[-3000:], file=sys.stderr)
            return proc.returncode
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    big = [r for r in results if r["case"] == "words1000"]
    summary = {
        "results": results,
        "all_rank_within_2x_stored": all(r["rank_within_2x_stored"] for r in results),
        "words1000_within_1.5GB": all(r["rank_peak_mb"] <= 1536 for r in big) if big else None,
        "machine": "project machine, 2 CPU cores shared with other jobs, real SmolLM2 (float32)",
        "command": "benchmarks/bench_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
