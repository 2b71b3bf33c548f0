"""The widget in a real browser: headless Chromium against JupyterLab and Notebook 7,
on the real default model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "widget_demo.ipynb"
QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"
RENDER_TIMEOUT = 300_000  # model load + capture + ranking on a busy 2-core machine


def dismiss_dialogs(page) -> None:
    """Close any JupyterLab dialog (file changed on disk, ...) with its default button, keeping its text in
    `page.dialogs` for the failure message; a kernel choice is refused instead: its default would start a
    second kernel for the notebook and shut the one the page joined."""
    dialog = page.locator(".jp-Dialog")
    for _ in range(5):
        if not dialog.count():
            return
        text = " | ".join(dialog.first.inner_text().split("\n"))
        page.dialogs.append(text)
        button = "button.jp-mod-reject" if "Select Kernel" in text else "button.jp-mod-accept"
        chosen = dialog.first.locator(button)
        (chosen if chosen.count() else dialog.first.locator("button").last).first.click()
        dialog.first.wait_for(state="detached", timeout=10_000)


JOIN = """async () => {
    const app = window.jupyterapp;
    await app.restored;
    while (!app.shell.currentWidget?.sessionContext) {
        await new Promise((resolve) => setTimeout(resolve, 100));  // the notebook's panel is not open yet
    }
    const panel = app.shell.currentWidget;
    await panel.context.ready;
    return await panel.sessionContext.initialize();  // true: it will ask for a kernel (a dialog)
}"""

JOINED = """(started) => {
    const session = window.jupyterapp.shell.currentWidget?.sessionContext?.session;
    return session?.kernel?.id === started && session.kernel.status === "idle";
}"""


def join_kernel(page) -> None:
    """Wait on the page's own ready signals (window.jupyterapp): the app restored, the notebook loaded, its
    session context initialised; refuse the kernel choice it asks for when it could not see the started
    kernel in time; then wait until the page's session holds the started kernel, idle."""
    _, _, started = page.notebook
    if page.evaluate(JOIN):
        page.locator(".jp-Dialog").first.wait_for(timeout=30_000)
        dismiss_dialogs(page)
    try:
        page.wait_for_function(JOINED, arg=started, timeout=120_000)
    except Exception as exc:
        raise AssertionError(f"the page never joined the notebook's kernel ({_page_state(page)})") from exc


def run_all_cells(page) -> None:
    """Run every cell through the Run menu (same in JupyterLab and Notebook 7) once the page has joined the
    notebook's kernel (join_kernel), and wait until a cell runs or its prompt changes (a notebook another
    page autosaved opens with the old run's prompts)."""
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    join_kernel(page)
    before = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
    dismiss_dialogs(page)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first.click()
    try:
        page.wait_for_function(
            """(before) => {
                const now = [...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")].map((p) => p.textContent);
                return now.some((p) => p.includes("[*]")) || JSON.stringify(now) !== JSON.stringify(before);
            }""",
            arg=before,
            timeout=60_000,
        )
    except Exception as exc:
        raise AssertionError(f"Run All Cells did not start the notebook ({_page_state(page)})") from exc


def _front_end_startup_error(text: str) -> bool:
    """Notebook 7's own errors while it starts: its bundle's start-up error, and a kernel request it
    cancels when a kernel it had started is shut."""
    return "/static/notebook/" in text or "Canceled future for create_subshell_request" in text


def _kernel_status(page) -> str:
    """The notebook toolbar's kernel status ("idle", "busy", "starting", ...), "" where it shows none."""
    indicator = page.locator(".jp-Notebook-ExecutionIndicator")
    return (indicator.first.get_attribute("data-status") or "") if indicator.count() else ""


def _page_state(page) -> str:
    """What the page showed: cell prompts, kernel status, dialogs closed, the notebook's kernels on the
    server (the one started for it first), script errors."""
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
    lab, path, started = page.notebook
    return (
        f"prompts {prompts}, kernel {_kernel_status(page)!r}, dialogs {page.dialogs}, kernels of {path} "
        f"{lab.kernel_ids(path)} (started {started}), page errors {page.js_errors[-3:]}"
    )


