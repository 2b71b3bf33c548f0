"""`headpursuit` command line: fetch, rank, generate, bake, demo. The terminal twin of the widget."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .engine import HeadPursuitError, HeadRanking, bake, generate, load_model, rank_heads, verify
from .engine.concepts.null_words import word_pool
from .engine.editing.bake import check_out
from .engine.judging import selection
from .engine.models.shipped import DEFAULT_MODEL, SHIPPED
from .engine.ranking.scores import SCORES


def _read_lines(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise HeadPursuitError(f"file not found: {file}")
    return [ln.strip() for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _name(head) -> str:
    return f"L{head[0]}H{head[1]}"


def _print_ranking(ranking, n: int) -> None:
    details = ranking.options.get("selection")
    print(
        f"top {n} heads for {ranking.concept['name']!r} (model {ranking.model_name}, k={ranking.k}, "
        f"{ranking.options['n_null']} frequency-matched nulls, {int(ranking.significant.sum())} significant heads)"
    )
    if details:
        print(
            f"order: ranking.top(): the selective set first ({len(ranking.recommended)} heads, in the order chosen), "
            f"then measured candidates that passed alone (most selective first), then unmeasured heads by "
            f"{ranking.score_name}; measured generic, damaging or non-cutting candidates last"
        )
    else:
        print(f"order: by {ranking.score_name} (no selection ran)")
    chosen = {tuple(h) for h in ranking.recommended}
    for rank, (layer, head) in enumerate(ranking.top(n), 1):
        marker = "" if ranking.significant[layer, head] else "  (not significant against the null)"
        tag = "  [selective set]" if (layer, head) in chosen else ""
        tokens = ", ".join(repr(t) for t, _ in ranking.tokens(layer, head, 6))
        print(
            f"{rank:3d}. L{layer}H{head}  score {ranking.scores[layer, head]:+.4f}  "
            f"evr {ranking.score_table['evr'][layer, head]:.3f}  atoms: {tokens}{marker}{tag}"
        )


def cmd_fetch(args) -> None:
    model = load_model(args.model)
    word_pool(model.tokenizer)  # kept on disk (pool_cache.py): a first ranking need not read the vocabulary
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


def _by(table: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The n heads with the highest value of `table` (NaN last), highest first."""
    flat = np.nan_to_num(np.asarray(table, dtype=float), nan=-np.inf).ravel()
    order = np.argsort(-flat, kind="stable")[:n]
    return [(int(i // table.shape[1]), int(i % table.shape[1])) for i in order]


def _effect_line(row: dict, others: list[str]) -> str:
    """A measured edit (the selection's JSON row): concept ratio, the others' median and each, control."""
    each = ", ".join(f"{n} {r:.2f}x" for n, r in zip(others, row["other_ratios"]))
    return (
        f"{row['mass_ratio']:.2f}x; other categories {row['others_median']:.2f}x ({each}); "
        f"control drop {row['control_drop']:+.2f} nats"
    )


def _why_not(row: dict) -> str:
    """Why a measured candidate is not in the selective set (engine/judging/selection.py's rules)."""
    if row["others_median"] < selection.MIN_OTHERS:
        return f"generic: the other categories fall below {selection.MIN_OTHERS:g}x"
    if row["control_drop"] > selection.CONTROL_BUDGET:
        return f"damaging: control drop above {selection.CONTROL_BUDGET:g} nats"
    if row["mass_ratio"] >= selection.MAX_SINGLE:
        return f"does not cut the concept below {selection.MAX_SINGLE:g}x"
    return "passed alone, but did not lower the set's concept mass enough with the heads chosen"


def _print_selection(ranking) -> None:
    """The selective set with each head's own flip and the set's after each step, then the other candidates."""
    details = ranking.options.get("selection")
    concept = ranking.concept["name"]
    if not details:
        print(f"\nno selection ran for {concept!r}: the heads below come by {ranking.score_name}")
        return
    others = list(details["others"])
    single = {tuple(h): row for h, row in zip(details["candidates"], details["single"])}
    print(
        f"\nthe selection flipped {len(single)} candidate heads alone (SOMP's best by z and the most selective "
        f"flipped at the answer position) on {details['n_contexts']} prompts asking for one of the {concept}, "
        f"the other categories asked the same way and {details['n_control']} control facts:"
    )
    if ranking.recommended:
        print(f"selective set ({len(ranking.recommended)} heads, in the order chosen); {concept} mass / unedited:")
        chosen = [tuple(h) for h in ranking.recommended]
        steps = {tuple(tuple(h) for h in step["heads"]): step for step in details["steps"]}
        for i, head in enumerate(chosen):
            alone = single.get(head)
            print(
                f"  {i + 1}. {_name(head)} alone: "
                + (f"{concept} {_effect_line(alone, others)}" if alone else "not measured")
            )
            step = steps.get(tuple(chosen[: i + 1]))
            if i and step:
                print(f"     with the heads above: {concept} {_effect_line(step, others)}")
    else:
        print(
            f"selective set: none was found (no candidate cut {concept} below {selection.MAX_SINGLE:g}x alone while "
            f"the other categories stayed >= {selection.MIN_OTHERS:g}x and the control within "
            f"{selection.CONTROL_BUDGET:g} nats)"
        )
    rest = sorted((h for h in single if h not in set(ranking.recommended)), key=lambda h: -single[h]["selectivity"])
    if rest:
        print(f"other candidates (most selective first, {min(4, len(rest))} of {len(rest)}):")
        for head in rest[:4]:
            row = single[head]
            print(f"  {_name(head)} alone: {concept} {_effect_line(row, others)}  -> {_why_not(row)}")


def _print_verification(v, example: str = "") -> None:
    from .engine.judging.verify import MAX_EXTRA_DROP, MAX_RATIO, MIN_OTHERS, MIN_RANDOM

    heads = ", ".join(_name(h) for h in v.heads)
    print(
        f"\nheld-out check (hp.verify): {heads} x {v.alpha:g} against {len(v.random_mass_ratios)} draws of "
        f"{v.k} random heads from the same layers, on {v.n_probe} {v.concept} questions the selection never "
        f"used{example}, other categories asked the same way and {v.n_control} unrelated facts:"
    )
    print(f"  {'':<26} {'these heads':>12} {'random heads':>13}")
    print(f"  {v.concept + ' mass / unedited':<26} {v.mass_ratio:>11.2f}x {v.random_median:>12.2f}x")
    for name, ratio in v.other_ratios.items():
        print(f"  {name + ' mass / unedited':<26} {ratio:>11.2f}x {'':>13}")
    print(f"  {'other categories (median)':<26} {v.others_median:>11.2f}x {'':>13}")
    print(
        f"  {'control drop (nats)':<26} {v.control_drop:>+12.2f} {v.random_control_drop:>+13.2f}"
        "   (median of the random draws)"
    )
    if v.domain_drops:
        print("  control drop by domain: " + ", ".join(f"{d} {x:+.2f}" for d, x in v.domain_drops.items()))
    print(
        f"verdict: {v.verdict}  ('specific' needs {v.concept} <= {MAX_RATIO:g}x, random heads >= {MIN_RANDOM:g}x, "
        f"other categories >= {MIN_OTHERS:g}x and a control drop within random's + {MAX_EXTRA_DROP:g} nats; "
        f"'generic' when every category is cut)"
    )


def cmd_demo(args) -> None:
    model = load_model(args.model)
    print(model)
    print("ranking every head for 'colours' (SOMP, then the selection flips candidate heads) ...", flush=True)
    ranking = rank_heads(model, None, "colours")
    z, evr = ranking.score_table["z"], ranking.score_table["evr"]
    print("\nwhat the heads write: SOMP top 6 by z (sorted by z; z: EVR above the random-word null)")
    for layer, head in _by(z, 6):
        tokens = ", ".join(repr(t) for t, _ in ranking.tokens(layer, head, 5))
        star = "" if ranking.significant[layer, head] else "  (not significant)"
        print(f"  L{layer}H{head}  z {z[layer, head]:5.1f}  atoms: {tokens}{star}")
    raw = ", ".join(_name(h) for h in _by(evr, 6))
    print(
        f"for comparison, the paper's raw EVR top 6 (sorted by raw EVR): {raw}"
        " - heads that random words explain just as well (see README)."
    )
    _print_selection(ranking)
    k = args.top_k or len(ranking.recommended) or 4
    if not ranking.recommended or args.top_k:
        print(f"\nediting ranking.top({k}): {', '.join(_name(h) for h in ranking.top(k))} (ranking.top's order)")
    v = verify(model, ranking, k=k, alpha=args.alpha)
    _print_verification(v, " (such as 'What color is a ripe banana? It is')")
    prompt = args.prompt or "In one sentence: what colours are a ripe banana, a clear sky and fresh grass?"
    edits = {h: args.alpha for h in v.heads}
    print(f"\nprompt: {prompt!r}")
    runs: tuple[tuple[str, dict | None], ...] = (
        ("baseline", None),
        (f"edited: {', '.join(_name(h) for h in v.heads)} x {args.alpha:g}", edits),
    )
    for label, edit_set in runs:
        text = generate(model, [prompt], edits=edit_set, max_new_tokens=args.max_new_tokens)[0]
        print(f"--- {label}:\n{text.strip()}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="headpursuit", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    model_help = f"shipped alias ({', '.join(SHIPPED)}), local folder, .gguf file or cached hub id"

    f = sub.add_parser("fetch", help="download and cache a shipped model and its null's word pool")
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

    d = sub.add_parser(
        "demo", help="colour heads of the default model: the selective set, its held-out verdict, an edited answer"
    )
    d.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    d.add_argument(
        "--top-k", type=int, help="edit ranking.top(K) instead of the selective set (default: the set, or 4 if none)"
    )
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
