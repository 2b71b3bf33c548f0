"""The nnsight backend gives what the hf backend gives: capture, ranking, edited logits and tokens.

Every comparison runs in-process (remote=False) and through nnsight's local simulation of a remote
request (remote="local": the trace is serialised and run with this package hidden, as on NDIF).
Edits are checked against the weights edited directly (head h's block of o_proj columns scaled).
Ranking on nnsight runs from SOMP statistics computed inside the traces (engine/activations/statistics.py) and is
checked against the hf backend's ranking from captured head writes.
"""

from __future__ import annotations

import copy
import http.server
import json
import socket
import sys
import threading

import numpy as np
import pytest
import torch

import headpursuit_widget as hp
from headpursuit_widget.engine.activations.inputs import encode
from headpursuit_widget.engine.concepts.null_words import null_dictionaries
from headpursuit_widget.engine.concepts.resolve import resolve_concept
from headpursuit_widget.engine.models import nnsight_connect, nnsight_model
from headpursuit_widget.engine.models.adapters import norm_gain

nnsight = pytest.importorskip("nnsight")

MODES = [False, "local"]
PROMPTS = ["The sky at dusk is", "Red roses and green grass", "A yellow sun over blue water", "Snow is white"]
EDITS = {(1, 2): -1.0, (0, 1): 0.0, (1, 0): 2.5}


@pytest.fixture(params=MODES, ids=["in-process", "simulated-remote"])
def mode(request):
    return request.param


def as_nnsight(hm, mode):
    return hp.wrap(hm.module, hm.tokenizer, name=hm.name, backend="nnsight", remote=mode)


class baked:
    """Within the block, hm's o_proj weights themselves carry the edits (the independent reference)."""

    def __init__(self, hm, edits):
        self.hm, self.edits, self.saved = hm, edits, {}

    def __enter__(self):
        a = self.hm.adapter
        for (layer, head), alpha in self.edits.items():
            w = a.out_projs[layer].weight
            self.saved.setdefault(layer, w.detach().clone())
            with torch.no_grad():
                w[:, head * a.head_dim : (head + 1) * a.head_dim] *= alpha
        return self.hm

    def __exit__(self, *exc):
        with torch.no_grad():
            for layer, w in self.saved.items():
                self.hm.adapter.out_projs[layer].weight.copy_(w)


def step_logits(hm, prompts, edits, steps):
    """Greedy generation with the KV cache: (new ids, per-step logits (steps, batch, vocab))."""
    batch = encode(hm, prompts, positions="all", padding_side="left")
    with hp.edit_heads(hm, edits):
        out = hm.generate(
            **batch.inputs,
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=hm.tokenizer.pad_token_id,
        )
    return out.sequences[:, batch.inputs["input_ids"].shape[1] :], torch.stack(out.logits)


def float64_writes(hf, prompts, positions):
    """Every head write in float64, (n_layers, n_heads, n, d_model), from the mean z the trace reads, made
    as capture makes them but without rounding to float32: the slow reference for the statistics."""
    a = hf.adapter
    batch = encode(hf, prompts, positions=positions)
    z = as_nnsight(hf, False).mean_z(batch.inputs, batch.select.float() / batch.select.sum(1, keepdim=True)).double()
    writes = []
    for layer in range(a.n_layers):
        zl = z[layer].reshape(len(prompts), a.n_heads, a.head_dim)
        w = torch.einsum("nhk,hkd->hnd", zl, a.head_weights(layer).double())
        gain = a.post_norms[layer]
        writes.append(w if gain is None else w * norm_gain(gain, a.d_model).double())
    return torch.stack(writes)