def wait_for_widget(page, timeout_s: float = RENDER_TIMEOUT / 1000):
    """Wait for the grid to render; fail with the traceback when a cell raises, and when the notebook's
    kernel is no longer the one its page joined."""
    cells = page.locator('.hp-root [role="gridcell"]')
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Traceback")
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cells.count():
            lab, path, started = page.notebook
            assert lab.kernel_ids(path) == [started], f"the notebook's kernel changed ({_page_state(page)})"
            return cells
        if error.count():
            raise AssertionError(f"the notebook raised: {error.first.text_content()} ({_page_state(page)})")
        dismiss_dialogs(page)
        time.sleep(0.5)
    raise AssertionError(f"the widget's grid did not render within {timeout_s:.0f} s ({_page_state(page)})")


def goto(lab, page, path: str) -> None:
    """Open `path` (lab/tree/... or notebooks/...) once the server has its kernel up (Lab.start_kernel),
    so that the page joins that kernel. JupyterLab pages open in a workspace of their own, so that the
    notebooks earlier tests opened are not restored beside this one (two widgets on a page)."""
    file = path.removeprefix("lab/tree/").removeprefix("notebooks/")
    page.notebook = (lab, file, lab.start_kernel(file))
    if path.startswith("lab/tree/"):
        path = f"lab/workspaces/t{uuid.uuid4().hex[:12]}/tree/{file}"
    page.goto(f"{lab.url}/{path}")


def open_widget(lab, page, path: str):
    """Open the demo notebook at `path` (lab/tree/... or notebooks/...), run it, wait for the full
    grid; returns (grid cells, the notebook's kernel, n_heads) - the caller closes the kernel."""
    goto(lab, page, path)
    run_all_cells(page)
    cells = wait_for_widget(page)
    kernel = lab.kernel(NOTEBOOK)
    try:
        n_layers, n_heads = kernel.eval("[m.n_layers, m.n_heads]")
        assert cells.count() == n_layers * n_heads
    except BaseException:
        kernel.close()
        raise
    return cells, kernel, n_heads


def _text(page, testid: str) -> str:
    return page.locator(f'.hp-root [data-testid="{testid}"]').first.text_content()


def _wait_text(page, testid: str, predicate, timeout: float = 120) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = _text(page, testid)
        if predicate(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"{testid} never matched; last value {value!r}")


def test_jupyterlab_grid_panel_slider_stop(lab, page, artifacts):
    _cells, kernel, n_heads = open_widget(lab, page, f"lab/tree/{NOTEBOOK}")
    try:
        _wait_text(page, "edited-text", bool)  # the first answers are in (edited = baseline: no edits yet)
        _wait_text(page, "status", lambda s: s == "ready")

        # click the top head: the panel shows that head's tokens exactly as the engine reports them
        layer, head = kernel.eval("w.ranking.top(1)[0]")
        cell = page.locator(f'.hp-root [role="gridcell"][data-layer="{layer}"][data-head="{head}"]')
        assert f"Layer {layer}, head {head}" in cell.get_attribute("aria-label")
        cell.click()
        panel = page.locator('.hp-root [data-testid="token-panel"]')
        panel.get_by_text(f"Layer {layer}, head {head}", exact=True).wait_for(timeout=30_000)
        # the title shows at once; the head's tokens follow in one message (the panel is redrawn whole)
        panel.locator('[data-testid="atom-token"]').first.wait_for(timeout=30_000)
        atoms = kernel.eval(f"[t for t, _ in w.ranking.tokens({layer}, {head}, 10)]")
        lens = kernel.eval(f"[t for t, _ in w.ranking.lens_tokens({layer}, {head}, 10)]")
        assert panel.locator('[data-testid="atom-token"]').all_text_contents() == atoms
        assert panel.locator('[data-testid="lens-token"]').all_text_contents() == lens
        assert kernel.eval("w.selected") == [layer, head]

        # keyboard: arrow right then Enter selects the next head
        cell.focus()
        page.keyboard.press("ArrowRight" if head + 1 < n_heads else "ArrowLeft")
        page.keyboard.press("Enter")
        other = head + 1 if head + 1 < n_heads else head - 1
        panel.get_by_text(f"Layer {layer}, head {other}", exact=True).wait_for(timeout=30_000)
        cell.click()
        panel.get_by_text(f"Layer {layer}, head {head}", exact=True).wait_for(timeout=30_000)

        # move the slider: the edited answer regenerates, the baseline stays
        baseline = _text(page, "baseline-text")
        assert _text(page, "edited-text") == baseline
        page.locator('.hp-root [data-testid="head-slider"]').fill("8")
        edited = _wait_text(page, "edited-text", lambda t: t != baseline and kernel.eval("w.status") == "ready")
        assert _text(page, "baseline-text") == baseline
        assert kernel.eval("w.strengths") == {f"{layer}.{head}": 8.0}
        expected = kernel.eval(f"hp.generate(m, [w.prompt], edits={{({layer}, {head}): 8.0}}, max_new_tokens=12)[0]")
        assert edited == expected == kernel.eval("w.edited_text")
        assert "hp-edited" in cell.get_attribute("class")
        page.locator(".hp-root").screenshot(path=str(artifacts / "widget-jupyterlab.png"))

        # Stop mid-generation: a long answer stops, keeps its partial text, and grows no more
        page.locator('.hp-root [data-testid="prompt-input"]').fill(
            "Write a long story about a dragon who paints the sky."
        )
        page.locator('.hp-root [data-testid="max-new-tokens"]').fill("400")
        page.locator('.hp-root [data-testid="generate"]').click()
        _wait_text(page, "baseline-text", lambda t: len(t) > 20 and t != baseline)
        assert _text(page, "status") == "generating"
        page.locator('.hp-root [data-testid="stop"]').click()
        _wait_text(page, "status", lambda s: s == "stopped", timeout=30)
        partial = _text(page, "baseline-text")
        time.sleep(1.0)
        assert _text(page, "baseline-text") == partial
        assert kernel.eval("[w.status, w.baseline_text]") == ["stopped", partial]
        assert kernel.eval("len(m.tokenizer(w.baseline_text)['input_ids'])") < 400
        assert page.js_errors == []
    finally:
        kernel.close()


