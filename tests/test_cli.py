"""The headpursuit CLI on a tiny saved model: rank -> file -> generate, one-line errors, and the demo's
lists (labelled by their order) and held-out check (the numbers verify measured, the verdict as it is)."""

import dataclasses
import re

import numpy as np
import pytest
import transformers as tf

import headpursuit_widget as hp
from headpursuit_widget import cli
from headpursuit_widget.cli import main
from headpursuit_widget.engine.concepts import null_words, pool_cache


def test_fetch_keeps_the_null_word_pool(tmp_path, model_dir, monkeypatch, capsys):
    """`headpursuit fetch` leaves the null's word pool on disk, so a first ranking does not build it; what it
    kept equals a pool built from the vocabulary with nothing kept."""
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    assert main(["fetch", str(model_dir)]) == 0 and "ready:" in capsys.readouterr().out
    tokenizer = tf.AutoTokenizer.from_pretrained(model_dir)
    path = pool_cache.entry_path(tokenizer)
    assert path is not None and path.is_file()
    kept_words, kept_ids = pool_cache.load(path)
    monkeypatch.setattr(pool_cache, "entry_path", lambda tokenizer: None)
    words, ids = null_words.word_pool(tf.AutoTokenizer.from_pretrained(model_dir))
    assert kept_words == words and np.array_equal(kept_ids, ids) and len(words) > 10


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, make_tiny):
    folder = tmp_path_factory.mktemp("tiny-llama")
    m = make_tiny("llama")
    m.module.save_pretrained(folder)
    m.tokenizer.save_pretrained(folder)
    return folder


