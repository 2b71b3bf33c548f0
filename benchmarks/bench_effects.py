"""Effects of every head (issue 17): how well the screens (every head flipped at the answer position; the
gradient attribution) agree with exact flips, and what each costs against a capture of the same contexts,
on the default model.

Per concept: hp.effects(method="exact") flips all heads (one edited pass per head and batch, from the
head's layer on); hp.effects(method="attribution", n_check=0) estimates them from one forward and backward
pass per batch, and hp.effects(method="answer", n_check=0) flips every head at the last position only, on
the concept's 16 rank contexts, --n-other contexts of each other category and --n-control
control facts. Agreement: Spearman rank correlation over all heads of the concept's log mass ratio and of
the selectivity, and the overlap of the 10 most selective non-generic heads. Cost: seconds of each method
over seconds of hp.capture on the battery's prompts, measured in the same process (2 threads).

    python benchmarks/bench_effects.py --concepts colours,countries --out benchmarks/results/effects-smollm2-cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import headpursuit_widget as hp
from headpursuit_widget.engine.concepts.contexts import eliciting_contexts
from headpursuit_widget.engine.concepts.resolve import concept_record, resolve_concept, words_of
from headpursuit_widget.engine.judging.categories import battery
from headpursuit_widget.engine.judging.effects import N_CONTEXTS, SCREENS, measure_heads


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def agreement(exact, est) -> dict:
    """How an estimate ranks the heads against exact flips: Spearman over all heads (log concept ratio,
    selectivity), the overlap of the 10 most selective non-generic heads, where it ranks exact's 10."""
    order = est.top(est.n_layers * est.n_heads)
    return dict(
        spearman_log_mass=float(spearmanr(np.log(exact.mass_ratio.ravel()), np.log(est.mass_ratio.ravel()))[0]),
        spearman_selectivity=float(spearmanr(exact.selectivity.ravel(), est.selectivity.ravel())[0]),
        top10_overlap=len(set(exact.top(10)) & set(est.top(10))),
        ranks_of_exact_top10=[order.index(h) if h in order else None for h in exact.top(10)],
        top10=est.top(10),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--concepts", default="colours,countries")
    ap.add_argument("--n-other", type=int, default=4, help="prompts per other category")
    ap.add_argument("--n-control", type=int, default=12, help="control facts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    # nothing kept from an earlier run (engine/judging/kept.py): every method's time is its own computation
    os.environ["HEADPURSUIT_CAPTURES"] = tempfile.mkdtemp(prefix="bench-effects-")
    torch.set_num_threads(args.threads)
    m = hp.load_model(args.model)
    result = dict(model=args.model, threads=args.threads, concepts={})
    for name in args.concepts.split(","):
        record = concept_record(*resolve_concept(name, m.tokenizer))
        prompts = eliciting_contexts(name, words_of(record), part="rank")[:N_CONTEXTS]
        bat = battery(m, record, prompts, part="rank")
        bat = dataclasses.replace(  # a smaller battery: exact flips of all heads cost one pass per head and batch
            bat,
            others=tuple(dataclasses.replace(c, prompts=c.prompts[: args.n_other]) for c in bat.others),
            control=bat.control[: args.n_control],
            domains=bat.domains[: args.n_control],
        )
        hp.capture(m, bat.prompts[:4], positions="last", progress=False)  # warm-up
        _, t_capture = timed(lambda bat=bat: hp.capture(m, bat.prompts, positions="last", progress=False))
        exact, t_exact = timed(lambda bat=bat: measure_heads(m, bat, alpha=-1.0, method="exact"))
        row = dict(n_prompts=len(bat.prompts), capture_s=t_capture, exact_s=t_exact, others=list(exact.others))
        row["exact_over_capture"] = t_exact / t_capture
        row["exact"] = {f: getattr(exact, f).tolist() for f in ("mass_ratio", "other_ratios", "control_drop")}
        row["exact_top10"] = exact.top(10)
        line = f"{name}: {len(bat.prompts)} prompts | capture {t_capture:.1f}s, exact {t_exact:.1f}s"
        for method in SCREENS:
            est, took = timed(
                lambda bat=bat, method=method: measure_heads(m, bat, alpha=-1.0, method=method, n_check=0)
            )
            agree = agreement(exact, est)
            row[method] = dict(seconds=took, over_capture=took / t_capture, **agree)
            line += (
                f"\n  {method}: {took:.1f}s ({took / t_capture:.2f}x capture) | Spearman log mass "
                f"{agree['spearman_log_mass']:.2f}, selectivity {agree['spearman_selectivity']:.2f}, top-10 overlap "
                f"{agree['top10_overlap']}/10, exact's top 10 at ranks {agree['ranks_of_exact_top10']}"
            )
        print(line + f"\n  exact top {row['exact_top10']}", flush=True)
        result["concepts"][name] = row
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