PLANTED_CELL = """import sys
sys.path.insert(0, {tests!r})
import headpursuit_widget as hp
from planted import planted_model
from support import tiny_tokenizer

m, info = planted_model(tiny_tokenizer(), strength=1.0, seed=0)
w = hp.HeadPursuit(m, concept="colours", prompt="", top_k=1)
w"""


def _cell_colours(page) -> list[str]:
    return page.locator('.hp-root [role="gridcell"]').evaluate_all(
        "cells => cells.map((c) => getComputedStyle(c).backgroundColor)"
    )


def _has_selectivity_label(page, head: tuple[int, int], present: bool = True) -> None:
    """Wait until the head's cell is labelled by its selectivity (present) or by its score (not present)."""
    page.wait_for_function(
        '([l, h, present]) => document.querySelector(`.hp-root [data-layer="${l}"][data-head="${h}"]`)'
        ".getAttribute('aria-label').includes('selectivity') === present",
        arg=[*head, present],
        timeout=30_000,
    )


def _wait_kernel(kernel, expr: str, timeout: float = 300):
    end = time.monotonic() + timeout
    while not kernel.eval(expr):
        assert time.monotonic() < end, f"{expr} never held: {kernel.eval('[w.effects_note, w.verdict, w.error]')}"
        time.sleep(0.5)