def test_rank_then_generate(tmp_path, model_dir, capsys):
    words = tmp_path / "words.txt"
    words.write_text("# colours\nred\nblue\ngreen\nyellow\n")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The car is\nHer dress was\nThe sky looks\n")
    out = tmp_path / "r.npz"
    assert (
        main(
            [
                "rank",
                "--model",
                str(model_dir),
                "--words",
                str(words),
                "--prompts",
                str(prompts),
                "--k",
                "3",
                "--n-null",
                "2",
                "--top",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    ranking = hp.HeadRanking.load(out)
    layer, head = ranking.top(1)[0]
    assert f"1. L{layer}H{head}" in printed and ranking.concept["words"] == ["red", "blue", "green", "yellow"]
    assert "order: ranking.top(): the selective set first" in printed  # the list says which order it uses
    assert (
        main(
            [
                "generate",
                "--ranking",
                str(out),
                "--model",
                str(model_dir),
                "--top-k",
                "2",
                "--prompt",
                "Hello",
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "--- baseline:" in printed and "--- edited (2 heads x -1):" in printed


def test_errors_are_one_line(tmp_path, model_dir, capsys):
    assert main(["rank", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("headpursuit: error: unknown model 'no-such-model'") and "Traceback" not in err
    assert main(["rank", "--model", str(model_dir), "--words", str(tmp_path / "missing.txt")]) == 2
    assert "word file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    assert main(["generate", "--ranking", str(bad), "--model", str(model_dir), "--prompt", "x"]) == 2
    assert "not a head ranking file" in capsys.readouterr().err


_RANKED: dict = {}


def _demo(monkeypatch, capsys, model_dir, *extra, recommended=None):
    """Run `headpursuit demo` on the tiny model; returns (printed, the ranking it made, its Verification).
    recommended: a function of the ranking giving the selective set to put in it (default: the selection's)."""
    seen = {}

    def rank(*args, **kwargs):
        if "ranking" not in _RANKED:  # one ranking (with its selection) for every demo run of this module
            _RANKED["ranking"] = hp.rank_heads(*args, **{**kwargs, "n_null": 2, "progress": False})
        r = _RANKED["ranking"]
        if recommended is not None:
            r = dataclasses.replace(r, recommended=tuple(recommended(r)))
        seen["ranking"] = r
        return r

    def check(*args, **kwargs):
        seen["verification"] = v = hp.verify(*args, **kwargs)
        return v

    monkeypatch.setattr(cli, "rank_heads", rank)
    monkeypatch.setattr(cli, "verify", check)
    assert main(["demo", "--model", str(model_dir), "--max-new-tokens", "3", *extra]) == 0
    return capsys.readouterr().out, seen["ranking"], seen["verification"]


def _rows(printed: str, header: str) -> list[str]:
    """The indented lines right after the line starting with `header`."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        rows.append(line.strip())
    return rows


def test_demo_labels_its_lists_and_reports_the_verdict_it_measured(monkeypatch, capsys, model_dir):
    printed, r, v = _demo(monkeypatch, capsys, model_dir)
    # the SOMP list is what its label says: the 6 highest z, sorted by z
    rows = _rows(printed, "what the heads write: SOMP top 6 by z (sorted by z")
    z = r.score_table["z"]
    listed = [tuple(int(x) for x in re.match(r"L(\d+)H(\d+)", row).groups()) for row in rows]
    assert len(listed) == 6 and [z[h] for h in listed] == sorted((z[h] for h in listed), reverse=True)
    assert min(z[h] for h in listed) >= np.sort(z.ravel())[-6]
    # the selective set (or its absence) and each candidate's own flip, from the selection's record
    details = r.options["selection"]
    single = {tuple(h): s for h, s in zip(details["candidates"], details["single"])}
    if r.recommended:
        assert "in the order chosen" in printed
        for i, head in enumerate(r.recommended, 1):
            assert f"{i}. L{head[0]}H{head[1]} alone: colours {single[head]['mass_ratio']:.2f}x" in printed
    else:
        assert "selective set: none was found" in printed
        assert f"editing ranking.top(4): {', '.join(f'L{l}H{h}' for l, h in r.top(4))}" in printed
    assert "other candidates (most selective first" in printed
    # the held-out check prints exactly what verify measured, next to random heads, and its verdict as it is
    assert v.heads == sorted(r.top(len(r.recommended) or 4)) and v.alpha == -1.0
    assert re.search(rf"colours mass / unedited +{v.mass_ratio:.2f}x +{v.random_median:.2f}x", printed)
    for name, ratio in v.other_ratios.items():
        assert re.search(rf"{name} mass / unedited +{ratio:.2f}x", printed)
    assert re.search(rf"control drop \(nats\) +{v.control_drop:+.2f} +{v.random_control_drop:+.2f}", printed)
    assert f"verdict: {v.verdict}  (" in printed
    edited = ", ".join(f"L{l}H{h}" for l, h in v.heads)
    assert "--- baseline:" in printed and f"--- edited: {edited} x -1:" in printed
    assert "top 8 heads by z" not in printed and "top 4 heads x -1" not in printed


def test_demo_shows_a_selective_set_in_the_order_chosen(monkeypatch, capsys, model_dir):
    """With a recommended set (here set by hand on the tiny model), the demo verifies that set."""

    def two(r):  # two measured candidates, the second first
        return [tuple(h) for h in r.options["selection"]["candidates"][:2]][::-1]

    printed, r, v = _demo(monkeypatch, capsys, model_dir, recommended=two)
    pair = two(r)
    assert "selective set (2 heads, in the order chosen)" in printed
    lines = _rows(printed, "selective set (2 heads")
    assert lines[0].startswith(f"1. L{pair[0][0]}H{pair[0][1]} alone:")
    assert any(line.startswith(f"2. L{pair[1][0]}H{pair[1][1]} alone:") for line in lines)
    assert v.heads == sorted(pair) and "editing ranking.top" not in printed
    printed, r, v = _demo(monkeypatch, capsys, model_dir, "--top-k", "3", recommended=two)
    assert v.k == 3 and "editing ranking.top(3)" in printed
