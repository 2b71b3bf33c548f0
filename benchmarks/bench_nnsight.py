"""The nnsight backend against the hf backend on the default model, in one process (needs the nnsight extra).

    python benchmarks/bench_nnsight.py [--repeats 3] [--prompts 42] [--remote local] [--parts rank,bytes]
        [--json out.json]

1. the default rank_heads(m, None, "colours") (eliciting contexts, 30-draw null, refinement; hf: capture +
   SOMP on the writes, nnsight: SOMP statistics computed in the traces + SOMP from them, refinement's
   forward passes in traces): nnsight / hf time, target <= 1.3
2. per-token greedy generation with 16 edited heads (alpha 1, forced length): nnsight / hf, target <= 1.3
3. bytes the traces return per prompt, measured (a capture's mean z; a ranking's SOMP statistics, checked
   against nnsight_model.statistics_bytes), and the same figures for a 70B-shaped model (80 layers x
   64 heads x head_dim 128, d_model 8192, the same dictionaries) against per-head writes.
Both backends share one set of weights; timings interleave the two and report medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import headpursuit_widget as hp
from headpursuit_widget.engine.concepts.null_words import null_dictionaries
from headpursuit_widget.engine.concepts.resolve import resolve_concept
from headpursuit_widget.engine.models.nnsight_model import statistics_bytes

SHAPE_70B = {"n_layers": 80, "n_heads": 64, "head_dim": 128, "d_model": 8192}


def interleaved(a, b, repeats):
    """Median seconds of a() and b(), run alternately after one untimed warm-up of each."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def bench_rank(hf, nn, repeats):
    """The default ranking, rank_heads(m, None, "colours") (eliciting contexts, 30-draw null, refinement),
    on each backend; the null cache is emptied before each call, so both pay for their null."""
    from headpursuit_widget.engine.ranking.null import _NULL_CACHE

    def rank(m):
        _NULL_CACHE.clear()
        return hp.rank_heads(m, None, "colours", progress=False)

    t_hf, t_nn = interleaved(lambda: rank(hf), lambda: rank(nn), repeats)
    return {"hf_s": t_hf, "nnsight_s": t_nn, "ratio": t_nn / t_hf, "target": "<= 1.3"}


def bench_generation(hf, nn, edits, repeats, n_tokens=32):
    prompt = ["Describe a sunset over the sea."]
    kw = dict(max_new_tokens=n_tokens, min_new_tokens=n_tokens, edits=edits)
    t_hf, t_nn = interleaved(lambda: hp.generate(hf, prompt, **kw), lambda: hp.generate(nn, prompt, **kw), repeats)
    return {
        "tokens": n_tokens,
        "edited_heads": len(edits),
        "hf_ms_per_token": 1000 * t_hf / n_tokens,
        "nnsight_ms_per_token": 1000 * t_nn / n_tokens,
        "ratio": t_nn / t_hf,
        "target": "<= 1.3",
    }


def bytes_returned(nn, prompts, batch_size=8, n_null=30):
    """Measured bytes per prompt of a capture and of a ranking's statistics, and the 70B-shape figures."""
    before = nn.bytes_returned
    hp.capture(nn, prompts, batch_size=batch_size, progress=False)
    mean_z = (nn.bytes_returned - before) / len(prompts)
    before = nn.bytes_returned
    hp.rank_heads(nn, prompts, "colours", n_null=n_null, batch_size=batch_size, refine=False, progress=False)
    measured = nn.bytes_returned - before
    con, _ = resolve_concept("colours", nn.tokenizer)
    dictionaries = [con.token_ids, *null_dictionaries(nn.tokenizer, con, n_null=n_null)]
    shape = {
        "n_rows": len(set().union(*map(set, dictionaries))),
        "n_prompts": len(prompts),
        "n_batches": -(-len(prompts) // batch_size),
        "dictionaries": (len(dictionaries), len(con.token_ids)),
        "n_lens": 10,
    }
    smollm2 = statistics_bytes(nn.n_layers, nn.n_heads, nn.head_dim, **shape)
    s = SHAPE_70B
    big = statistics_bytes(s["n_layers"], s["n_heads"], s["head_dim"], **shape)
    return {
        "capture_mean_z_bytes_per_prompt": mean_z,
        "ranking_bytes_measured": measured,
        "ranking_bytes_formula": smollm2,
        "dictionary_rows": {k: shape[k] for k in ("n_rows", "dictionaries")},
        "smollm2_writes_bytes_per_prompt": nn.n_layers * nn.n_heads * nn.d_model * 4,
        "shape_70b": s,
        "70b_mean_z_bytes_per_prompt": s["n_layers"] * s["n_heads"] * s["head_dim"] * 4,
        "70b_statistics_bytes": big,
        "70b_writes_bytes_per_prompt": s["n_layers"] * s["n_heads"] * s["d_model"] * 4,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--prompts", type=int, default=42, help="how many of the colours rank prompts the bytes part ranks on"
    )
    p.add_argument("--remote", choices=["none", "local"], default="none", help="nnsight side: in-process or simulated")
    p.add_argument("--parts", default="rank,generation,bytes", help="comma-separated: rank, generation, bytes")
    p.add_argument("--json")
    args = p.parse_args()
    hf = hp.load_model("smollm2")
    nn = hp.wrap(hf.module, hf.tokenizer, name=hf.name, backend="nnsight", remote=args.remote == "local" and "local")
    prompts = list(hp.concepts.get("colours").rank_prompts)[: args.prompts]

    def edits():  # alpha 1: same tokens on both sides, full edit cost
        return dict.fromkeys(hp.rank_heads(hf, prompts, "colours", progress=False).top(16), 1.0)

    results = {"threads": torch.get_num_threads(), "prompts": len(prompts), "nnsight_remote": args.remote}
    parts = set(args.parts.split(","))
    for part, name, fn in [
        ("rank", "rank", lambda: bench_rank(hf, nn, args.repeats)),
        ("generation", "generation_16_edited_heads", lambda: bench_generation(hf, nn, edits(), args.repeats)),
        ("bytes", "bytes_returned", lambda: bytes_returned(nn, prompts)),
    ]:
        if part not in parts:
            continue
        results[name] = fn()
        print(name, json.dumps(results[name], indent=1), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