def test_grid_view_toggle_shows_what_heads_do(lab, page, artifacts):
    """On the planted model of tests/planted.py (its colour head P and generic answer head G known by
    construction; its background selection takes seconds), once the selection has measured what flipping
    each head does, the view toggle recolours the grid by selectivity (G hatched), the head panel lists
    P's flip on the concept, on each other category and on the control as text equal to the engine's
    numbers, and the verdict line says "specific" for P and "generic" once G's edit is applied."""
    nb = json.loads((Path(__file__).parent / NOTEBOOK).read_text())
    nb["cells"] = [c for c in nb["cells"] if c["cell_type"] == "markdown"][:1]
    source = PLANTED_CELL.format(tests=str(Path(__file__).resolve().parents[1]))
    nb["cells"].append(
        {"cell_type": "code", "execution_count": None, "id": "planted", "metadata": {}, "outputs": [], "source": source}
    )
    name = "planted_effects.ipynb"
    (lab.root / name).write_text(json.dumps(nb))
    goto(lab, page, f"lab/tree/{name}")
    run_all_cells(page)
    wait_for_widget(page)
    kernel = lab.kernel(name)
    try:
        does = page.locator('.hp-root [data-testid="view-does"]')
        _wait_kernel(kernel, "w.selectivity is not None")
        page.wait_for_function(
            "() => !document.querySelector('.hp-root [data-testid=\"view-does\"]').disabled", timeout=30_000
        )
        concept, generic = (tuple(h) for h in kernel.eval("[info['concept'], info['generic']]"))
        writes_colours = _cell_colours(page)
        does.click()
        _has_selectivity_label(page, concept)
        assert does.get_attribute("aria-pressed") == "true"
        _wait_kernel(kernel, "w.grid_view == 'does'")  # the click's message reaches the kernel after the page
        assert _cell_colours(page) != writes_colours  # the grid shows another quantity
        cell = page.locator(f'.hp-root [role="gridcell"][data-layer="{concept[0]}"][data-head="{concept[1]}"]')
        selectivity = kernel.eval(f"float(__import__('numpy').float32(w.selectivity[{concept[0]}, {concept[1]}]))")
        assert cell.get_attribute("aria-label").startswith(
            f"Layer {concept[0]}, head {concept[1]}, selectivity {selectivity:.3f}"
        )
        hatched = page.locator('.hp-root [role="gridcell"].hp-generic')
        assert hatched.count() == kernel.eval("int(w.generic.sum())") >= 1
        assert "hp-generic" in page.locator(
            f'.hp-root [role="gridcell"][data-layer="{generic[0]}"][data-head="{generic[1]}"]'
        ).get_attribute("class")

        # the panel: P's flip on each category and on the control, as text
        cell.click()
        rows = page.locator('.hp-root [data-testid="token-panel"] [data-testid="effect-row"]')
        rows.first.wait_for(timeout=30_000)
        e = kernel.eval(f"w.ranking.effects.head({concept[0]}, {concept[1]})")
        names = ["colours", *e["others"], "control facts"]
        values = [f"{e['concept']:.2f}x", *(f"{r:.2f}x" for r in e["others"].values()), f"{e['control_drop']:.2f} nats"]
        assert rows.locator('[data-testid="effect-name"]').all_text_contents() == names
        assert rows.locator('[data-testid="effect-value"]').all_text_contents() == values
        assert _text(page, "effect-summary") == f"selectivity {e['selectivity']:+.2f}"  # not generic

        # the verdict line: P (the top head of the selective set) is specific; G's edit is generic
        _wait_kernel(kernel, "w.verdict_label != ''")
        assert kernel.eval("[w.verdict_label, w.verdict_on]") == ["specific", "the top head of the selective set x-1"]
        _wait_text(page, "verdict-label", lambda s: s == "specific")
        kernel.eval(f"w.set_trait('strengths', {{'{generic[0]}.{generic[1]}': -1.0}}) or 0")
        _wait_text(page, "verdict-label", lambda s: s == "generic")
        assert _text(page, "verdict-text") == kernel.eval("w.verdict")
        assert _text(page, "verdict-on") == f"Verdict on the applied edits (L{generic[0]}H{generic[1]} x-1): "
        page.locator(".hp-root").screenshot(path=str(artifacts / "widget-does.png"))

        page.locator('.hp-root [data-testid="view-writes"]').click()
        _has_selectivity_label(page, concept, present=False)
        assert _cell_colours(page) == writes_colours  # edits outline cells; their colours stay
        assert page.js_errors == []
    finally:
        kernel.close()


def test_notebook7_renders_the_widget(lab, page, artifacts):
    # same notebook path -> same kernel as the JupyterLab test when it ran first (activations cached)
    _, kernel, _ = open_widget(lab, page, f"notebooks/{NOTEBOOK}")
    try:
        page.locator('.hp-root [data-testid="token-panel"]').wait_for()
        page.locator(".hp-root").screenshot(path=str(artifacts / "widget-notebook7.png"))
        # Notebook 7.6's own bundle throws on start-up here (a settings schema); only other errors count
        assert [e for e in page.js_errors if not _front_end_startup_error(e)] == []
    finally:
        kernel.close()


@pytest.fixture(scope="module")
def quickstart_opening(lab):
    """Writes notebooks/quickstart.ipynb up to the cell that shows the widget (outputs cleared) into
    the server's folder under a name of the caller's: what a reader runs before touching anything.
    One file per front end, so that no page opens a copy another page has run and autosaved."""
    nb = json.loads(QUICKSTART.read_text())
    shown = next(
        i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and "hp.HeadPursuit(" in "".join(c["source"])
    )
    nb["cells"] = nb["cells"][: shown + 1]
    nb["metadata"] = json.loads((Path(__file__).parent / NOTEBOOK).read_text())["metadata"]  # this server's kernel
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)

    def write(name: str) -> str:
        (lab.root / name).write_text(json.dumps(nb))
        return name

    return write


