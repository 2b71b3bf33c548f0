"""Held-out trust benchmark (issues 10 and 17): do the recommended heads remove a concept's answers, more
than random heads, while OTHER categories' answers and unrelated facts stay? And does hp.verify say so?

Protocol, per concept of the split and per resampled ranking-context set (seed):
  r = hp.rank_heads(m, None, hp.Concept.from_words(name, words, tok), seed=seed) (with --shipped the default
  path, hp.rank_heads(m, None, name, seed=seed)); edit r.top(k) at alpha -1,
  k = the size of the selective set r.recommended (at most --k), or --k when it is empty;
  mass: next-token probability of the concept's single-token variants after the split's probe questions,
  ratio to unedited (ratio of means); others: the same ratio for every other concept of the split (not
  "nouns"), each on its own probe questions and tokens (tokens shared with the concept left out), and
  their median; control: mean log-prob of the split's control facts the model gets right, drop in nats;
  random: median over --n-random layer-matched draws (hp.random_heads); significant: r.significant.sum();
  verdict: hp.verify(m, r, k=k).verdict with its defaults (its own held-out material, not the split's).
--split final2 / final3 / final4 / final5 read benchmarks/heldout/final2 / final3 / final4 / final5: their own
word lists, probe questions and control facts (the evaluator's control; hp.verify keeps its defaults).
"specific" by this evaluation (issue 17): mass <= 0.35, others' median >= 0.8, random >= 0.7, control drop
<= random drop + 0.3; "generic": others' median < 0.8.

    python benchmarks/bench_trust.py --split dev            # where every default was chosen
    python benchmarks/bench_trust.py --split final --out docs/measurements/trust-smollm2-final.json
    python benchmarks/bench_trust.py --split final2       # the issue-10 test split, used once
    python benchmarks/bench_trust.py --split final3 --concepts colours,countries,animals,numbers,emotions,nouns
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import headpursuit_widget as hp
from headpursuit_widget.engine.judging.probes import answer_ids, facts_known, next_token_logprobs_each

HELDOUT = Path(__file__).parent / "heldout"
CONCEPTS = ("colours", "countries", "animals", "numbers", "emotions", "nouns")
OWN_FOLDER = ("final2", "final3", "final4", "final5")  # splits with their own folder and control facts


def heldout_folder(split: str) -> Path:
    """Where a split's concept files (and, for final2/final3/final4, control.json) are."""
    return HELDOUT / split if split in OWN_FOLDER else HELDOUT


def control_pairs(split: str) -> list[tuple[str, str]]:
    """The evaluator's control facts before filtering: the split's own, else the shipped control."""
    if split not in OWN_FOLDER:
        return hp.concepts.control()
    return [(p, a) for p, a in json.loads((heldout_folder(split) / "control.json").read_text())["pairs"]]


def split_categories(m, split: str) -> dict:
    """{name: (probe prompts, token ids)} of every concept file of the split."""
    out = {}
    for path in sorted(heldout_folder(split).glob("*.json")):
        data = json.loads(path.read_text())
        if split in data:
            concept = hp.Concept.from_words(data["name"], data["words"], m.tokenizer)
            out[data["name"]] = ([p["prompt"] for p in data[split]], list(concept.token_ids))
    return out


def readings(m, name, cats, pairs, edit_sets):
    """Per edit set: (concept mass, {other: mass}, control log-probs) from one pass over every prompt."""
    probes, ids = cats[name]
    others = {o: [i for i in oid if i not in set(ids)] for o, (_, oid) in cats.items() if o not in (name, "nouns")}
    prompts = probes + [p for o in others for p in cats[o][0]] + [p for p, _ in pairs]
    columns = sorted(set(ids).union(*others.values()) | set(answer_ids(m.tokenizer, pairs)))
    where = {t: j for j, t in enumerate(columns)}
    control_cols = torch.as_tensor([where[a] for a in answer_ids(m.tokenizer, pairs)])

    def mass(lp, toks):
        return float(lp[:, [where[t] for t in toks]].double().logsumexp(1).exp().mean())

    out = []
    for lp in next_token_logprobs_each(m, prompts, edit_sets, columns=columns):
        start, other_mass = len(probes), {}
        for o, toks in others.items():
            n = len(cats[o][0])
            other_mass[o] = mass(lp[start : start + n], toks)
            start += n
        ctrl = lp[start:][torch.arange(len(pairs)), control_cols].double().numpy()
        out.append((mass(lp[: len(probes)], ids), other_mass, ctrl))
    return out