def check_ranking(hf, nn, prompts, concept, **options):
    """nn (ranking from in-trace statistics) ranks as hf (from captured head writes); returns hf's ranking.

    Against the float64 reference (SOMP on float64 writes): every score within 1e-5, z within 1e-5 of
    max(1, |z|). Against hf, whose writes are float32: every score but z. z = (evr - null mean) / null
    sd magnifies rounding in EVR (1e-8 for hf's writes, 1e-10 for the float32 projections that cross
    the wire) by 1/sd, which reaches 1e4 on SmolLM2 heads whose writes barely vary (z near 140)."""
    kw = dict(n_null=4, k=8, progress=False, **options)
    r_hf = hp.rank_heads(hf, prompts, concept, **{**kw, "refine": False})  # hf's selection: tests/test_selectivity.py
    r_nn = hp.rank_heads(nn, prompts, concept, **kw)
    acts = float64_writes(hf, prompts, options.get("positions", "prompt"))
    r_ref = hp.rank_heads(hf, prompts, concept, activations=acts, **{**kw, "refine": False})
    for name in r_hf.score_names:
        scale = np.maximum(1.0, abs(r_ref.score_table[name])) if name == "z" else 1.0
        assert (abs(r_nn.score_table[name] - r_ref.score_table[name]) < 1e-5 * scale).all(), name
        if name != "z":
            assert abs(r_nn.score_table[name] - r_hf.score_table[name]).max() < 1e-5, name
    assert abs(r_nn.null_evr - r_hf.null_evr).max() < 1e-5 and abs(r_nn.lens_vals - r_hf.lens_vals).max() < 1e-4
    assert abs(r_nn.curves - r_hf.curves).max() < 1e-5
    # the selection differs by design: its gradient screen needs a local model (engine/judging/selection.py), so on
    # the nnsight backend the candidates are SOMP's alone; the scores' order must agree
    assert r_nn.unrefined().top(5) == r_hf.unrefined().top(5)
    selected = r_nn.options.get("selection")
    assert selected is None or set(map(tuple, selected["candidates"])) <= set(
        r_nn.unrefined().top(len(selected["candidates"]))
    )
    assert (r_nn.atoms == r_hf.atoms).all() and (r_nn.lens_ids == r_hf.lens_ids).all()
    assert (r_nn.atoms == r_ref.atoms).all()
    return r_hf


def check_capture_and_ranking(hf, nn, prompts, concept):
    acts_hf = hp.capture(hf, prompts, progress=False)
    acts_nn = hp.capture(nn, prompts, progress=False)
    assert acts_nn.shape == acts_hf.shape and acts_hf.abs().max() > 0
    assert (acts_nn - acts_hf).abs().max() < 1e-5
    return check_ranking(hf, nn, prompts, concept)


def statistics_rows(hm, concept, n_null):
    """(distinct rows, dictionary size) of a ranking's concept + null dictionaries."""
    con, _ = resolve_concept(concept, hm.tokenizer)
    draws = null_dictionaries(hm.tokenizer, con, n_null=n_null)
    return len(set(con.token_ids).union(*map(set, draws))), len(con.token_ids)


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen3"])
def test_capture_and_ranking_equal_hf(make_tiny, family, mode):
    hf = make_tiny(family)
    nn = as_nnsight(hf, mode)
    check_capture_and_ranking(hf, nn, PROMPTS, "colours")
    mean_z = len(PROMPTS) * nn.n_layers * nn.n_heads * nn.head_dim * 4  # the capture
    n_rows, m = statistics_rows(nn, "colours", 4)
    expected = nnsight_model.statistics_bytes(
        nn.n_layers, nn.n_heads, nn.head_dim, n_rows=n_rows, n_prompts=4, n_batches=1, dictionaries=(5, m), n_lens=10
    )
    assert nn.bytes_returned == mean_z + expected["total"]  # nothing else came back from the ranking's traces


def test_ranking_statistics_agree_with_writes_over_batches_and_options(make_tiny, mode):
    """Several batches (the running sums), normalize/fold_norm off and on, chosen positions: same as hf."""
    hf = make_tiny("qwen3")
    nn = as_nnsight(hf, mode)
    check_ranking(hf, nn, PROMPTS + ["Purple grapes", "An orange cat"], "colours", batch_size=4, refine=False)
    check_ranking(
        hf, nn, PROMPTS, ["red", "green", "blue"], normalize=False, fold_norm=True, positions="all", batch_size=3
    )


def test_model_with_weights_on_the_server_ranks_like_hf(make_tiny):
    """A client whose copy of the model is on the meta device (as remote=True builds it) ranks from the
    statistics its (simulated) server computes: no local W_O or unembedding is read."""
    hf = make_tiny("llama")
    nn = as_nnsight(hf, "local")
    client = nnsight_model.NNsightHeadModel(
        module=copy.deepcopy(hf.module).to("meta"), tokenizer=hf.tokenizer, name=hf.name, lm=nn.lm, remote="local"
    )
    assert not client.weights_here
    check_ranking(hf, client, PROMPTS, "colours")
    with pytest.raises(hp.HeadPursuitError, match="keeps its weights on the server"):
        hp.capture(client, PROMPTS, progress=False)
    with pytest.raises(hp.HeadPursuitError, match="fold_norm=False"):
        hp.rank_heads(client, PROMPTS, "colours", n_null=2, fold_norm=True, progress=False)


