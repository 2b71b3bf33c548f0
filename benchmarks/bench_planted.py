"""Power curve of the planted positive control (issue 17): scale the planted colour head's write down until
the pipeline stops finding it.

For each strength and seed, tests/planted.py builds a tiny Llama whose head P writes the colour tokens'
unembedding rows (and a generic head G every category's), scaled by `strength`. Per model:
  r = hp.rank_heads(m, None, "colours")  (the default pipeline: SOMP, null, selection on selectivity);
  found: r.top(1) == [P]; z: P's z-score; effects: hp.effects(m, r, method="exact").top(1) == [P];
  verdict: hp.verify(m, r, edits={P: -1}).verdict, and the verdict of the recommended set itself.

    python benchmarks/bench_planted.py --out docs/measurements/planted-power.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from planted import planted_model
from support import tiny_tokenizer

import headpursuit_widget as hp

STRENGTHS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def one(strength: float, seed: int) -> dict:
    m, info = planted_model(tiny_tokenizer(), strength=strength, seed=seed)
    p = info["concept"]
    r = hp.rank_heads(m, None, "colours", progress=False)
    e = hp.effects(m, r, method="exact", progress=False)
    v = hp.verify(m, r, edits={p: -1.0})
    chosen = list(r.recommended)
    return dict(
        strength=strength,
        seed=seed,
        z=float(r.scores[p]),
        significant=bool(r.significant[p]),
        found_first=r.top(1) == [p],
        recommended=chosen,
        effects_first=e.top(1) == [p],
        mass_ratio=v.mass_ratio,
        others_median=v.others_median,
        verdict=v.verdict,
        set_verdict=hp.verify(m, r, edits=dict.fromkeys(chosen, -1.0)).verdict if chosen else None,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for strength in STRENGTHS:
        for seed in (int(s) for s in args.seeds.split(",")):
            row = one(strength, seed)
            rows.append(row)
            print(
                f"strength {strength:5.2f} seed {seed}: z {row['z']:5.1f} found first {row['found_first']!s:5} "
                f"effects first {row['effects_first']!s:5} flip P {row['mass_ratio']:.2f}x (others "
                f"{row['others_median']:.2f}x) -> {row['verdict']}; recommended {row['recommended']} -> "
                f"{row['set_verdict']}",
                flush=True,
            )
            if args.out:
                Path(args.out).write_text(json.dumps(dict(rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