def evaluate(m, ranking, name, cats, pairs, k, n_random):
    """The evaluator's numbers for ranking.top(k) against layer-matched random heads."""
    top = ranking.top(k)
    sets = [top, *(hp.random_heads(ranking, k, seed=100 + i) for i in range(n_random))]
    (b_mass, b_other, b_ctrl), *edited = readings(m, name, cats, pairs, [None, *({h: -1.0 for h in s} for s in sets)])
    rows = [
        (mass / b_mass, {o: v / b_other[o] for o, v in other.items()}, float((b_ctrl - ctrl).mean()))
        for mass, other, ctrl in edited
    ]
    (mass, others, drop), rand = rows[0], rows[1:]
    r_mass, r_drop = float(np.median([r[0] for r in rand])), float(np.median([r[2] for r in rand]))
    o_med = float(np.median(list(others.values())))
    ok = mass <= 0.35 and o_med >= 0.8 and r_mass >= 0.7 and drop <= r_drop + 0.3
    return dict(
        heads=top,
        mass=mass,
        others=others,
        others_median=o_med,
        control_drop=drop,
        random_mass=r_mass,
        random_control_drop=r_drop,
        specific=ok,
        generic=o_med < 0.8,
    )


def describe(row) -> str:
    """One line per (concept, seed)."""
    e = row["refined"]
    line = (
        f"{row['concept']:10s} seed {row['seed']} sig {row['n_significant']:3d} top {e['heads']} "
        f"mass {e['mass']:.2f} others {e['others_median']:.2f} ctrl {e['control_drop']:.2f} | random "
        f"{e['random_mass']:.2f} ctrl {e['random_control_drop']:.2f} -> "
        f"{'SPECIFIC' if e['specific'] else 'generic' if e['generic'] else '-'}"
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
        "| concept | seeds | heads | mass | other categories (median) | random mass | control drop | "
        "random control drop | significant | evaluation: specific | verify verdicts |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def spread(values, fmt="{:.2f}"):
        return f"{fmt.format(np.median(values))} [{fmt.format(min(values))}, {fmt.format(max(values))}]"

    for name in dict.fromkeys(r["concept"] for r in rows):
        sel = [r for r in rows if r["concept"] == name]
        e = [r["refined"] for r in sel]
        verdicts = ", ".join(r["verify"]["verdict"] for r in sel if "verify" in r)
        lines.append(
            f"| {name} | {len(sel)} | {spread([len(x['heads']) for x in e], '{:.0f}')} | "
            f"{spread([x['mass'] for x in e])}x | "
            f"{spread([x['others_median'] for x in e])}x | {spread([x['random_mass'] for x in e])}x | "
            f"{spread([x['control_drop'] for x in e])} | {spread([x['random_control_drop'] for x in e])} | "
            f"{spread([r['n_significant'] for r in sel], '{:.0f}')} | {sum(x['specific'] for x in e)}/{len(sel)} | "
            f"{verdicts} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--split", choices=("dev", "final", "final2", "final3", "final4", "final5"), default="dev")
    ap.add_argument("--concepts", default=",".join(CONCEPTS))
    ap.add_argument("--seeds", default="0,1,2", help="ranking-context resamples (rank_heads seed)")
    ap.add_argument("--k", type=int, default=4, help="at most this many heads edited")
    ap.add_argument("--n-random", type=int, default=3)
    ap.add_argument("--unrefined", action="store_true", help="also evaluate the z-score top k without refinement")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument(
        "--shipped",
        action="store_true",
        help="rank the shipped concept of each name (the default path, rank_heads(m, None, name)) instead of the "
        "split's word list, where one is shipped; masses still read the split's own tokens",
    )
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
    cats = split_categories(m, args.split)
    rows = []
    for name in args.concepts.split(","):
        data = json.loads((heldout_folder(args.split) / f"{name}.json").read_text())
        shipped = args.shipped and name in hp.concepts.names()  # else the split's words (emotions: none shipped)
        concept = name if shipped else hp.Concept.from_words(name, data["words"], tok)
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.time()
            r = hp.rank_heads(m, None, concept, seed=seed, progress=False)
            t_rank = time.time() - t0
            row = dict(concept=name, seed=seed, n_significant=int(r.significant.sum()), rank_s=t_rank)
            row["ranked"] = "shipped concept" if shipped else "the split's word list"
            k = min(args.k, len(r.recommended)) or args.k
            row["refined"] = evaluate(m, r, name, cats, pairs, k, args.n_random)
            if args.unrefined:
                row["unrefined"] = evaluate(m, r.unrefined(), name, cats, pairs, k, args.n_random)
            if not args.no_verify:
                v = hp.verify(m, r, k=k)
                row["verify"] = dict(
                    verdict=v.verdict,
                    mass_ratio=v.mass_ratio,
                    random_median=v.random_median,
                    control_drop=v.control_drop,
                    random_control_drop=v.random_control_drop,
                    other_ratios=v.other_ratios,
                )
            row["selection"] = {key: v for key, v in r.options.get("selection", {}).items() if key != "effects"}
            rows.append(row)
            print(describe(row), flush=True)
            if args.out:  # after every row: a long run that is stopped keeps what it measured
                out = dict(model=args.model, split=args.split, k=args.k, n_random=args.n_random, n_control=len(pairs))
                out["ranked"] = "shipped concept where one is" if args.shipped else "the split's word list"
                out["rows"] = rows
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(out, indent=1, default=list) + "\n")


if __name__ == "__main__":
    main()
