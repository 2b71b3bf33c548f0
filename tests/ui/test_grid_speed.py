"""The built bundle in Chromium, outside Jupyter: an 80 x 64 grid renders and recolours fast."""

from __future__ import annotations

import base64

import pytest

pytestmark = pytest.mark.browser

# A minimal stand-in for anywidget's model: get/set/on/off/save_changes/send.
FAKE_MODEL = """
async (src) => {
  const mod = await import("data:text/javascript;base64," + src);
  const handlers = {};
  const L = 80, H = 64, n = L * H;
  const enc = (vals) => ({ dtype: "float32", shape: [L, H], buffer: new DataView(new Float32Array(vals).buffer) });
  const state = {
    n_layers: L, n_heads: H, scores: enc(Array.from({ length: n }, (_, i) => i / n)),
    significant: { dtype: "bool", shape: [L, H], buffer: new DataView(new Uint8Array(n).fill(1).buffer) },
    score: "specificity", score_names: ["specificity", "evr", "logit_lens"], selected: [], strengths: {},
    head_tokens: [], tokens: [], lens_tokens: [], curve: null, concept: "colours", concept_names: [],
    concept_words: [], prompt: "", max_new_tokens: 32, baseline_text: "", edited_text: "", top_k: 4,
    top_alpha: -1, status: "ready", progress: 0, error: "", head_stats: {}, rule: "whole_word",
    rule_names: ["whole_word"], concept_prob: [], top_note: "", verdict: "", images: [], sample_index: 0,
  };
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
    on: (e, f) => { (handlers[e] = handlers[e] || []).push(f); },
    off: () => {}, save_changes: () => {}, send: () => {},
  };
  const el = document.createElement("div");
  document.body.append(el);
  let t0 = performance.now();
  mod.default.render({ model, el });
  el.getBoundingClientRect();
  await new Promise(requestAnimationFrame);
  const render = performance.now() - t0;
  t0 = performance.now();
  model.set("scores", enc(Array.from({ length: n }, (_, i) => (n - i) / n)));
  el.getBoundingClientRect();
  await new Promise(requestAnimationFrame);
  const recolour = performance.now() - t0;
  const cells = el.querySelectorAll('[role="gridcell"]');
  return { render, recolour, cells: cells.length, first: cells[0].style.backgroundColor };
}
"""


def test_large_grid_renders_and_recolours_fast(browser, bundle):
    page = browser.new_page()
    try:
        page.goto("about:blank")
        result = page.evaluate(FAKE_MODEL, base64.b64encode(bundle.read_bytes()).decode())
    finally:
        page.close()
    print(f"80 x 64 grid: render {result['render']:.0f} ms, recolour {result['recolour']:.0f} ms")
    assert result["cells"] == 80 * 64
    assert result["first"] == "rgb(253, 231, 37)"  # recoloured: head 0 now has the top score
    assert result["render"] < 1500, result
    assert result["recolour"] < 500, result
