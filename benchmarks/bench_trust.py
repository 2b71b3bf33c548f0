"""Held-out trust benchmark (issue 10): do the recommended heads remove a concept, more than random heads,
without costing unrelated facts? And does hp.verify say so?

Protocol, per concept of benchmarks/heldout and per resampled ranking-context set (seed):
  r = hp.rank_heads(m, None, hp.Concept.from_words(name, words, tok), seed=seed); edit r.top(4) at alpha -1;
  mass: next-token probability of the concept's single-token variants after the split's probe questions,
  ratio to unedited (ratio of means); control: mean log-prob of the shipped control facts the model gets
  right, drop in nats; random: median over --n-random layer-matched draws (hp.random_heads);
  significant: r.significant.sum(); verdict: hp.verify(m, r, k=4).verdict with its defaults.
--split final2 reads benchmarks/heldout/final2 instead: its own word lists, probe questions and control facts
(the evaluator's control; hp.verify keeps its defaults).
"specific" by this evaluation: mass <= 0.35, random >= 0.7, control drop <= random drop + 0.15.

    python benchmarks/bench_trust.py --split dev            # where every default was chosen
    python benchmarks/bench_trust.py --split final --out docs/measurements/trust-smollm2-final.json
    python benchmarks/bench_trust.py --split final2       # the fresh test split, run once at the end
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import headpursuit_widget as hp
from headpursuit_widget.engine.probes import facts_known, mass_and_control

HELDOUT = Path(__file__).parent / "heldout"
CONCEPTS = ("colours", "countries", "animals", "numbers", "emotions", "nouns")


def heldout_folder(split: str) -> Path:
    """Where a split's concept files (and, for final2, control.json) are: final2 has its own folder."""
    return HELDOUT / "final2" if split == "final2" else HELDOUT


def control_pairs(split: str) -> list[tuple[str, str]]:
    """The evaluator's control facts before filtering: final2's own, else the shipped control."""
    if split != "final2":
        return hp.concepts.control()
    return [(p, a) for p, a in json.loads((heldout_folder(split) / "control.json").read_text())["pairs"]]


def measure(m, probes, token_ids, pairs, edits):
    """(mean concept mass over probes, control log-probs (n_pairs,)) under edits."""
    return mass_and_control(m, probes, pairs, token_ids, [edits])[0]


def evaluate(m, ranking, concept, probes, pairs, k, n_random, base):
    """The evaluator's numbers for ranking.top(k) against layer-matched random heads."""
    base_mass, base_ctrl = base

    def one(heads):
        mass, ctrl = measure(m, probes, concept.token_ids, pairs, {h: -1.0 for h in heads})
        return float(mass / base_mass), float((base_ctrl - ctrl).mean())

    top = ranking.top(k)
    mass, drop = one(top)
    rand = [one(hp.random_heads(ranking, k, seed=100 + i)) for i in range(n_random)]
    r_mass, r_drop = float(np.median([r[0] for r in rand])), float(np.median([r[1] for r in rand]))
    ok = mass <= 0.35 and r_mass >= 0.7 and drop <= r_drop + 0.15
    return dict(heads=top, mass=mass, control_drop=drop, random_mass=r_mass, random_control_drop=r_drop, specific=ok)


def describe(row) -> str:
    """One line per (concept, seed)."""
    e = row["refined"]
    line = (
        f"{row['concept']:10s} seed {row['seed']} sig {row['n_significant']:3d} top {e['heads']} "
        f"mass {e['mass']:.2f} ctrl {e['control_drop']:.2f} | random {e['random_mass']:.2f} "
        f"ctrl {e['random_control_drop']:.2f} -> {'SPECIFIC' if e['specific'] else '-'}"
    )
    if "unrefined" in row:
        line += f" | unrefined {row['unrefined']['mass']:.2f}/{row['unrefined']['control_drop']:.2f}"
    if "verify" in row:
        v = row["verify"]
        line += (
            f" | verify {v['verdict']} ({v['mass_ratio']:.2f}, random {v['random_median']:.2f}, "
            f"ctrl {v['control_drop']:.2f}/{v['random_control_drop']:.2f})"
        )
    return line + f" [{row['rank_s']:.0f}s]"


