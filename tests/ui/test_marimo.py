"""notebooks/marimo_demo.py in real Chromium: `marimo run` serves it on 127.0.0.1 with the real
default model; the grid renders through mo.ui.anywidget, the first answer shows, a click shows tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.marimo, pytest.mark.slow]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "marimo.png"
RENDER_TIMEOUT = 300_000  # ms: model load + capture + ranking on a busy 2-core machine


def test_marimo_renders_the_grid_and_a_click_shows_tokens(marimo_url, page):
    from headpursuit_widget import concepts

    page.goto(marimo_url)
    root = page.locator(".hp-root")
    cells = root.locator('[role="gridcell"]')
    expect(cells).to_have_count(30 * 9, timeout=RENDER_TIMEOUT)  # SmolLM2: 30 layers x 9 heads
    expect(root.locator('[data-testid="status"]')).to_have_text("ready", timeout=RENDER_TIMEOUT)
    # the first render answers the opening prompt (a held-out colours prompt) with no user action
    expect(root.locator('[data-testid="prompt-input"]')).to_have_value(concepts.get("colours").eval_prompts[0])
    expect(root.locator('[data-testid="baseline-text"]')).not_to_have_text("", timeout=RENDER_TIMEOUT)

    root.locator('[role="gridcell"][data-layer="29"][data-head="7"]').click()
    panel = root.locator('[data-testid="token-panel"]')
    expect(panel.get_by_text("Layer 29, head 7", exact=True)).to_be_visible(timeout=30_000)
    atoms = panel.locator('[data-testid="atom-token"]')
    expect(atoms.first).to_be_visible(timeout=30_000)
    words = {w.lower() for w in concepts.get("colours").words}
    shown = [t.strip().lower() for t in atoms.all_text_contents()]
    assert shown and set(shown) <= words  # atoms come from the concept's own words
    SCREENSHOT.parent.mkdir(exist_ok=True)
    root.screenshot(path=str(SCREENSHOT))
    assert page.js_errors == []
