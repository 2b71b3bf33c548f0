"""plots.py: curve panels (legend off the data, hover on points, empty panels labelled), the
verification's other categories and "specific" region, the head-effects map, BokehJS inlined once per
kernel, and light/dark themes whose text keeps 4.5:1 contrast."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from bokeh.colors import named
from bokeh.models import ColumnDataSource, HoverTool, Label, Legend, LinearColorMapper, Plot, Scatter

import headpursuit_widget as hp
from headpursuit_widget import plots
from headpursuit_widget.engine.judging.verify import MAX_EXTRA_DROP, MAX_RATIO, MIN_OTHERS, MIN_RANDOM, Verification
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
        k=1,
        alpha=-1.0,
        heads=[(1, 2)],
        random_heads=[[(1, 0)], [(1, 3)]],
        mass_ratio=0.4,
        random_mass_ratios=[0.9, 1.0],
        control_drop=0.1,
        random_control_drops=[0.05, 0.02],
        verdict="not better than random",
        n_probe=3,
        n_control=3,
        edits={"1.2": -1.0},
        other_ratios={"countries": 0.9, "animals": 0.7, "numbers": 1.1},
        domain_drops={"science": 0.1},
    )


def _source(obj, name: str):
    (src,) = obj.select({"type": ColumnDataSource, "name": name})
    return src.data


def test_verification_plot_shows_the_other_categories_and_the_rule():
    v = _verification()
    layout = plots.verification(v)
    scatter, bars = _panels(layout)
    assert "L1H2" in scatter.title.text and "not better than random" in scatter.title.text
    assert _source(layout, "edited")["x"] == [0.4] and _source(layout, "edited")["y"] == [0.1]
    assert _source(layout, "random")["x"] == [0.9, 1.0] and _source(layout, "random")["heads"] == ["L1H0", "L1H3"]
    region = _source(layout, "specific_region")  # judging/verify.py's rule: ratio <= 0.35, drop <= random's + 0.3
    assert region["left"] == [0.0] and region["right"] == [MAX_RATIO]
    assert region["top"] == [pytest.approx(0.035 + MAX_EXTRA_DROP)]  # median of 0.05, 0.02
    ratios = _source(layout, "ratios")
    assert ratios["name"] == ["colours (these heads)", "colours (random heads)", "countries", "animals", "numbers"]
    assert ratios["ratio"] == pytest.approx([0.4, 0.95, 0.9, 0.7, 1.1])
    assert ratios["threshold"] == pytest.approx([MAX_RATIO, MIN_RANDOM] + [MIN_OTHERS] * 3)
    assert "median 0.90x" in bars.title.text  # the others' median, which the verdict reads


@pytest.fixture(scope="module")
def tiny_effects(make_tiny):
    return hp.effects(make_tiny("llama"), "colours", method="exact", progress=False)


def test_effects_map_holds_each_heads_numbers(tiny_effects):
    e = tiny_effects
    fig = plots.effects(e)
    heads = _source(fig, "heads")
    assert len(heads["layer"]) == e.n_layers * e.n_heads
    for i, (layer, head) in enumerate(zip(heads["layer"], heads["head"])):
        info = e.head(int(layer), int(head))
        assert heads["selectivity"][i] == pytest.approx(info["selectivity"])
        assert heads["concept"][i] == pytest.approx(info["concept"])
        others = sorted(info["others"].values())
        assert heads["others_median"][i] == pytest.approx(others[(len(others) - 1) // 2])  # the lower middle one
        assert heads["control_drop"][i] == pytest.approx(info["control_drop"])
        assert heads["measured"][i] == "exact (edited pass)"
        assert heads["others"][i] == ", ".join(f"{n} {r:.2f}x" for n, r in info["others"].items())
    generic = _source(fig, "generic")  # the x markers: exactly the generic heads
    assert sorted(zip(generic["layer"], generic["head"])) == sorted(zip(*np.nonzero(e.generic)))
    (mapper,) = fig.select({"type": LinearColorMapper})
    assert mapper.low == -mapper.high and mapper.high > 0  # diverging, centred on 0
    assert mapper.palette[0] != mapper.palette[-1] and mapper.palette[len(mapper.palette) // 2] == "#f7f7f7"
    (hover,) = fig.select(HoverTool)
    assert {name for name, _ in hover.tooltips} >= {"colours", "others' median", "control drop", "measured"}


def test_effects_map_marks_generic_and_estimated_heads(tiny_effects):
    e = dataclasses.replace(
        tiny_effects,
        other_ratios=np.full_like(tiny_effects.other_ratios, 0.5),
        exact=np.zeros_like(tiny_effects.exact),
    )
    data = _source(plots.effects(e, theme="dark"), "generic")
    assert len(data["layer"]) == e.n_layers * e.n_heads  # every head generic: every cell crossed
    assert set(_source(plots.effects(e), "heads")["measured"]) == {"not measured"}  # exact, heads left out
    for method, label in (("answer", "estimated (answer position)"), ("attribution", "estimated (gradient)")):
        estimated = dataclasses.replace(e, method=method)
        assert set(_source(plots.effects(estimated), "heads")["measured"]) == {label}


@pytest.fixture
def figures(tiny, tiny_effects):
    effects = tiny_effects
    ranking = hp.rank_heads(tiny, ["The car was red", "A blue sea", "Green grass"], ["red", "blue", "green"],
                            k=2, n_null=2, refine=False, progress=False)  # fmt: skip
    return lambda theme: {
        "heatmap": plots.heatmap(ranking, theme=theme),
        "curves": _curve(float("nan")).plot(theme=theme),  # with the "generation off" labels
        "verification": plots.verification(_verification(), theme=theme),
        "effects": plots.effects(effects, theme=theme),
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
