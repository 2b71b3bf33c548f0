"""Generation: streaming pieces add up to the answer, cancellation stops early, bad input is refused."""

import threading

import pytest

import headpursuit_widget as hp


def test_streamed_pieces_rebuild_each_answer(tiny):
    pieces = {0: [], 1: []}
    texts = hp.generate(
        tiny,
        ["Hello there", "Tell me a story about"],
        max_new_tokens=7,
        chat=False,
        on_token=lambda i, p: pieces[i].append(p),
    )
    assert ["".join(pieces[i]) for i in (0, 1)] == texts
    assert all(len(t) > 0 for t in texts)


def test_cancel_stops_generation_early(tiny):
    cancel = threading.Event()
    seen = []

    def on_token(i, piece):
        seen.append(piece)
        if len(seen) == 2:
            cancel.set()

    text = hp.generate(tiny, ["Once upon a time"], max_new_tokens=40, chat=False, on_token=on_token, cancel=cancel)[0]
    full = hp.generate(tiny, ["Once upon a time"], max_new_tokens=40, chat=False)[0]
    assert len(seen) <= 3 and full.startswith(text) and len(text) < len(full)


def test_chat_template_is_used_when_asked(smollm2):
    plain = hp.generate(smollm2, ["What is 2+2?"], max_new_tokens=4, chat=False)
    chat = hp.generate(smollm2, ["What is 2+2?"], max_new_tokens=4, chat=True)
    assert plain != chat


def test_bad_generation_input(tiny):
    with pytest.raises(hp.HeadPursuitError, match="max_new_tokens"):
        hp.generate(tiny, ["x"], max_new_tokens=0)
    with pytest.raises(hp.HeadPursuitError, match="prompts is empty"):
        hp.generate(tiny, [])
    with pytest.raises(hp.HeadPursuitError, match="finite number"):
        hp.generate(tiny, ["x"], edits={(0, 0): float("nan")})
    with pytest.raises(hp.HeadPursuitError, match="from 1 to 4096"):
        hp.generate(tiny, ["x"], max_new_tokens=4097, chat=False)
    with pytest.raises(hp.HeadPursuitError, match="no room"):  # the tiny model's context is 256 tokens
        hp.generate(tiny, ["x"], max_new_tokens=1000, chat=False)
    with pytest.raises(hp.HeadPursuitError, match="1 images for 2 prompts"):
        hp.generate(tiny, ["x", "y"], images=[None])
    with pytest.warns(UserWarning, match="truncated"):
        hp.generate(tiny, ["word " * 300], max_new_tokens=4, chat=False)
