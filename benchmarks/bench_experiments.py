"""Measurements behind docs/defaults.md and docs/results.md (probe + control, no generation by default).

  python benchmarks/bench_experiments.py defaults [--model smollm2] [--concept colours] [--k 4]
  python benchmarks/bench_experiments.py curves --model smollm2 --concepts colours numbers sentiment_positive
Writes JSON next to the printed markdown (docs/measurements/<name>.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import headpursuit_widget as hp
from headpursuit_widget import experiments as ex

OUT = Path(__file__).resolve().parent.parent / "docs" / "measurements"
# (label, rank_heads options, alpha, method)
CHOICES = [
    ("default: specificity, normalised rows, no norm folding, whole words, no chat, alpha -1", {}, -1.0, "somp"),
    ("alpha 0 (ablate)", {}, 0.0, "somp"),
    ("Logit Lens ranking", {}, -1.0, "logit_lens"),
    ("raw EVR (paper)", {"score": "evr"}, -1.0, "somp"),
    ("rows not normalised", {"normalize": False}, -1.0, "somp"),
    ("final norm folded", {"fold_norm": True}, -1.0, "somp"),
    ("sub-token rule: first_subtoken", {"rule": "first_subtoken"}, -1.0, "somp"),
    ("sub-token rule: all_subtokens", {"rule": "all_subtokens"}, -1.0, "somp"),
    ("chat template for capture", {"chat": True}, -1.0, "somp"),
]


def _fmt(curve, method, i):
    mass = curve.summary(method, "probe_mass")
    ctrl = curve.summary(method, "control")
    if method == "random":
        return (f"{mass['median'][i]:.2f}x [{mass['q25'][i]:.2f}-{mass['q75'][i]:.2f}]",
                f"{ctrl['median'][i]:+.2f} [{ctrl['q25'][i]:+.2f}, {ctrl['q75'][i]:+.2f}]")
    return f"{mass['median'][i]:.2f}x", f"{ctrl['median'][i]:+.2f}"


def defaults(args):
    hm = hp.load_model(args.model)
    rows, dump = [], []
    print(f"| choice | top {args.k} heads | concept mass | control (nats) | matched random mass | random control |")
    print("|---|---|---|---|---|---|")
    rankings = {}
    for label, opts, alpha, method in CHOICES[args.skip:]:
        t = time.time()
        key = json.dumps(opts, sort_keys=True)
        if key not in rankings:
            rankings[key] = hp.rank_heads(hm, None, args.concept, progress=False, **opts)
        ranking = rankings[key]
        curve = ex.suppression_curve(hm, args.concept, ks=(args.k,), alpha=alpha, methods=(method, "random"),
                                     n_random=args.n_random, ranking=ranking, budget=ex.Budget(n_generate=0),
                                     progress=False)
        m, c = _fmt(curve, method, 0)
        rm, rc = _fmt(curve, "random", 0)
        heads = " ".join(f"L{l}H{h}" for l, h in curve.heads[method][0][0])
        print(f"| {label} | {heads} | {m} | {c} | {rm} | {rc} |", flush=True)
        dump.append({"choice": label, "options": opts, "alpha": alpha, "method": method, "seconds": time.time() - t,
                     "curve": curve.to_dict()})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"defaults-{args.model}-{args.concept}-from{args.skip}.json").write_text(json.dumps(dump, indent=1))


def curves(args):
    hm = hp.load_model(args.model)
    budget = ex.Budget(n_generate=args.n_generate, max_new_tokens=args.max_new_tokens)
    for concept in args.concepts:
        t = time.time()
        ranking = hp.rank_heads(hm, None, concept, progress=False)
        curve = ex.suppression_curve(hm, concept, ks=args.ks, n_random=args.n_random, ranking=ranking,
                                     budget=budget, progress=False)
        stem = f"suppression-{args.model}-{concept}"
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{stem}.json").write_text(json.dumps(curve.to_dict(), indent=1))
        curve.save_html(OUT.parent / f"{stem}.html")
        n_above = int(ranking.above_null.sum())
        print(f"\n### {concept} on {args.model} ({time.time() - t:.0f} s; heads above every null: {n_above} of "
              f"{ranking.above_null.size}; top: {ranking.top(4)})")
        print("| k | SOMP mass | SOMP control | Logit Lens mass | Logit Lens control | random mass (median [IQR]) | random control |")
        print("|---|---|---|---|---|---|---|")
        for i, k in enumerate(curve.x):
            cells = [c for m in ("somp", "logit_lens", "random") for c in _fmt(curve, m, i)]
            print(f"| {k} | " + " | ".join(cells) + " |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("defaults")
    d.add_argument("--model", default="smollm2")
    d.add_argument("--concept", default="colours")
    d.add_argument("--k", type=int, default=4)
    d.add_argument("--n-random", type=int, default=10)
    d.add_argument("--skip", type=int, default=0, help="start at this row of CHOICES")
    c = sub.add_parser("curves")
    c.add_argument("--model", default="smollm2")
    c.add_argument("--concepts", nargs="+", default=["colours", "numbers", "sentiment_positive"])
    c.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    c.add_argument("--n-random", type=int, default=10)
    c.add_argument("--n-generate", type=int, default=0)
    c.add_argument("--max-new-tokens", type=int, default=24)
    args = p.parse_args()
    {"defaults": defaults, "curves": curves}[args.cmd](args)


if __name__ == "__main__":
    main()
