"""`headpursuit` command line: fetch, rank, generate, bake, demo. The terminal twin of the widget."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .engine import HeadPursuitError, HeadRanking, bake, generate, load_model, random_heads, rank_heads
from .engine.bake import check_out
from .engine.ranking import SCORES
from .engine.shipped import DEFAULT_MODEL, SHIPPED
from .experiments import control_logprob, probe_mass


def _read_lines(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise HeadPursuitError(f"file not found: {file}")
    return [ln.strip() for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _print_ranking(ranking, n: int) -> None:
    print(
        f"top {n} heads for {ranking.concept['name']!r} by {ranking.score_name} "
        f"(model {ranking.model_name}, k={ranking.k}, {ranking.options['n_null']} frequency-matched nulls, "
        f"{int(ranking.significant.sum())} significant heads)"
    )
    for rank, (layer, head) in enumerate(ranking.top(n), 1):
        marker = "" if ranking.significant[layer, head] else "  (not significant against the null)"
        tokens = ", ".join(repr(t) for t, _ in ranking.tokens(layer, head, 6))
        print(
            f"{rank:3d}. L{layer}H{head}  score {ranking.scores[layer, head]:+.4f}  "
            f"evr {ranking.score_table['evr'][layer, head]:.3f}  atoms: {tokens}{marker}"
        )


def cmd_fetch(args) -> None:
    model = load_model(args.model)
    print(f"ready: {model}")


def cmd_rank(args) -> None:
    model = load_model(args.model)
    if args.words and not Path(args.words).is_file():
        raise HeadPursuitError(f"word file not found: {args.words}")
    concept = Path(args.words) if args.words else args.concept  # a word file: one word per line, # comments
    prompts = _read_lines(args.prompts) if args.prompts else None
    ranking = rank_heads(
        model, prompts, concept, method=args.method, score=args.score, k=args.k, n_null=args.n_null, chat=args.chat
    )
    _print_ranking(ranking, args.top)
    if args.out:
        print(f"saved {ranking.save(args.out)}")


def _edit_for(ranking, top_k: int, alpha: float) -> dict:
    return {head: alpha for head in ranking.top(top_k)}


def cmd_generate(args) -> None:
    model = load_model(args.model)
    ranking = HeadRanking.load(args.ranking, model=model)
    edits = _edit_for(ranking, args.top_k, args.alpha)
    for label, e in (("baseline", None), (f"edited ({args.top_k} heads x {args.alpha:g})", edits)):
        print(f"--- {label}:", flush=True)
        generate(
            model,
            [args.prompt],
            edits=e,
            max_new_tokens=args.max_new_tokens,
            on_token=lambda i, piece: print(piece, end="", flush=True),
        )
        print()


def cmd_bake(args) -> None:
    out = check_out(args.out)  # before loading anything
    model = load_model(args.model)
    ranking = HeadRanking.load(args.ranking, model=model)
    edits = _edit_for(ranking, args.top_k, args.alpha)
    bake(model, edits, out=out)
    heads = ", ".join(f"L{layer}H{head}" for layer, head in edits)
    print(f"saved {model.name} with {len(edits)} heads x {args.alpha:g} baked in ({heads}) to {out}")
    auto = "AutoModelForImageTextToText" if model.is_vlm else "AutoModelForCausalLM"
    print(f"load it with transformers: {auto}.from_pretrained({str(out)!r}) - no headpursuit needed")


def cmd_demo(args) -> None:
    model = load_model(args.model)
    print(model)
    ranking = rank_heads(model, None, "colours")
    _print_ranking(ranking, 8)
    raw = ranking.with_score("evr").top(6)
    print(
        f"\nfor comparison, the paper's raw EVR would put these first: {', '.join(f'L{l}H{h}' for l, h in raw)}"
        " - heads that random words explain just as well (see README)."
    )
    randoms = [{h: args.alpha for h in random_heads(ranking, args.top_k, seed=s)} for s in range(3)]
    base_mass, base_ctl = probe_mass(model, "colours").mean(), control_logprob(model).mean()
    rows = [(f"top {args.top_k} heads x {a:g}", _edit_for(ranking, args.top_k, a)) for a in (args.alpha, 0.0)]
    edits = rows[0][1]
    print(
        "\ncolour probability of the next token after held-out questions ('Q: What color is ...?\\nA: It is'),"
        " and log-prob of right one-token factual answers (control):"
    )
    print(f"  {'unedited':<36} colour {base_mass:.4f}          control {base_ctl:6.2f} nats")
    for label, e in rows[: 1 if args.alpha == 0 else 2]:
        mm, cc = probe_mass(model, "colours", edits=e).mean(), control_logprob(model, edits=e).mean()
        print(f"  {label:<36} colour {mm:.4f} ({mm / base_mass:4.2f}x)  control {cc:6.2f} nats")
    r_mass = np.median([probe_mass(model, "colours", edits=e).mean() for e in randoms])
    r_ctl = np.median([control_logprob(model, edits=e).mean() for e in randoms])
    label = f"{args.top_k} random heads x {args.alpha:g} (median of 3)"
    print(f"  {label:<36} colour {r_mass:.4f} ({r_mass / base_mass:4.2f}x)  control {r_ctl:6.2f} nats")
    prompt = args.prompt or "In one sentence: what colours are a ripe banana, a clear sky and fresh grass?"
    print(f"\nprompt: {prompt!r}")
    runs: tuple[tuple[str, dict | None], ...] = (
        ("baseline", None),
        (f"edited: top {args.top_k} heads x {args.alpha:g}", edits),
    )
    for label, edit_set in runs:
        text = generate(model, [prompt], edits=edit_set, max_new_tokens=args.max_new_tokens)[0]
        print(f"--- {label}:\n{text.strip()}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="headpursuit", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    model_help = f"shipped alias ({', '.join(SHIPPED)}), local folder, .gguf file or cached hub id"

    f = sub.add_parser("fetch", help="download and cache a shipped model")
    f.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=model_help)
    f.set_defaults(func=cmd_fetch)

    r = sub.add_parser("rank", help="rank all heads for a concept")
    r.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    group = r.add_mutually_exclusive_group()
    group.add_argument("--concept", default="colours", help="a shipped concept name")
    group.add_argument("--words", help="a text file with one concept word per line")
    r.add_argument("--prompts", help="a text file with one ranking prompt per line (default: the concept's own)")
    r.add_argument("--method", default="somp", choices=["somp", "logit_lens"])
    r.add_argument("--score", choices=list(SCORES), help="default: by method")
    r.add_argument("--k", type=int, default=50, help="SOMP atoms (default 50)")
    r.add_argument("--n-null", type=int, default=6, help="random-word dictionaries for the null (default 6)")
    r.add_argument("--chat", action="store_true", help="wrap ranking prompts in the chat template")
    r.add_argument("--top", type=int, default=16, help="how many heads to print")
    r.add_argument("--out", help="save the ranking (.npz)")
    r.set_defaults(func=cmd_rank)

    g = sub.add_parser("generate", help="baseline vs edited generation from a saved ranking")
    g.add_argument("--ranking", required=True)
    g.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    g.add_argument("--top-k", type=int, default=4, help="edit this many top heads (default 4)")
    g.add_argument("--alpha", type=float, default=-1.0, help="-1 flips, 0 ablates, >1 enhances (default -1)")
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-new-tokens", type=int, default=48)
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("bake", help="save a copy of the model with the top heads of a saved ranking edited")
    b.add_argument("--ranking", required=True)
    b.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    b.add_argument("--top-k", type=int, default=4, help="edit this many top heads (default 4)")
    b.add_argument("--alpha", type=float, default=-1.0, help="-1 flips, 0 ablates, >1 enhances (default -1)")
    b.add_argument("--out", required=True, help="a new or empty folder for the model and its tokenizer")
    b.set_defaults(func=cmd_bake)

    d = sub.add_parser("demo", help="top colour heads of the default model and a baseline vs edited answer")
    d.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    d.add_argument("--top-k", type=int, default=4)
    d.add_argument("--alpha", type=float, default=-1.0)
    d.add_argument("--prompt")
    d.add_argument("--max-new-tokens", type=int, default=48)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except HeadPursuitError as exc:
        print(f"headpursuit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("headpursuit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