def test_capture_under_edits_equals_baked_weights(make_tiny, mode):
    hf = make_tiny("llama")
    nn = as_nnsight(hf, mode)
    with hp.edit_heads(nn, EDITS):
        edited = hp.capture(nn, PROMPTS, progress=False)
    with baked(hf, EDITS):
        reference = hp.capture(hf, PROMPTS, progress=False)
    assert (edited - reference).abs().max() < 1e-5
    plain = hp.capture(nn, PROMPTS, progress=False)
    assert (edited[0, 1] == 0).all() and not torch.allclose(edited[1], plain[1])


def test_edited_logits_equal_baked_weights_over_cached_steps(make_tiny, mode):
    hf = make_tiny("llama")
    nn = as_nnsight(hf, mode)
    ids, logits = step_logits(nn, PROMPTS, EDITS, steps=5)
    _, plain_logits = step_logits(nn, PROMPTS, None, steps=5)
    with baked(hf, EDITS):
        ref_ids, ref_logits = step_logits(hf, PROMPTS, None, steps=5)
    assert logits.shape == ref_logits.shape == (5, len(PROMPTS), ref_logits.shape[-1])
    assert (logits - ref_logits).abs().max() < 1e-5
    assert (plain_logits - ref_logits).abs().max() > 1e-2  # the edits change every run's logits
    assert torch.equal(ids, ref_ids)


def test_forward_under_nested_edits_equals_baked_weights(make_tiny, mode):
    hf = make_tiny("llama")
    nn = as_nnsight(hf, mode)
    batch = encode(nn, PROMPTS, positions="all")
    with hp.edit_heads(nn, {(1, 2): -1.0}), hp.edit_heads(nn, {(1, 2): 2.0, (0, 3): 0.5}):
        got = nn.forward(**batch.inputs, use_cache=False).logits
    with baked(hf, {(1, 2): -2.0, (0, 3): 0.5}):
        reference = hf.forward(**batch.inputs, use_cache=False).logits
    assert (got - reference).abs().max() < 1e-5


def test_greedy_generate_with_edits_gives_the_baked_tokens(make_tiny, mode):
    hf = make_tiny("llama")
    nn = as_nnsight(hf, mode)
    pieces = []
    got = hp.generate(nn, PROMPTS, edits=EDITS, max_new_tokens=6, on_token=lambda i, p: pieces.append((i, p)))
    with baked(hf, EDITS):
        reference = hp.generate(hf, PROMPTS, max_new_tokens=6)
    assert got == reference and any(got)
    assert ["".join(p for i, p in pieces if i == row) for row in range(len(PROMPTS))] == got


def test_experiments_run_on_nnsight(make_tiny, mode):
    hf = make_tiny("llama")
    nn = as_nnsight(hf, mode)
    probs = hp.experiments.next_token_probs(nn, PROMPTS, edits=EDITS)
    with baked(hf, EDITS):
        reference = hp.experiments.next_token_probs(hf, PROMPTS)
    assert (probs - reference).abs().max() < 1e-6


def test_simulated_remote_serialises_every_trace(make_tiny, monkeypatch):
    """remote="local" really goes through nnsight's serialise/deserialise path (with this package hidden)."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    calls = []
    real = LocalSimulationBackend.__call__
    monkeypatch.setattr(LocalSimulationBackend, "__call__", lambda self, tracer: calls.append(1) or real(self, tracer))
    nn = as_nnsight(make_tiny("llama"), "local")
    hp.capture(nn, PROMPTS[:2], batch_size=1, progress=False)
    hp.generate(nn, PROMPTS[:1], edits=EDITS, max_new_tokens=2)
    assert len(calls) == 3
    assert "headpursuit_widget" in sys.modules  # restored after each simulated request


def test_widget_on_nnsight_model(make_tiny):
    """Grid click shows the head's tokens; a slider move regenerates with the edit (simulated remote)."""
    nn = as_nnsight(make_tiny("llama"), "local")
    w = hp.HeadPursuit(nn, concept="colours", max_new_tokens=4, debounce=0.01)
    try:
        assert w.wait(120) and w.status == "ready", w.error
        r = hp.rank_heads(nn, None, "colours", progress=False)
        layer, head = r.top(1)[0]
        w.selected = [layer, head]
        assert w.tokens == [[t, g] for t, g in r.tokens(layer, head, 10)] and w.tokens
        w.prompt = PROMPTS[0]
        assert w.wait(120)
        w.strengths = {f"{layer}.{head}": -1}
        assert w.wait(120) and w.status == "ready", w.error
        with baked(nn, {(layer, head): -1.0}):
            expected = hp.generate(make_tiny("llama"), [PROMPTS[0]], max_new_tokens=4)[0]
        assert w.edited_text == expected
    finally:
        w.close()


