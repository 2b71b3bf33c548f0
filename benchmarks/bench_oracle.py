"""An oracle for issue 10's causal target on the dev split: which single heads, flipped (alpha -1), cut a
concept's next-token mass on the evaluation's own probe questions, at what cost to the control facts,
and does the best harmless 4-head set beat layer-matched random heads?

It looks at the material it is scored on, so it bounds what any selection could reach; it chooses
nothing for the product. Per concept: every head flipped alone (mass ratio, control drop in nats);
the 4 heads with the lowest mass ratio among those costing <= 0.05 nats ("harmless cutters"), flipped
together; n_random layer-matched random sets (one other head of the same layer for each). The
evaluation's "specific": mass <= 0.35x, random median >= 0.7x, drop <= random drop + 0.15.

    python benchmarks/bench_oracle.py --concepts colours,countries,animals \
        --out docs/measurements/oracle-smollm2-dev.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from bench_trust import control_pairs, heldout_folder

import headpursuit_widget as hp
from headpursuit_widget.engine.judging.probes import facts_known, mass_and_control

GROUP = 30  # edit sets per call: their full-vocabulary log-probabilities are held at once


def measure_sets(m, probes, token_ids, pairs, sets):
    """[(mass ratio, control drop in nats)] of each edit set against the unedited model."""
    out = []
    for start in range(0, len(sets), GROUP):
        (base_mass, base_ctrl), *edited = mass_and_control(
            m, probes, pairs, token_ids, [None, *sets[start : start + GROUP]]
        )
        out += [(mass / base_mass, float((base_ctrl - ctrl).mean())) for mass, ctrl in edited]
    return out


def layer_matched(heads, n_heads, n, seed):
    """n sets with, for each head, another head of its layer drawn at random."""
    rng = np.random.default_rng(seed)
    chosen = set(heads)
    return [
        [(layer, int(rng.choice([h for h in range(n_heads) if (layer, h) not in chosen]))) for layer, _ in heads]
        for _ in range(n)
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("dev",), default="dev", help="only dev: the oracle looks at its probes")
    ap.add_argument("--concepts", default="colours,countries,animals")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--n-random", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = hp.load_model("smollm2")
    pairs = facts_known(m, control_pairs(args.split))
    heads = [(layer, head) for layer in range(m.n_layers) for head in range(m.n_heads)]
    result = dict(model="smollm2", split=args.split, k=args.k, n_control=len(pairs), concepts={})
    for name in args.concepts.split(","):
        data = json.loads((heldout_folder(args.split) / f"{name}.json").read_text())
        concept = hp.Concept.from_words(name, data["words"], m.tokenizer)
        probes = [p["prompt"] for p in data[args.split]]
        single = measure_sets(m, probes, concept.token_ids, pairs, [{h: -1.0} for h in heads])
        order = sorted(range(len(heads)), key=lambda i: single[i][0])
        harmless = [heads[i] for i in order if single[i][1] <= 0.05][: args.k]
        draws = layer_matched(harmless, m.n_heads, args.n_random, seed=100)
        (mass, drop), *rand = measure_sets(
            m, probes, concept.token_ids, pairs, [dict.fromkeys(s, -1.0) for s in [harmless, *draws]]
        )
        r_mass, r_drop = float(np.median([r[0] for r in rand])), float(np.median([r[1] for r in rand]))
        row = dict(
            best_single=[[*heads[i], *single[i]] for i in order[:10]],
            harmless_set=harmless,
            mass=mass,
            control_drop=drop,
            random=[list(r) for r in rand],
            random_mass=r_mass,
            random_control_drop=r_drop,
            specific=mass <= 0.35 and r_mass >= 0.7 and drop <= r_drop + 0.15,
            single={f"{layer}.{head}": list(s) for (layer, head), s in zip(heads, single)},
        )
        result["concepts"][name] = row
        best = ", ".join(f"L{layer}H{head} {r:.2f}x/{d:.2f}" for layer, head, r, d in row["best_single"][:5])
        print(f"{name}: best single heads (mass/nats) {best}", flush=True)
        print(
            f"  harmless cutters {harmless}: mass {mass:.2f}x, control {drop:.2f} | layer-matched random "
            f"{r_mass:.2f}x, {r_drop:.2f} -> {'specific' if row['specific'] else 'not specific'}",
            flush=True,
        )
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
