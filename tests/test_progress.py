"""Progress of the long judging work (engine/progress.py): a caller's report sees every stage from 0 to its
total, one step per forward pass; the widget's verdict line shows the running stage (tiny random model)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from tqdm.auto import tqdm

import headpursuit_widget as hp
from headpursuit_widget.engine.progress import bar
from headpursuit_widget.widget import HeadPursuit


def test_bar_is_tqdm_or_the_callers_report():
    assert isinstance(bar(True, total=3, desc="x"), tqdm) and bar(False, total=3, desc="x").disable
    seen = []
    with bar(lambda *a: seen.append(a), total=2, desc="stage") as b:
        b.update()
        b.update()
    assert seen == [("stage", 0, 2), ("stage", 1, 2), ("stage", 2, 2)]


class Recorder:
    """A report(stage, done, total) that also notes how many forward passes the model had made at each call."""

    def __init__(self, module):
        self.calls: list[tuple[str, int, int, int]] = []
        self.forwards = 0
        self.module = module

    def __enter__(self):
        self.handle = self.module.register_forward_pre_hook(self._count)
        return self

    def __exit__(self, *exc):
        self.handle.remove()

    def _count(self, module, args):
        self.forwards += 1

    def __call__(self, stage, done, total):
        self.calls.append((stage, done, total, self.forwards))

    def stages(self) -> dict[str, list[tuple[int, int, int]]]:
        out: dict = {}
        for stage, done, total, forwards in self.calls:
            out.setdefault(stage, []).append((done, total, forwards))
        return out


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))  # nothing kept: every pass runs


@pytest.mark.usefixtures("fresh")
def test_refine_and_verify_report_each_stage_pass_by_pass(make_tiny):
    m = make_tiny("llama", seed=3)
    ranking = hp.rank_heads(m, None, "colours", n_null=2, refine=False, progress=False)
    with Recorder(m.module) as rec:
        refined = hp.refine(m, ranking, progress=rec)
        hp.verify(m, refined, k=2, n_random=2, progress=rec)
    assert not m.module._forward_pre_hooks
    stages = rec.stages()
    assert list(stages)[:2] == ["editing every head at the answer", "flipping the candidates one by one"]
    assert "measuring the sets" in stages
    for stage, steps in stages.items():
        total = steps[0][1]
        assert total > 0 and [d for d, _, _ in steps] == list(range(total + 1)), stage
        assert {t for _, t, _ in steps} == {total}, stage
    for stage in ("flipping the candidates one by one", "measuring the sets"):  # one report per edited or unedited pass
        forwards = [f for _, _, f in stages[stage]]
        assert [b - a for a, b in pairwise(forwards)] == [1] * (len(forwards) - 1), stage


@pytest.mark.usefixtures("fresh")
def test_the_verdict_line_shows_the_running_stage(make_tiny):
    m = make_tiny("llama", seed=4)
    lines: list[str] = []
    w = HeadPursuit(m, concept="colours", prompt="", max_new_tokens=2, debounce=0.01, top_k=2)
    w.observe(lambda change: lines.append(change["new"]), "verdict")
    try:
        assert w.wait(120, verdict=True)
    finally:
        w.close()
    first = lines.index("selecting heads by what they do, then checking the top 2 against random heads...")
    assert lines[first + 1] == (
        "selecting heads by what they do (editing every head at the answer: 0%), then checking the top 2 against"
        " random heads..."
    )
    assert "checking the top 2 heads against random heads (measuring the sets: 100%)..." in lines
    per_stage: dict[str, list[int]] = {}  # a stage's lines, by the line with its percentage taken out
    for line in lines:
        if "%)" in line:
            head, rest = line.rsplit(": ", 1)
            per_stage.setdefault(head + rest.split("%", 1)[1], []).append(int(rest.split("%")[0]))
    assert len(per_stage) >= 3  # the answer screen, the candidates' flips, verify's passes
    for percents in per_stage.values():  # a few updates each (the line is aria-live): one per quarter reached
        assert percents[-1] == 100 and percents == sorted(percents) and len(percents) <= 5
        assert len({p // 25 for p in percents}) == len(percents)
    assert lines[-1] == w.verdict and w.verdict_label
