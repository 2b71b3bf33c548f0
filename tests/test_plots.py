"""plots.py: curve panels (legend off the data, hover on points, empty panels labelled), BokehJS
inlined once per kernel, and light/dark themes whose text keeps 4.5:1 contrast."""

from __future__ import annotations

import numpy as np
import pytest
from bokeh.colors import named
from bokeh.models import HoverTool, Label, Legend, Plot, Scatter

import headpursuit_widget as hp
from headpursuit_widget import plots
from headpursuit_widget.engine.verify import Verification
from headpursuit_widget.experiments import Curve


def _curve(word_rate: float) -> Curve:
    x = np.array([1, 2, 4])
    values = {
        "somp": {"probe_mass": np.array([[0.5], [0.3], [0.1]]), "control": np.zeros((3, 1))},
        "random": {"probe_mass": np.full((3, 4), 0.9), "control": np.zeros((3, 4))},
    }
    for measures in values.values():
        n = next(iter(measures.values())).shape[1]
        measures["word_rate"] = np.full((3, n), word_rate)
        measures["perplexity"] = np.full((3, n), word_rate)
    baseline = {"probe_mass": 1.0, "control": 0.0, "word_rate": 1.0, "perplexity": 1.0}
    return Curve("suppression", "k", x, values, baseline, {}, "tiny", "colours")


def _panels(layout):
    return [child[0] if isinstance(child, tuple) else child for child in layout.children]


def test_curve_panels_keep_legends_off_the_data_and_hover_points():
    for panel in _panels(_curve(0.5).plot()):
        assert not panel.center or not any(isinstance(r, Legend) for r in panel.center)
        assert [type(r).__name__ for r in panel.below if isinstance(r, Legend)] == ["Legend"]
        (hover,) = panel.select(HoverTool)
        assert [type(r.glyph) for r in hover.renderers] == [Scatter, Scatter]
        assert ("selection", "@selection") in hover.tooltips
        assert not panel.select(Label)


def test_empty_generation_panels_say_generation_off():
    panels = {p.title.text: p for p in _panels(_curve(float("nan")).plot())}
    for measure, label in plots.LABELS.items():
        texts = [lab.text for lab in panels[label].select(Label)]
        assert texts == (["generation off"] if measure in plots.GENERATED else []), measure


def test_bokehjs_is_inlined_once(monkeypatch):
    import bokeh.io

    loads, shown = [], []
    monkeypatch.setattr(plots, "_loaded", False)
    monkeypatch.setattr(bokeh.io, "output_notebook", lambda *a, **k: loads.append(a))
    monkeypatch.setattr(bokeh.io, "show", lambda obj: shown.append(obj))
    for _ in range(3):
        plots.show("figure")
    assert len(loads) == 1 and shown == ["figure"] * 3


def _luminance(colour: str) -> float:
    """WCAG relative luminance of a CSS colour ("#rrggbb" or a named colour)."""
    hexa = colour if colour.startswith("#") else getattr(named, colour).to_hex()
    channels = [int(hexa[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _text_pairs(obj) -> list[tuple[str, str, str]]:
    """(what, text colour, background colour) for every text colour set on every model of every plot
    in ``obj``: text on a legend or colour bar is read over that box's fill, other text over both the
    plot's border (titles, axes) and its data area (labels)."""
    pairs = []
    for fig in obj.select({"type": Plot}):
        for model in fig.references():
            own = getattr(model, "background_fill_color", None) if model is not fig else None
            backgrounds = [own] if own else [fig.border_fill_color, fig.background_fill_color]
            for name in sorted(p for p in model.properties() if p.endswith("text_color")):
                colour = getattr(model, name)
                if isinstance(colour, str):
                    pairs += [(f"{type(model).__name__}.{name}", colour, bg) for bg in backgrounds]
    return pairs


def _verification() -> Verification:
    return Verification(
        concept="colours",
        k=4,
        alpha=-1.0,
        heads=[(1, 2)],
        random_heads=[[(0, 1)], [(1, 3)]],
        mass_ratio=0.4,
        random_mass_ratios=[0.9, 1.0],
        control_drop=0.1,
        random_control_drops=[0.05, 0.02],
        verdict="not specific",
        n_probe=3,
        n_control=3,
    )


@pytest.fixture
def figures(tiny):
    ranking = hp.rank_heads(tiny, ["The car was red", "A blue sea", "Green grass"], ["red", "blue", "green"],
                            k=2, n_null=2, refine=False, progress=False)  # fmt: skip
    return lambda theme: {
        "heatmap": plots.heatmap(ranking, theme=theme),
        "curves": _curve(float("nan")).plot(theme=theme),  # with the "generation off" labels
        "verification": _verification().plot(theme=theme),
    }


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_text_keeps_4_5_to_1_contrast(figures, theme):
    for name, obj in figures(theme).items():
        pairs = _text_pairs(obj)
        assert {what.split(".")[0] for what, *_ in pairs} >= {"Title", "LinearAxis"}, name
        low = [(what, fg, bg, round(_contrast(fg, bg), 2)) for what, fg, bg in pairs if _contrast(fg, bg) < 4.5]
        assert not low, f"{theme} {name}: {low}"
        for fig in obj.select({"type": Plot}):
            dark = _luminance(fig.background_fill_color) < 0.05 and _luminance(fig.border_fill_color) < 0.05
            assert dark == (theme == "dark"), name
    assert [lab.text for lab in figures(theme)["curves"].select({"type": Label})] == ["generation off"] * 2


def test_auto_theme_is_light_unless_told(figures, monkeypatch):
    monkeypatch.delenv("HEADPURSUIT_THEME", raising=False)
    assert plots.resolve_theme("auto") == "light"
    assert figures("auto")["heatmap"].background_fill_color == plots.THEMES["light"]["background"]
    monkeypatch.setenv("HEADPURSUIT_THEME", "Dark")
    assert figures("auto")["heatmap"].background_fill_color == plots.THEMES["dark"]["background"]
    monkeypatch.setenv("HEADPURSUIT_THEME", "solarized")
    with pytest.raises(hp.HeadPursuitError, match="HEADPURSUIT_THEME must be one of light, dark"):
        plots.resolve_theme("auto")
    with pytest.raises(hp.HeadPursuitError, match="theme must be one of light, dark"):
        figures("blue")
