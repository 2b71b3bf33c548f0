"""Measurements behind docs/defaults.md and docs/results.md (probe + control, no generation by default).

  python benchmarks/bench_experiments.py defaults [--model smollm2] [--concept colours] [--k 4]
  python benchmarks/bench_experiments.py curves --model smollm2 --concepts colours numbers sentiment_positive
  python benchmarks/bench_experiments.py enhance --concept sentiment_positive --k 4 --n-generate 12
  python benchmarks/bench_experiments.py bigmodels --models gemma3-270m qwen2.5-coder-0.5b qwen2.5-coder-1.5b
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
# (label, rank_heads options, alpha, head selection)
CHOICES = [
    ("default: specificity, normalised rows, no norm folding, whole words, no chat, alpha -1", {}, -1.0, "specificity"),
    ("alpha 0 (ablate)", {}, 0.0, "specificity"),
    ("Logit Lens ranking", {}, -1.0, "logit_lens"),
    ("raw EVR (paper)", {"score": "evr"}, -1.0, "evr"),
    ("rows not normalised", {"normalize": False}, -1.0, "specificity"),
    ("final norm folded", {"fold_norm": True}, -1.0, "specificity"),
    ("sub-token rule: first_subtoken", {"rule": "first_subtoken"}, -1.0, "specificity"),
    ("sub-token rule: all_subtokens", {"rule": "all_subtokens"}, -1.0, "specificity"),
    ("chat template for capture", {"chat": True}, -1.0, "specificity"),
]


def _fmt(curve, selection, i):
    mass = curve.summary(selection, "probe_mass")
    ctrl = curve.summary(selection, "control")
    if selection == "random":
        return (
            f"{mass['median'][i]:.2f}x [{mass['q25'][i]:.2f}-{mass['q75'][i]:.2f}]",
            f"{ctrl['median'][i]:+.2f} [{ctrl['q25'][i]:+.2f}, {ctrl['q75'][i]:+.2f}]",
        )
    return f"{mass['median'][i]:.2f}x", f"{ctrl['median'][i]:+.2f}"


def defaults(args):
    model = hp.load_model(args.model)
    _rows, dump = [], []
    print(f"| choice | top {args.k} heads | concept mass | control (nats) | matched random mass | random control |")
    print("|---|---|---|---|---|---|")
    rankings = {}
    for label, opts, alpha, selection in CHOICES[args.skip :]:
        t = time.time()
        key = json.dumps(opts, sort_keys=True)
        if key not in rankings:
            rankings[key] = hp.rank_heads(model, None, args.concept, progress=False, **opts)
        ranking = rankings[key]
        curve = ex.suppression_curve(
            model,
            args.concept,
            ks=(args.k,),
            alpha=alpha,
            selections=(selection, "random"),
            n_random=args.n_random,
            ranking=ranking,
            budget=ex.Budget(n_generate=0),
            progress=False,
        )
        m, c = _fmt(curve, selection, 0)
        rm, rc = _fmt(curve, "random", 0)
        heads = " ".join(f"L{l}H{h}" for l, h in curve.heads[selection][0][0])
        print(f"| {label} | {heads} | {m} | {c} | {rm} | {rc} |", flush=True)
        dump.append(
            {
                "choice": label,
                "options": opts,
                "alpha": alpha,
                "selection": selection,
                "seconds": time.time() - t,
                "curve": curve.to_dict(),
            }
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"defaults-{args.model}-{args.concept}-from{args.skip}.json").write_text(json.dumps(dump, indent=1))


def curves(args):
    model = hp.load_model(args.model)
    budget = ex.Budget(n_generate=args.n_generate, max_new_tokens=args.max_new_tokens)
    for concept in args.concepts:
        t = time.time()
        ranking = hp.rank_heads(model, None, concept, progress=False)
        curve = ex.suppression_curve(
            model, concept, ks=args.ks, n_random=args.n_random, ranking=ranking, budget=budget, progress=False
        )
        stem = f"suppression-{args.model}-{concept}"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.json").write_text(json.dumps(curve.to_dict(), indent=1))
        measures = (
            ("probe_mass", "control") if args.n_generate == 0 else ("probe_mass", "control", "word_rate", "perplexity")
        )
        curve.save_html((args.html or args.out) / f"{stem}.html", measures)
        n_above = int(ranking.above_null.sum())
        print(
            f"\n### {concept} on {args.model} ({time.time() - t:.0f} s; heads above every null: {n_above} of "
            f"{ranking.above_null.size}; top: {ranking.top(4)})"
        )
        print(
            "| k | SOMP mass | SOMP control | Logit Lens mass | Logit Lens control "
            "| random mass (median [IQR]) | random control |"
        )
        print("|---|---|---|---|---|---|---|")
        for i, k in enumerate(curve.x):
            cells = [c for m in ("specificity", "logit_lens", "random") for c in _fmt(curve, m, i)]
            print(f"| {k} | " + " | ".join(cells) + " |", flush=True)


def enhance(args):
    """enhancement_curve: scale the top-k heads by each alpha; generations on the neutral prompts."""
    model = hp.load_model(args.model)
    t = time.time()
    ranking = hp.rank_heads(model, None, args.concept, progress=False)
    budget = ex.Budget(n_generate=args.n_generate, max_new_tokens=args.max_new_tokens)
    curve = ex.enhancement_curve(
        model,
        args.concept,
        k=args.k,
        alphas=args.alphas,
        n_random=args.n_random,
        ranking=ranking,
        budget=budget,
        progress=False,
    )
    stem = f"enhancement-{args.model}-{args.concept}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(curve.to_dict(), indent=1))
    print(
        f"\n### enhancement of {args.concept} on {args.model}, k = {args.k} ({time.time() - t:.0f} s; "
        f"top: {ranking.top(args.k)}; {curve.settings['n_generate']} neutral prompts, {args.max_new_tokens} tokens)"
    )
    print(
        f"unedited: word rate {curve.baseline['word_rate']:.4f}, probe mass {curve.baseline['probe_mass']:.4f}, "
        f"control {curve.baseline['control']:.2f}, perplexity {curve.baseline['perplexity']:.1f}"
    )
    print("| alpha | heads | word rate / unedited | probe mass / unedited | control (nats) | perplexity / unedited |")
    print("|---|---|---|---|---|---|")
    for selection in curve.values:
        s = {m: curve.summary(selection, m)["median"] for m in ex.MEASURES}
        for i, a in enumerate(curve.x):
            print(
                f"| {a:g} | {selection} | {s['word_rate'][i]:.2f}x | {s['probe_mass'][i]:.2f}x | "
                f"{s['control'][i]:+.2f} | "
                f"{s['perplexity'][i]:.2f}x |",
                flush=True,
            )


# Ordinary words with no shared theme, to check the null: a concept made of them should have no heads
# above the random-word null if the null is matched to how concept dictionaries are built.
PLAIN_WORDS = [
    "table",
    "river",
    "window",
    "doctor",
    "garden",
    "pencil",
    "mountain",
    "letter",
    "kitchen",
    "bridge",
    "coffee",
    "engine",
    "island",
    "market",
    "pocket",
    "village",
    "ticket",
    "ladder",
    "hammer",
    "forest",
    "basket",
    "teacher",
    "bottle",
    "castle",
    "camera",
    "office",
    "carpet",
    "pillow",
    "rocket",
    "circle",
    "button",
    "station",
]


def nullcheck(args):
    """Heads above every null for the concept versus for a list of theme-less ordinary words."""
    model = hp.load_model(args.model)
    prompts = hp.concepts.get(args.concept).rank_prompts
    out = {}
    for label, words in ((args.concept, args.concept), ("plain words", PLAIN_WORDS)):
        r = hp.rank_heads(model, prompts, words, progress=False)
        spec = r.score_table["specificity"]
        out[label] = {
            "above_null": int(r.above_null.sum()),
            "n_heads": int(spec.size),
            "max_specificity": float(spec.max()),
            "max_evr": float(r.score_table["evr"].max()),
            "top": [[l, h, float(spec[l, h]), [w for w, _ in r.tokens(l, h, 6)]] for l, h in r.top(4)],
        }
        print(
            f"{args.model} {label}: above every null {out[label]['above_null']} of {spec.size}; "
            f"max specificity {spec.max():+.3f}; top {out[label]['top']}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"nullcheck-{args.model}-{args.concept}.json").write_text(json.dumps(out, indent=1))


def bigmodels(args):
    """Probe only (no generation): rank with the default score, then edit k ~1.5% and ~3% of heads
    with alpha -1 and 0 (SOMP specificity, Logit Lens, layer-matched random heads)."""
    for name in args.models:
        t = time.time()
        model = hp.load_model(name)
        load_s = time.time() - t
        ranking = hp.rank_heads(model, None, args.concept, progress=False)
        rank_s = time.time() - t - load_s
        n_heads = ranking.n_layers * ranking.n_heads
        ks = sorted({max(1, round(f * n_heads)) for f in args.fractions})
        above = ranking.above_null
        tok = model.tokenizer
        multi = sum(len(tok.encode(a, add_special_tokens=False)) > 1 for _, a in hp.concepts.control())
        top = ranking.top(max(ks))
        info = {
            "model": name,
            "n_layers": ranking.n_layers,
            "n_heads": ranking.n_heads,
            "ks": ks,
            "above_null": int(above.sum()),
            "above_null_heads": [list(map(int, h)) for h in zip(*above.nonzero())],
            "top": [
                [
                    l,
                    h,
                    float(ranking.scores[l, h]),
                    float(ranking.score_table["evr"][l, h]),
                    float(ranking.null_evr[:, l, h].max()),
                    [w for w, _ in ranking.tokens(l, h, 6)],
                ]
                for l, h in top
            ],
            "logit_lens_top": ranking.with_score("logit_lens").top(max(ks)),
            "control_multi_token_answers": int(multi),
            "control_pairs": len(hp.concepts.control()),
            "load_s": load_s,
            "rank_s": rank_s,
            "curves": {},
        }
        print(
            f"\n### {args.concept} on {name} ({n_heads} heads; above every null: {info['above_null']}; "
            f"control answers split into >1 token: {multi} of {info['control_pairs']})"
        )
        print(
            "top SOMP: "
            + ", ".join(
                f"L{l}H{h} spec {s:+.3f} (evr {e:.3f}, max null {n:.3f}) {w}" for l, h, s, e, n, w in info["top"][:4]
            ),
            flush=True,
        )
        print(
            "| alpha | k | SOMP mass | SOMP control | Logit Lens mass | Logit Lens control "
            "| random mass (median [IQR]) | random control |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for alpha in args.alphas:
            curve = ex.suppression_curve(
                model,
                args.concept,
                ks=ks,
                alpha=alpha,
                n_random=args.n_random,
                ranking=ranking,
                budget=ex.Budget(n_generate=0),
                progress=False,
            )
            info["curves"][str(alpha)] = curve.to_dict()
            for i, k in enumerate(curve.x):
                cells = [c for m in ("specificity", "logit_lens", "random") for c in _fmt(curve, m, i)]
                print(f"| {alpha:g} | {k} ({100 * k / n_heads:.1f}%) | " + " | ".join(cells) + " |", flush=True)
        info["seconds"] = time.time() - t
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"bigmodel-{name}-{args.concept}.json").write_text(json.dumps(info, indent=1))
        print(f"({info['seconds']:.0f} s: load {load_s:.0f} s, ranking {rank_s:.0f} s)", flush=True)
        del model, ranking


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT, help="folder for the JSON results (default docs/measurements)")
    p.add_argument("--html", type=Path, help="folder for the curve plots (default docs/, or --out when given)")
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
    e = sub.add_parser("enhance")
    e.add_argument("--model", default="smollm2")
    e.add_argument("--concept", default="sentiment_positive")
    e.add_argument("--k", type=int, default=4)
    e.add_argument("--alphas", type=float, nargs="+", default=[1, 2, 3, 5, 8])
    e.add_argument("--n-random", type=int, default=3)
    e.add_argument("--n-generate", type=int, default=12)
    e.add_argument("--max-new-tokens", type=int, default=24)
    n = sub.add_parser("nullcheck")
    n.add_argument("--model", default="smollm2")
    n.add_argument("--concept", default="colours")
    b = sub.add_parser("bigmodels")
    b.add_argument("--models", nargs="+", default=["gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    b.add_argument("--concept", default="colours")
    b.add_argument("--alphas", type=float, nargs="*", default=[-1.0, 0.0], help="none: ranking only")
    b.add_argument("--fractions", type=float, nargs="+", default=[0.015, 0.03], help="k as shares of all heads")
    b.add_argument("--n-random", type=int, default=3)
    args = p.parse_args()
    if args.html is None and args.out == OUT:
        args.html = OUT.parent
    {"defaults": defaults, "curves": curves, "bigmodels": bigmodels, "enhance": enhance, "nullcheck": nullcheck}[
        args.cmd
    ](args)


if __name__ == "__main__":
    main()
