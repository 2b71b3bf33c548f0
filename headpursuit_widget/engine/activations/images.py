"""A small synthetic image set, drawn at run time with PIL: coloured shapes and digits.

Three classification tasks whose class names are concept word lists (docs/method.md, "Vision-language
models"): "colours" (the colour of a shape), "shapes" (which shape) and "digits" (which digit, as a
word). `labelled_images(task)` gives LabelledImage(image, label) items; `samples(task)` gives the
(image, prompt) pairs that hp.capture / hp.rank_heads / hp.generate take for a VLM. The experiment
that ranks and edits heads on these tasks is headpursuit_widget.image_tasks.run_image_task.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..errors import HeadPursuitError
from .vision import load_image

COLOURS = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 119, 220),
    "yellow": (240, 220, 30),
    "orange": (255, 127, 14),
    "purple": (128, 50, 160),
    "pink": (240, 120, 190),
    "brown": (140, 86, 45),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
    "grey": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TASKS = {
    "colours": (tuple(COLOURS), "What colour is the shape in the image? Answer with one word."),
    "shapes": (SHAPES, "What shape is in the image? Answer with one word."),
    "digits": (DIGITS, "Which digit is written in the image? Answer with one word."),
}
_BACKGROUNDS = ("white", "grey", "black", "yellow", "blue")
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/Library/Fonts")


@dataclass(frozen=True)
class LabelledImage:
    """image: PIL RGB (size x size); label: its class name; task: one of TASKS."""

    image: Image.Image
    label: str
    task: str


def _polygon(shape: str, cx: float, cy: float, r: float, turn: float) -> list[tuple[float, float]]:
    """Vertices of a square / triangle / star / cross of radius r around (cx, cy), rotated by turn."""
    if shape == "square":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (math.pi / 4 * (2 * k + 1) for k in range(4))]
    elif shape == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2 + 2 * math.pi * k / 3 for k in range(3))]
    elif shape == "star":
        pts = [
            ((r if k % 2 == 0 else r * 0.45) * math.cos(a), (r if k % 2 == 0 else r * 0.45) * math.sin(a))
            for k, a in ((k, -math.pi / 2 + math.pi * k / 5) for k in range(10))
        ]
    elif shape == "cross":
        w = r * 0.35
        pts = [
            (-w, -r),
            (w, -r),
            (w, -w),
            (r, -w),
            (r, w),
            (w, w),
            (w, r),
            (-w, r),
            (-w, w),
            (-r, w),
            (-r, -w),
            (-w, -w),
        ]
    else:
        raise HeadPursuitError(f"unknown shape {shape!r}; one of {SHAPES}")
    c, s = math.cos(turn), math.sin(turn)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def shape_image(
    shape: str, colour: str, background: str = "white", size: int = 64, rng: random.Random | None = None
) -> Image.Image:
    """A `colour` `shape` on a plain `background`; rng jitters position, size and rotation."""
    rng = rng or random.Random(0)
    img = Image.new("RGB", (size, size), COLOURS[background])
    draw = ImageDraw.Draw(img)
    r = size * rng.uniform(0.25, 0.38)
    cx, cy = (size / 2 + rng.uniform(-1, 1) * (size / 2 - r - 1) for _ in range(2))
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLOURS[colour])
    else:
        draw.polygon(_polygon(shape, cx, cy, r, rng.uniform(-0.3, 0.3)), fill=COLOURS[colour])
    return img


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for folder in _FONT_DIRS:
        path = Path(folder) / "DejaVuSans-Bold.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), px)
    return ImageFont.load_default(size=px)


def digit_image(
    digit: int, colour: str = "black", background: str = "white", size: int = 64, rng: random.Random | None = None
) -> Image.Image:
    """The digit `digit` (0-9) written in `colour` on `background`, with jittered size and place."""
    rng = rng or random.Random(0)
    img = Image.new("RGB", (size, size), COLOURS[background])
    draw = ImageDraw.Draw(img)
    font = _font(int(size * rng.uniform(0.6, 0.8)))
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    w, h = right - left, bottom - top
    x = rng.uniform(0, max(size - w, 0)) - left
    y = rng.uniform(0, max(size - h, 0)) - top
    draw.text((x, y), str(digit), fill=COLOURS[colour], font=font)
    return img


def _contrasting(rng: random.Random, avoid: str) -> str:
    return rng.choice([b for b in _BACKGROUNDS if b != avoid and {b, avoid} != {"white", "yellow"}])


def labelled_images(task: str, n_per_class: int = 2, size: int = 64, seed: int = 0) -> list[LabelledImage]:
    """n_per_class images of every class of `task`, classes interleaved; deterministic for a seed."""
    if task not in TASKS:
        raise HeadPursuitError(f"unknown task {task!r}; one of {tuple(TASKS)}")
    rng = random.Random(seed)
    out = []
    for _ in range(n_per_class):
        for k, label in enumerate(TASKS[task][0]):
            if task == "colours":
                img = shape_image(rng.choice(SHAPES), label, _contrasting(rng, label), size, rng)
            elif task == "shapes":
                colour = rng.choice([c for c in COLOURS if c not in ("white", "grey")])
                img = shape_image(label, colour, _contrasting(rng, colour), size, rng)
            else:
                colour = rng.choice(("black", "blue", "red", "white"))
                img = digit_image(k, colour, _contrasting(rng, colour), size, rng)
            out.append(LabelledImage(img, label, task))
    return out


def samples(
    task: str, n_per_class: int = 2, prompt: str | None = None, size: int = 64, seed: int = 0
) -> list[tuple[Image.Image, str]]:
    """(image, prompt) pairs for `task` (the task's question unless `prompt` is given)."""
    question = prompt if prompt is not None else TASKS[task][1]
    return [(item.image, question) for item in labelled_images(task, n_per_class, size, seed)]


def class_names(task: str) -> list[str]:
    """The class names of `task`: the concept words to rank heads for."""
    if task not in TASKS:
        raise HeadPursuitError(f"unknown task {task!r}; one of {tuple(TASKS)}")
    return list(TASKS[task][0])


def to_png(image) -> bytes:
    """PNG bytes of a PIL image, numpy array or image file (for the widget's image strip)."""
    buf = io.BytesIO()
    load_image(image).save(buf, format="PNG")
    return buf.getvalue()