def summarise(paths) -> str:
    """Markdown table from saved runs: per concept, median [min, max] over seeds of each number."""
    rows = [row for path in paths for row in json.loads(Path(path).read_text())["rows"]]
    lines = [
        "| concept | seeds | top-4 mass | random mass | control drop | random control drop | significant | "
        "evaluation: specific | verify verdicts |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def spread(values, fmt="{:.2f}"):
        return f"{fmt.format(np.median(values))} [{fmt.format(min(values))}, {fmt.format(max(values))}]"

    for name in dict.fromkeys(r["concept"] for r in rows):
        sel = [r for r in rows if r["concept"] == name]
        e = [r["refined"] for r in sel]
        verdicts = ", ".join(r["verify"]["verdict"] for r in sel if "verify" in r)
        lines.append(
            f"| {name} | {len(sel)} | {spread([x['mass'] for x in e])}x | {spread([x['random_mass'] for x in e])}x | "
            f"{spread([x['control_drop'] for x in e])} | {spread([x['random_control_drop'] for x in e])} | "
            f"{spread([r['n_significant'] for r in sel], '{:.0f}')} | {sum(x['specific'] for x in e)}/{len(sel)} | "
            f"{verdicts} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--split", choices=("dev", "final", "final2"), default="dev")
    ap.add_argument("--concepts", default=",".join(CONCEPTS))
    ap.add_argument("--seeds", default="0,1,2", help="ranking-context resamples (rank_heads seed)")
    ap.add_argument("--k", type=int, default=4, help="heads edited")
    ap.add_argument("--n-random", type=int, default=3)
    ap.add_argument("--unrefined", action="store_true", help="also evaluate the z-score top k without refinement")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--summarise", nargs="+", metavar="JSON", help="print a markdown table of saved runs and exit")
    args = ap.parse_args()
    if args.summarise:
        print(summarise(args.summarise))
        return
    torch.set_num_threads(args.threads)
    m = hp.load_model(args.model)
    tok = m.tokenizer
    pairs = facts_known(m, control_pairs(args.split))
    rows = []
    for name in args.concepts.split(","):
        data = json.loads((heldout_folder(args.split) / f"{name}.json").read_text())
        concept = hp.Concept.from_words(name, data["words"], tok)
        probes = [p["prompt"] for p in data[args.split]]
        base = measure(m, probes, concept.token_ids, pairs, None)
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.time()
            r = hp.rank_heads(m, None, concept, seed=seed, progress=False)
            t_rank = time.time() - t0
            row = dict(concept=name, seed=seed, n_significant=int(r.significant.sum()), rank_s=t_rank)
            row["refined"] = evaluate(m, r, concept, probes, pairs, args.k, args.n_random, base)
            if args.unrefined:
                plain = r.unrefined()
                row["unrefined"] = evaluate(m, plain, concept, probes, pairs, args.k, args.n_random, base)
            if not args.no_verify:
                v = hp.verify(m, r, k=args.k)
                row["verify"] = dict(
                    verdict=v.verdict,
                    mass_ratio=v.mass_ratio,
                    random_median=v.random_median,
                    control_drop=v.control_drop,
                    random_control_drop=v.random_control_drop,
                )
            row["refine"] = r.options.get("refine")
            rows.append(row)
            print(describe(row), flush=True)
            if args.out:  # after every row: a long run that is stopped keeps what it measured
                out = dict(model=args.model, split=args.split, k=args.k, n_random=args.n_random, n_control=len(pairs))
                out["rows"] = rows
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(out, indent=1, default=list) + "\n")


if __name__ == "__main__":
    main()