@pytest.mark.parametrize("front_end", ["lab/tree", "notebooks"], ids=["jupyterlab", "notebook7"])
def test_first_render_shows_a_baseline_answer(lab, page, quickstart_opening, front_end):
    """The quickstart's widget, run and left alone, opens on the concept's eliciting prompt and
    shows its baseline answer: no prompt to type, no slider to move."""
    from headpursuit_widget import concepts

    name = quickstart_opening(f"quickstart_opening_{front_end.split('/')[0]}.ipynb")
    goto(lab, page, f"{front_end}/{name}")
    run_all_cells(page)
    wait_for_widget(page)
    kernel = lab.kernel(name)
    try:
        prompt = page.locator('.hp-root [data-testid="prompt-input"]')
        assert prompt.input_value() == concepts.get("colours").eval_prompts[0]
        _wait_text(page, "baseline-text", lambda s: bool((s or "").strip()), timeout=RENDER_TIMEOUT / 1000)
        end = time.monotonic() + 120
        while kernel.eval("w.status") != "ready" or kernel.eval("w.baseline_text") != _text(page, "baseline-text"):
            assert time.monotonic() < end, f"the answer never settled: {kernel.eval('[w.status, w.error]')}"
            time.sleep(0.2)
        answer = kernel.eval("w.baseline_text")
        assert answer.strip() and kernel.eval("[w.prompt, w.strengths, w.error]") == [prompt.input_value(), {}, ""]
        assert [e for e in page.js_errors if not _front_end_startup_error(e)] == []  # Notebook 7.6's own start-up error
    finally:
        kernel.close()


def _select_top_head(page, kernel):
    layer, head = kernel.eval("w.ranking.top(1)[0]")
    page.locator(f'.hp-root [role="gridcell"][data-layer="{layer}"][data-head="{head}"]').click()
    page.locator('.hp-root [data-testid="panel-title"]').get_by_text(f"Layer {layer}, head {head}").wait_for()
    return layer, head


def _arrow_keys_stay_in_the_widget(page, kernel):
    """Arrow keys on the focused strength slider change it; the notebook's active cell, its
    headings and the widget's visibility stay as they were."""
    _wait_text(page, "status", lambda s: s == "ready")
    kernel.eval("w.clear_edits() or 0")
    layer, head = _select_top_head(page, kernel)
    active = page.locator(".jp-Notebook .jp-Cell.jp-mod-active")
    before = active.first.evaluate("c => [...c.parentElement.children].indexOf(c)")
    slider = page.locator('.hp-root [data-testid="head-slider"]')
    focused = "(el) => document.activeElement === el"
    slider.focus()
    seen = [page.evaluate("(document.activeElement.dataset.testid || document.activeElement.className)")]
    for key in ("ArrowRight", "ArrowRight", "ArrowUp", "ArrowLeft", "ArrowLeft", "ArrowLeft", "ArrowLeft", "ArrowDown"):
        page.keyboard.press(key)
        seen.append(f"{key}:{slider.evaluate(focused)}:{slider.input_value()}")
    assert slider.input_value() == "0.5", seen  # 1 + 3 x 0.25 - 5 x 0.25
    assert page.locator('.hp-root [data-testid="head-alpha"]').input_value() == "0.5"
    end = time.monotonic() + 30
    while kernel.eval("w.strengths") != {f"{layer}.{head}": 0.5}:
        assert time.monotonic() < end, f"strengths never became 0.5: {kernel.eval('w.strengths')}"
        time.sleep(0.2)
    assert active.first.evaluate("c => [...c.parentElement.children].indexOf(c)") == before
    assert page.locator(".jp-collapseHeadingButton[data-heading-collapsed='true']").count() == 0  # heading open
    assert page.locator('.hp-root [data-testid="grid"]').is_visible()
    assert page.evaluate("document.activeElement.dataset.testid") == "head-slider"


@pytest.mark.parametrize("front_end", ["lab/tree", "notebooks"], ids=["jupyterlab", "notebook7"])
def test_arrow_keys_on_the_slider_stay_in_the_widget(lab, page, front_end):
    _, kernel, _ = open_widget(lab, page, f"{front_end}/{NOTEBOOK}")
    try:
        _arrow_keys_stay_in_the_widget(page, kernel)
    finally:
        kernel.close()


