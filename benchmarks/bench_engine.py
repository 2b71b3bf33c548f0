"""Engine benchmarks on the default model, each a ratio against a baseline run in the same process.

    .venv/bin/python benchmarks/bench_engine.py [--repeats 3] [--json out.json]

1. the default rank_heads (eliciting contexts, last position, SOMP k=10 for the concept and 30 nulls,
   no refinement) / the capture of the same contexts; the refinement's own time beside it
2. batched SOMP (all heads, one dictionary) vs a per-head numpy loop with lstsq refits: same atoms
3. per-token greedy generation with edit hooks on 16 heads vs no hooks (forced to the same length)
4. peak memory of capture above the loaded model vs the size of the stored means (in a subprocess)
Timings interleave the two sides and report medians, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import headpursuit_widget as hp
from headpursuit_widget.testing import reference_somp


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def interleaved(a, b, repeats):
    """Median seconds of a() and b(), run alternately after one untimed warm-up of each."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(timed(a)[0])
        tb.append(timed(b)[0])
    return statistics.median(ta), statistics.median(tb)


def bench_rank(m, repeats):
    """The default ranking, rank_heads(m, None, "colours"): its eliciting contexts captured at the last
    position, against that capture alone. Calibrated null (30 draws; cache emptied each time: the cost
    of a first concept), no refinement; the refinement's forward passes are timed once on their own."""
    from headpursuit_widget.engine.concepts.contexts import concept_contexts
    from headpursuit_widget.engine.concepts.resolve import resolve_concept
    from headpursuit_widget.engine.ranking.null import _NULL_CACHE

    contexts = concept_contexts(resolve_concept("colours", m.tokenizer)[0])

    def rank(refine=False):
        _NULL_CACHE.clear()
        return hp.rank_heads(m, None, "colours", refine=refine, progress=False)

    t_capture, t_rank = interleaved(lambda: hp.capture(m, contexts, positions="last", progress=False), rank, repeats)
    t_refined = timed(lambda: rank(refine=True))[0]
    return {
        "contexts": len(contexts),
        "capture_s": t_capture,
        "rank_s": t_rank,
        "ratio": t_rank / t_capture,
        "target": "<= 1.5",
        "refine_s": t_refined - t_rank,
    }


def bench_somp(m, prompts):
    from headpursuit_widget.engine.concepts.dictionary import dictionary_rows

    acts = hp.capture(m, prompts, progress=False)
    concept = hp.Concept.from_words("colours", hp.concepts.get("colours").words, m.tokenizer)
    D = dictionary_rows(m.adapter, concept.token_ids, normalize=True, fold_norm=False)
    flat = acts.reshape(-1, acts.shape[2], acts.shape[3])
    k = min(50, len(D))
    t_batched, res = timed(lambda: hp.somp(flat, D, k))
    Hn, Dn = flat.double().cpu().numpy(), D.double().cpu().numpy()
    t_loop, loop_atoms = timed(lambda: [reference_somp(h, Dn, k)[0] for h in Hn])
    same = float(np.mean([a == b for a, b in zip(res.atoms.tolist(), loop_atoms)]))
    return {
        "heads": len(flat),
        "k": k,
        "batched_s": t_batched,
        "numpy_loop_s": t_loop,
        "speedup": t_loop / t_batched,
        "same_atoms_fraction": same,
        "target": ">= 20",
    }


def bench_generation(m, ranking, repeats, n_tokens=32):
    prompt = ["Describe a sunset over the sea."]
    edits = {head: 1.0 for head in ranking.top(16)}  # alpha 1: same tokens, full hook cost
    kw = dict(max_new_tokens=n_tokens, min_new_tokens=n_tokens)
    bare, hooked = interleaved(
        lambda: hp.generate(m, prompt, **kw), lambda: hp.generate(m, prompt, edits=edits, **kw), repeats
    )
    return {
        "tokens": n_tokens,
        "no_hooks_ms_per_token": 1000 * bare / n_tokens,
        "hooks16_ms_per_token": 1000 * hooked / n_tokens,
        "overhead": hooked / bare - 1,
        "target": "<= 0.03",
    }


def _peak_child(n_prompts: int) -> None:
    """Run in a subprocess: load, then the peak resident memory above the loaded model of plain forwards
    and of a capture (the kernel's high-water mark VmHWM, reset before each: the process's ru_maxrss
    would include the peak of loading)."""
    from bench_memory import _reset_peak, _status_kb

    m = hp.load_model("smollm2")
    prompts = list(hp.concepts.get("colours").rank_prompts) * (n_prompts // 42 + 1)
    prompts = prompts[:n_prompts]
    loaded = _status_kb("VmRSS") / 1024

    def peak():  # MB since the last reset
        mb = _status_kb("VmHWM") / 1024
        _reset_peak()
        return mb

    _reset_peak()
    with torch.inference_mode():  # the same forward passes without hooks: what any use of the model costs
        for i in range(0, n_prompts, 8):
            m.module(**m.tokenizer(prompts[i : i + 8], return_tensors="pt", padding=True), use_cache=False)
    forward = peak()
    acts = hp.capture(m, prompts, progress=False)
    after = peak()
    lengths = [len(m.tokenizer(p)["input_ids"]) for p in prompts]
    per_position = m.n_layers * m.n_heads * sum(lengths) * m.d_model * 4
    print(
        json.dumps(
            {
                "samples": n_prompts,
                "forward_peak_above_model_mb": forward - loaded,
                "capture_peak_above_model_mb": after - loaded,
                "stored_means_mb": acts.numel() * 4 / 2**20,
                "per_position_writes_mb": per_position / 2**20,
            }
        )
    )


def bench_memory(n_prompts=128):
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n_prompts)],
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def load(args):
    """The default model, or a model of its shape with random weights (timings do not depend on values)."""
    if not args.random_weights:
        m = hp.load_model("smollm2")
    else:
        import transformers as tf

        config = tf.AutoConfig.from_pretrained(args.random_weights)
        m = hp.wrap(
            tf.AutoModelForCausalLM.from_config(config),
            tf.AutoTokenizer.from_pretrained(args.random_weights),
            name="smollm2-shape-random",
        )
    m.module.to(args.device)
    return hp.wrap(m.module, m.tokenizer, name=m.name)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--memory-child", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--random-weights",
        metavar="DIR",
        help="a SmolLM2 folder without weights (config + tokenizer): same shapes, random init, "
        "for timing on a machine the weights cannot reach; skips the memory benchmark",
    )
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        return _peak_child(args.memory_child)
    m = load(args)
    prompts = list(hp.concepts.get("colours").rank_prompts)
    ranking = hp.rank_heads(m, prompts, "colours", progress=False)
    results = {
        "threads": torch.get_num_threads(),
        "prompts": len(prompts),
        "device": args.device,
        "weights": "random" if args.random_weights else "smollm2",
    }
    for name, fn in [
        ("rank_vs_capture", lambda: bench_rank(m, args.repeats)),
        ("somp_batched_vs_numpy_loop", lambda: bench_somp(m, prompts)),
        ("generation_hook_overhead", lambda: bench_generation(m, ranking, args.repeats)),
        ("capture_memory", bench_memory),
    ][: 3 if args.random_weights else 4]:
        results[name] = fn()
        print(name, json.dumps(results[name], indent=1), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
