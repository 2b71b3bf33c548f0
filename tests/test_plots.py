"""plots.py: curve panels (legend off the data, hover on points, empty panels labelled) and
BokehJS inlined once per kernel."""

from __future__ import annotations

import numpy as np
from bokeh.models import HoverTool, Label, Legend, Scatter

from headpursuit_widget import plots
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
