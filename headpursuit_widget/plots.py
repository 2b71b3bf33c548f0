"""Bokeh figures for rankings and experiment curves, rendered with INLINE resources (work offline).

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
from bokeh.layouts import gridplot
from bokeh.models import (
    Axis,
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
from bokeh.palettes import Category10_10, Viridis256
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
_loaded = False  # BokehJS is loaded in this kernel's notebook
# colours of each theme: text has >= 4.5:1 contrast on the background (WCAG AA; tests/test_plots.py checks)
THEMES = {
    "light": {"background": "#ffffff", "text": "#1f1f1f", "muted": "#595959", "line": "#5f5f5f", "grid": "#e5e5e5"},
    "dark": {"background": "#20262b", "text": "#e0e0e0", "muted": "#b0b0b0", "line": "#a0a0a0", "grid": "#3a4248"},
}


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


def verification_figure(v, *, theme: str = "auto"):
    """Scatter of concept mass ratio (x) against control drop (y): the top heads and each random draw.

    Shaded: where the verdict would be "specific" (ratio <= 0.35, drop <= random drop + 0.15 nats).
    ``theme``: see the module.
    """
    from .engine.verify import MAX_EXTRA_DROP, MAX_RATIO

    fig = figure(
        title=f"{v.concept}: top {v.k} heads vs random heads ({v.verdict})",
        x_axis_label="concept probability / unedited",
        y_axis_label="control facts: log-prob drop (nats)",
        width=420,
        height=300,
        tools="save,reset,hover",
    )
    fig.quad(
        left=0,
        right=MAX_RATIO,
        bottom=-1,
        top=v.random_control_drop + MAX_EXTRA_DROP,
        fill_alpha=0.1,
        fill_color="green",
        line_color=None,
    )
    rand = ColumnDataSource(
        {"x": v.random_mass_ratios, "y": v.random_control_drops, "heads": [str(h) for h in v.random_heads]}
    )
    fig.scatter("x", "y", source=rand, size=8, color="gray", legend_label="random heads (layer-matched)")
    top = ColumnDataSource({"x": [v.mass_ratio], "y": [v.control_drop], "heads": [str(v.heads)]})
    fig.scatter("x", "y", source=top, size=12, color=Category10_10[3], legend_label=f"top {v.k} heads")
    fig.select_one(HoverTool).tooltips = [("heads", "@heads"), ("ratio", "@x{0.00}"), ("drop", "@y{0.00}")]
    fig.legend.location = "top_right"
    fig.legend.label_text_font_size = "8pt"
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