def test_missing_nnsight_says_how_to_install(make_tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "nnsight", None)  # import nnsight raises ImportError
    with pytest.raises(hp.HeadPursuitError, match=r"pip install 'headpursuit-widget\[nnsight\]'"):
        as_nnsight(make_tiny("llama"), False)
    with pytest.raises(hp.HeadPursuitError, match="headpursuit-widget"):
        hp.load_model("smollm2", backend="nnsight")


def test_remote_without_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv(nnsight_connect.API_KEY_ENV, raising=False)
    with pytest.raises(hp.HeadPursuitError, match="NDIF_API_KEY"):
        hp.load_model("smollm2", backend="nnsight", remote=True)


def test_remote_model_keeps_its_weights_on_the_server(real_model_dir, monkeypatch):
    """remote=True builds the local copy on the meta device: the layout is there, ranking says why it cannot run."""
    monkeypatch.setenv(nnsight_connect.API_KEY_ENV, "test-key")
    m = hp.load_model(real_model_dir, backend="nnsight", remote=True)
    assert (m.n_layers, m.n_heads, m.head_dim, m.d_model) == (30, 9, 64, 576)
    assert not m.weights_here and m.api_key == "test-key" and m.remote is True
    assert len(m.fingerprint) == 16 and m.device == torch.device("cpu")
    with pytest.raises(hp.HeadPursuitError, match="keeps its weights on the server"):
        hp.capture(m, PROMPTS, progress=False)


def test_unreachable_server_says_what_to_set():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(hp.HeadPursuitError, match=rf"no nnsight server answers at http://127.0.0.1:{port}.*url="):
        hp.load_model("smollm2", backend="nnsight", url=f"http://127.0.0.1:{port}")
    with pytest.raises(hp.HeadPursuitError, match="http:// or https://"):
        hp.load_model("smollm2", backend="nnsight", url="localhost:8000")


def test_nnsight_serve_url_says_it_speaks_another_protocol():
    """A server publishing nnsight-serve's trace route (the FastAPI app of nnsight.modeling.vllm.serve,
    which needs vllm and fastapi, so a stand-in publishes its /openapi.json here) is named as such."""
    paths = {"paths": {"/health": {}, nnsight_connect.SERVE_ROUTE: {}}}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(paths if self.path == "/openapi.json" else {"status": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(hp.HeadPursuitError, match=r"is an nnsight-serve \(vLLM\) server.*NDIF's request protocol"):
            hp.load_model("smollm2", backend="nnsight", url=url)
        paths["paths"] = {"/health": {}}  # any other server passes the check
        nnsight_connect._check_reachable(url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_bad_backend_options_are_rejected(make_tiny):
    tiny = make_tiny("llama")
    with pytest.raises(hp.HeadPursuitError, match="unknown backend 'vllm'; accepted: hf, nnsight"):
        hp.load_model("smollm2", backend="vllm")
    with pytest.raises(hp.HeadPursuitError, match="only apply with backend='nnsight'"):
        hp.wrap(tiny.module, tiny.tokenizer, remote="local")
    with pytest.raises(hp.HeadPursuitError, match="remote must be"):
        as_nnsight(tiny, "ndif")


@pytest.mark.slow
def test_smollm2_nnsight_matches_hf(smollm2):
    nn = as_nnsight(smollm2, "local")
    ranking = check_capture_and_ranking(smollm2, nn, PROMPTS, "colours")
    edits = dict.fromkeys(ranking.top(16), -1.0)
    ids, logits = step_logits(nn, PROMPTS[:2], edits, steps=4)
    with baked(smollm2, edits):
        ref_ids, ref_logits = step_logits(smollm2, PROMPTS[:2], None, steps=4)
        reference = hp.generate(smollm2, PROMPTS[:2], max_new_tokens=8)
    assert (logits - ref_logits).abs().max() < 1e-5 and torch.equal(ids, ref_ids)
    assert hp.generate(nn, PROMPTS[:2], edits=edits, max_new_tokens=8) == reference
