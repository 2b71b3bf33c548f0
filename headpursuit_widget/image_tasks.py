"""Image tasks on a VLM: rank heads for a task's class names over the image tokens, then answer the
task's question unedited, with the top heads edited, and with as many layer-matched random heads.

The images and class names are the engine's synthetic set (engine/activations/images.py)."""

from __future__ import annotations

import re

from .engine import generate, random_heads, rank_heads
from .engine.activations.images import DIGITS, TASKS, class_names, labelled_images


def is_correct(answer: str, label: str, task: str) -> bool:
    """True when `answer` names `label` as a word (digits also as the numeral)."""
    words = set(re.findall(r"[a-z]+|\d+", answer.lower()))
    return label in words or (task == "digits" and str(DIGITS.index(label)) in words)


def run_image_task(
    model,
    task: str = "digits",
    n_per_class: int = 4,
    top: int = 8,
    alpha: float = -1.0,
    max_new_tokens: int = 8,
    seed: int = 0,
    **rank_kwargs,
) -> dict:
    """Rank heads of a VLM (HeadModel) for `task`'s class names over the image tokens, then answer
    the task's question unedited, with the `top` heads scaled by `alpha`, and with as many random
    heads (matched per layer). Returns {"ranking", "heads", "random_heads", "labels",
    "answers": {setting: [str]}, "accuracy": {setting: float}} for settings baseline/top/random."""
    items = labelled_images(task, n_per_class, seed=seed)
    pairs = [(item.image, TASKS[task][1]) for item in items]
    ranking = rank_heads(model, pairs, class_names(task), positions="image", seed=seed, **rank_kwargs)
    heads, rand = ranking.top(top), random_heads(ranking, top, seed=seed)
    settings = {"baseline": None, "top": {h: alpha for h in heads}, "random": {h: alpha for h in rand}}
    answers = {
        name: generate(
            model, [p for _, p in pairs], images=[im for im, _ in pairs], edits=edits, max_new_tokens=max_new_tokens
        )
        for name, edits in settings.items()
    }
    labels = [item.label for item in items]
    accuracy = {
        name: sum(is_correct(a, lab, task) for a, lab in zip(texts, labels)) / len(labels)
        for name, texts in answers.items()
    }
    return {
        "ranking": ranking,
        "heads": heads,
        "random_heads": rand,
        "labels": labels,
        "answers": answers,
        "accuracy": accuracy,
    }