# WCAG contrast of each element's text colour over the first opaque background behind it
# (semi-transparent colours blended), as [selector, ratio, colour, background].
CONTRAST_JS = """
(selectors) => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const blend = (top, under) => {
    const a = top.length > 3 ? top[3] : 1;
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a));
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length && (c.length < 4 || c[3] > 0)) layers.push(c);
      if (c.length && (c.length < 4 || c[3] === 1)) break;
    }
    let rgb = [255, 255, 255];
    for (const c of layers.reverse()) rgb = blend(c, rgb);
    return rgb;
  };
  const lum = (rgb) => {
    const [r, g, b] = rgb.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const out = [];
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      if (!el.textContent.trim() || !el.getClientRects().length) continue;
      const bg = background(el);
      const fg = blend(parse(getComputedStyle(el).color), bg);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      out.push([sel, (a + 0.05) / (b + 0.05), getComputedStyle(el).color, bg.map(Math.round).join(",")]);
    }
  }
  return out;
}
"""
TEXT = [
    ".hp-root mark.hp-hit",
    '.hp-root [data-testid="baseline-text"]',
    '.hp-root [data-testid="edited-text"]',
    '.hp-root [data-testid="panel-title"]',
    '.hp-root [data-testid="null-line"]',
    '.hp-root [data-testid="atom-token"]',
    ".hp-root .hp-legend",
    '.hp-root [data-testid="edits-list"] li',
]


def _contrast(page) -> list:
    return page.evaluate(CONTRAST_JS, TEXT)


def _set_theme(page, name: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Settings$")).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{name}$")).first.click()
    light = "false" if "Dark" in name else "true"
    page.wait_for_function(f"document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    # and the theme's stylesheet applied: the widget's background is dark (mean channel < 128) or light
    dark = "Dark" in name
    page.wait_for_function(
        "(dark) => { const c = getComputedStyle(document.querySelector('.hp-root')).backgroundColor"
        ".match(/[\\d.]+/g).slice(0, 3).map(Number); return (c[0] + c[1] + c[2]) / 3 < 128 === dark; }",
        arg=dark,
        timeout=30_000,
    )


def test_text_contrast_in_light_and_dark_themes(lab, page, artifacts):
    page.set_viewport_size({"width": 1400, "height": 2400})  # the whole widget on screen for the screenshots
    _, kernel, _ = open_widget(lab, page, f"lab/tree/{NOTEBOOK}")
    docs = artifacts.parent / "docs"
    try:
        # the answers are in before a word of them is marked (status can say "ready" a moment earlier)
        _wait_text(page, "baseline-text", lambda s: bool(re.search(r"[A-Za-z]", s or "")), RENDER_TIMEOUT / 1000)
        _wait_text(page, "status", lambda s: s == "ready")
        _select_top_head(page, kernel)
        # the screenshots show the widget as a reader sees it: only the concept's own words marked
        words = kernel.eval("w.concept_words")
        for theme in ("JupyterLab Light", "JupyterLab Dark"):
            _set_theme(page, theme)
            page.locator(".hp-root").scroll_into_view_if_needed()
            page.locator(".hp-root").screenshot(
                path=str(docs / ("widget-dark.png" if "Dark" in theme else "widget.png"))
            )
        # then mark a word of each answer as a concept word, so highlighted text is measured whatever was generated
        kernel.eval(
            "w.set_trait('concept_words', [*w.concept_words, *(x for t in (w.baseline_text, w.edited_text) "
            "for x in __import__('re').findall('[A-Za-z]+', t)[:1])]) or 0",
        )
        page.locator(".hp-root mark.hp-hit").first.wait_for(timeout=60_000)
        results = {}
        for theme in ("JupyterLab Dark", "JupyterLab Light"):
            _set_theme(page, theme)
            results[theme] = _contrast(page)
        kernel.eval(f"w.set_trait('concept_words', {words!r}) or 0")  # the kernel is shared with later tests
        for theme, rows in results.items():
            assert any(sel == ".hp-root mark.hp-hit" for sel, *_ in rows), f"no highlighted word in {theme}"
            low = [row for row in rows if row[1] < 4.5]
            assert not low, f"{theme}: text below 4.5:1 contrast: {low}"
    finally:
        _set_theme(page, "JupyterLab Light")  # the settings folder is shared by the session's pages
        kernel.close()
