"""The headpursuit CLI on a tiny saved model: rank -> file -> generate, and one-line errors."""

import pytest

import headpursuit_widget as hp
from headpursuit_widget.cli import main


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
