"""Bokeh figures for rankings, head effects, verifications and experiment curves, rendered with INLINE
resources (work offline).

In a notebook, ``show`` loads BokehJS once per kernel (the first call inlines it, later calls only
embed their figure), so a saved notebook carries one copy of BokehJS, not one per plot.

Every figure takes ``theme=``: "light", "dark" (bokeh's dark_minimal colours) or "auto", which is
the HEADPURSUIT_THEME environment variable if set (light or dark), else light: a kernel cannot see
which theme JupyterLab shows, so a dark-theme user says so once (``os.environ`` or the shell)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import gridplot, row
from bokeh.models import (
    Axis,
    CategoricalAxis,
    ColorBar,
    ColumnDataSource,
    Grid,
    HoverTool,
    Label,
    Legend,
    LegendItem,
    LinearColorMapper,
    Plot,
)
from bokeh.palettes import Category10_10, PuOr11, Viridis256, interp_palette
from bokeh.plotting import figure
from bokeh.resources import INLINE

from .engine.errors import HeadPursuitError

LABELS = {
    "probe_mass": "concept mass / unedited",
    "control": "control log-prob change (nats)",
    "word_rate": "concept words in generations / unedited",
    "perplexity": "perplexity / unedited",
}
GENERATED = ("word_rate", "perplexity")  # measures of generated text: empty when the budget generates none
DIVERGING = interp_palette(PuOr11, 255)  # purple (< 0), white (0), orange (> 0): the widget's js/colors.ts
_loaded = False  # BokehJS is loaded in this kernel's notebook
# colours of each theme: text has >= 4.5:1 contrast on the background (WCAG AA; tests/test_plots.py checks)
THEMES = {
    "light": {"background": "#ffffff", "text": "#1f1f1f", "muted": "#595959", "line": "#5f5f5f", "grid": "#e5e5e5"},
    "dark": {"background": "#20262b", "text": "#e0e0e0", "muted": "#b0b0b0", "line": "#a0a0a0", "grid": "#3a4248"},
}

# HeadEffects.method -> what a head not measured by an edited pass shows
_ESTIMATED = {"answer": "estimated (answer position)", "attribution": "estimated (gradient)"}


def resolve_theme(theme: str = "auto") -> str:
    """ "light" or "dark": ``theme`` itself, or for "auto" the HEADPURSUIT_THEME variable (light if unset)."""
    name = os.environ.get("HEADPURSUIT_THEME", "light").strip().lower() if theme == "auto" else theme
    if name not in THEMES:
        where = "HEADPURSUIT_THEME" if theme == "auto" else "theme"
        raise HeadPursuitError(f"{where} must be one of {', '.join(THEMES)} (or theme='auto'), got {name!r}")
    return name


def apply_theme(obj, theme: str = "auto"):
    """Colour every plot in ``obj`` (a figure or layout) for ``theme``: backgrounds, title, axes, grid
    lines, legends, colour bars and text labels. Returns ``obj``."""
    c = THEMES[resolve_theme(theme)]
    for fig in obj.select({"type": Plot}):
        fig.background_fill_color = fig.border_fill_color = c["background"]
        fig.outline_line_color = c["grid"]
        if fig.title is not None:
            fig.title.text_color = c["text"]
        for axis in fig.select({"type": Axis}):
            axis.axis_label_text_color = axis.major_label_text_color = c["text"]
            axis.axis_line_color = axis.major_tick_line_color = axis.minor_tick_line_color = c["line"]
            if isinstance(axis, CategoricalAxis):  # factor groups (none in these figures) default to grey
                axis.group_text_color = axis.subgroup_text_color = c["text"]
        for grid in fig.select({"type": Grid}):
            grid.grid_line_color = c["grid"]
        for legend in fig.select({"type": Legend}):
            legend.label_text_color = legend.title_text_color = c["text"]
            legend.background_fill_color, legend.border_line_color = c["background"], c["grid"]
        for bar in fig.select({"type": ColorBar}):
            bar.background_fill_color = c["background"]
            bar.major_label_text_color = bar.title_text_color = c["text"]
        for label in fig.select({"type": Label}):
            label.text_color = c["muted"]
    return obj


def heatmap(ranking, title: str | None = None, *, theme: str = "auto"):
    """(n_layers x n_heads) grid of the ranking's active score, layer 0 at the top as in the widget's
    grid; colours span the 2nd to 98th percentile, widened to hold 0 (the widget's scale, js/colors.ts),
    so one outlier cannot flatten the rest. Hover shows the head's top tokens. ``theme``: see the module."""
    scores = np.asarray(ranking.scores, dtype=float)
    L, H = scores.shape
    layers, heads = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    tops = [
        ", ".join(t.strip() for t, _ in ranking.tokens(int(l), int(h), 5))
        for l, h in zip(layers.ravel(), heads.ravel())
    ]
    src = ColumnDataSource({"layer": layers.ravel(), "head": heads.ravel(), "score": scores.ravel(), "tokens": tops})
    finite = scores[np.isfinite(scores)]
    low, high = min(0.0, float(np.quantile(finite, 0.02))), max(0.0, float(np.quantile(finite, 0.98)))
    mapper = LinearColorMapper(palette=Viridis256, low=low, high=high if high > low else low + 1.0)
    fig = figure(
        title=title or f"{ranking.concept['name']}: {ranking.score_name} ({ranking.model_name})",
        x_axis_label="head",
        y_axis_label="layer",
        width=max(300, 40 * H + 120),
        height=max(300, 16 * L + 80),
        x_range=(-0.5, H - 0.5),
        y_range=(L - 0.5, -0.5),  # layer 0 at the top
        tools="hover,save,reset",
        toolbar_location="right",
    )
    fig.rect("head", "layer", 1, 1, source=src, fill_color={"field": "score", "transform": mapper}, line_color=None)
    fig.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
    fig.select_one(HoverTool).tooltips = [("head", "L@layer H@head"), ("score", "@score{0.0000}"), ("atoms", "@tokens")]
    return apply_theme(fig, theme)


def curve_figure(curve, measures, *, theme: str = "auto"):
    """One panel per measure: a line per head selection, with the IQR band where it has several draws.

    The legend sits below the plot area; hovering a point shows its selection, x, median and IQR;
    a panel with no data (generation off) says so. ``theme``: see the module."""
    panels = []
    for measure in measures:
        fig = figure(
            title=LABELS[measure],
            x_axis_label=curve.axis,
            width=380,
            height=320,
            x_axis_type="log" if curve.axis == "k" else "linear",
            tools="save,reset",
        )
        items, points = [], []
        for colour, selection in zip(Category10_10, curve.values):
            s = curve.summary(selection, measure)
            src = ColumnDataSource({"x": curve.x, "selection": [selection] * len(curve.x), **s})
            if curve.values[selection][measure].shape[1] > 1:
                fig.varea("x", "q25", "q75", source=src, fill_color=colour, fill_alpha=0.2)
            line = fig.line("x", "median", source=src, color=colour, line_width=2)
            points.append(fig.scatter("x", "median", source=src, color=colour, size=7))
            items.append(LegendItem(label=selection, renderers=[line, points[-1]]))
        fig.add_tools(
            HoverTool(
                renderers=points,
                tooltips=[
                    ("selection", "@selection"),
                    (curve.axis, "@x"),
                    ("median", "@median{0.000}"),
                    ("IQR", "@q25{0.000} to @q75{0.000}"),
                ],
            )
        )
        fig.add_layout(Legend(items=items, orientation="horizontal", label_text_font_size="8pt"), "below")
        if not any(np.isfinite(curve.values[m][measure]).any() for m in curve.values):
            why = "generation off" if measure in GENERATED else "no data"
            fig.add_layout(Label(x=120, y=120, x_units="screen", y_units="screen", text=why))
        panels.append(fig)
    return apply_theme(gridplot(panels, ncols=2), theme)


def _heads_label(heads) -> str:
    """ "L22H8, L29H7" for up to 4 heads, else "6 heads"."""
    heads = [tuple(h) for h in heads]
    return ", ".join(f"L{layer}H{h}" for layer, h in heads) if len(heads) <= 4 else f"{len(heads)} heads"


def verification(v, *, theme: str = "auto"):
    """Two panels side by side (a bokeh row):

    - left, a scatter of concept mass ratio (x) against control drop (y) for the edited heads and each
      layer-matched random draw; shaded where those two numbers allow "specific" (engine/judging/verify.py:
      ratio <= MAX_RATIO and drop <= the random draws' median drop + MAX_EXTRA_DROP);
    - right, bars of mass ratio (edited / unedited) for the concept, the concept under random heads
      (median of the draws) and every other category, each with the verdict's threshold for that row
      (concept <= MAX_RATIO, random heads >= MIN_RANDOM, other categories: their median >= MIN_OTHERS).

    The verdict needs every condition (and "generic" comes first: others and concept both < MIN_OTHERS).
    ``theme``: see the module.
    """
    from .engine.judging.verify import MAX_EXTRA_DROP, MAX_RATIO, MIN_OTHERS, MIN_RANDOM

    ink = THEMES[resolve_theme(theme)]["text"]  # the threshold ticks: text colour, readable on the theme
    label = _heads_label(v.heads)
    fig = figure(
        title=f"{v.concept}: {label} vs random heads ({v.verdict})",
        x_axis_label="concept probability / unedited",
        y_axis_label="control facts: log-prob drop (nats)",
        width=420,
        height=380,
        tools="save,reset,hover",
    )
    drops = [v.control_drop, *v.random_control_drops]
    region = ColumnDataSource(
        {
            "left": [0.0],
            "right": [MAX_RATIO],
            "bottom": [min(-0.25, min(drops) - 0.25)],
            "top": [v.random_control_drop + MAX_EXTRA_DROP],
        },
        name="specific_region",
    )
    fig.quad(
        "left",
        "right",
        "top",
        "bottom",
        source=region,
        fill_alpha=0.1,
        fill_color="green",
        line_color=None,
        legend_label="specific here, if every bar meets its threshold",
    )
    rand = ColumnDataSource(
        {
            "x": list(v.random_mass_ratios),
            "y": list(v.random_control_drops),
            "heads": [_heads_label(h) for h in v.random_heads],
        },
        name="random",
    )
    points = [fig.scatter("x", "y", source=rand, size=8, color="gray", legend_label="random heads (layer-matched)")]
    mine = ColumnDataSource({"x": [v.mass_ratio], "y": [v.control_drop], "heads": [label]}, name="edited")
    points.append(fig.scatter("x", "y", source=mine, size=12, color=Category10_10[3], legend_label=label))
    hover = fig.select_one(HoverTool)
    hover.renderers = points
    hover.tooltips = [("heads", "@heads"), ("ratio", "@x{0.00}x"), ("drop", "@y{0.00} nats")]
    _legend_below(fig)
    return apply_theme(row(fig, _ratio_bars(v, MAX_RATIO, MIN_RANDOM, MIN_OTHERS, ink)), theme)


def _ratio_bars(v, max_ratio: float, min_random: float, min_others: float, ink: str):
    """Horizontal bars: the concept's ratio under the edit and under random heads, then each other
    category's; a tick at each row's threshold (concept <= max_ratio, random >= min_random, others
    >= min_others, their median being what the verdict reads)."""
    names = [f"{v.concept} (these heads)", f"{v.concept} (random heads)", *v.other_ratios]
    ratios = [v.mass_ratio, v.random_median, *v.other_ratios.values()]
    rules = [f"<= {max_ratio:g}x", f">= {min_random:g}x", *[f">= {min_others:g}x (median)"] * len(v.other_ratios)]
    kinds = ["concept", "random", *["other"] * len(v.other_ratios)]
    colours = {"concept": Category10_10[3], "random": "gray", "other": Category10_10[0]}
    src = ColumnDataSource(
        {
            "name": names,
            "ratio": [float(r) for r in ratios],
            "threshold": [max_ratio, min_random, *[min_others] * len(v.other_ratios)],
            "rule": rules,
            "kind": kinds,
            "colour": [colours[k] for k in kinds],
        },
        name="ratios",
    )
    fig = figure(
        title=f"each category (others' median {v.others_median:.2f}x)",
        y_range=list(reversed(names)),
        x_axis_label="mass / unedited",
        width=360,
        height=380,
        tools="save,reset",
    )
    bars = fig.hbar(y="name", right="ratio", height=0.6, source=src, fill_color="colour", line_color=None)
    ticks = fig.scatter(
        "threshold", "name", source=src, marker="dash", angle=np.pi / 2, size=18, line_width=2, color=ink,
        legend_label="verdict threshold",
    )  # fmt: skip
    fig.add_tools(
        HoverTool(
            renderers=[bars, ticks],
            tooltips=[("", "@name"), ("ratio", "@ratio{0.00}x"), ("needed", "@rule")],
        )
    )
    fig.x_range.start = 0
    _legend_below(fig)
    return fig


def _legend_below(fig) -> None:
    """Move the figure's legend under the plot area, off the data."""
    legend = fig.legend[0]
    fig.center.remove(legend)
    legend.label_text_font_size = "8pt"
    legend.location = "center"
    fig.add_layout(legend, "below")


def effects(e, *, theme: str = "auto"):
    """(n_layers x n_heads) heat map of what flipping each head does (a HeadEffects, engine/judging/effects.py):
    its selectivity (the other categories' median log ratio minus the concept's) on a diverging
    purple-white-orange scale centred on 0 (orange: the edit cuts the concept more than the others),
    spanning the 2nd to 98th percentile of |selectivity| as the widget's "what it does" view does.
    Layer 0 at the top. Generic heads (their edit also cuts the other categories) carry an x. Hover
    shows the concept's ratio, each other category's, their median, the control drop and whether the
    numbers come from an edited pass (exact) or an estimate (e.method: the answer position only, or the
    gradient). ``theme``: see the module."""
    sel = np.asarray(e.selectivity, dtype=float)
    L, H = sel.shape
    layers, heads = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    others = [
        ", ".join(f"{n} {r:.2f}x" for n, r in zip(e.others, e.other_ratios[:, layer, h])) or "none measured"
        for layer, h in zip(layers.ravel(), heads.ravel())
    ]
    is_generic = np.asarray(e.generic, dtype=bool).ravel()
    data = {
        "layer": layers.ravel(),
        "head": heads.ravel(),
        "selectivity": sel.ravel(),
        "concept": np.asarray(e.mass_ratio, dtype=float).ravel(),
        "others_median": np.asarray(e.others_median, dtype=float).ravel(),
        "others": others,
        "control_drop": np.asarray(e.control_drop, dtype=float).ravel(),
        "generic": is_generic,
        "measured": np.where(
            np.asarray(e.exact).ravel(), "exact (edited pass)", _ESTIMATED.get(e.method, "not measured")
        ),
    }
    src = ColumnDataSource(data, name="heads")
    generic = ColumnDataSource({k: np.asarray(v)[is_generic] for k, v in data.items()}, name="generic")
    finite = np.abs(sel[np.isfinite(sel)])
    half = float(np.quantile(finite, 0.98)) if finite.size else 0.0
    half = half if half > 0 else 1.0
    mapper = LinearColorMapper(palette=DIVERGING, low=-half, high=half)
    fig = figure(
        title=f"{e.concept}: what flipping each head does (alpha {e.alpha:g}, {e.model_name})",
        x_axis_label="head",
        y_axis_label="layer",
        width=max(340, 40 * H + 160),
        height=max(300, 16 * L + 110),
        x_range=(-0.5, H - 0.5),
        y_range=(L - 0.5, -0.5),  # layer 0 at the top
        tools="save,reset",
        toolbar_location="right",
    )
    cells = fig.rect(
        "head", "layer", 1, 1, source=src, fill_color={"field": "selectivity", "transform": mapper}, line_color=None
    )
    halo = fig.scatter("head", "layer", source=generic, marker="x", size=11, line_width=4, color="white")
    cross = fig.scatter("head", "layer", source=generic, marker="x", size=11, line_width=2, color="black")
    fig.add_layout(
        Legend(
            items=[LegendItem(label="generic: cuts the other categories too", renderers=[halo, cross])],
            label_text_font_size="8pt",
        ),
        "below",
    )
    fig.add_layout(ColorBar(color_mapper=mapper, width=10, title="selectivity"), "right")
    fig.add_tools(
        HoverTool(
            renderers=[cells],
            tooltips=[
                ("head", "L@layer H@head"),
                ("selectivity", "@selectivity{+0.00}"),
                (e.concept, "@concept{0.00}x"),
                ("others' median", "@others_median{0.00}x"),
                ("others", "@others"),
                ("control drop", "@control_drop{0.00} nats"),
                ("measured", "@measured"),
            ],
        )
    )
    return apply_theme(fig, theme)


def save_html(obj, path, title: str = "headpursuit") -> Path:
    """Write a bokeh figure/layout to a standalone HTML file (resources inline, no network needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(file_html(obj, INLINE, title), encoding="utf-8")
    return path


def show(obj) -> None:
    """Display in a notebook with inline bokeh resources (no CDN); BokehJS is inlined on the first
    call only (``load`` inlines it again, e.g. after the outputs were cleared)."""
    from bokeh.io import show as bokeh_show

    if not _loaded:
        load()
    bokeh_show(obj)


def load() -> None:
    """Inline BokehJS into the notebook's output (once is enough for every later ``show``)."""
    global _loaded
    from bokeh.io import output_notebook

    output_notebook(INLINE, hide_banner=True)
    _loaded = True
