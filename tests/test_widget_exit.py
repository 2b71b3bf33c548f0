"""A script that ends while a widget works in the background exits cleanly (issue 18): the interpreter's
exit closes every live widget, whose running job is cancelled and joined, so no thread is left running
torch while the interpreter tears down (that aborted with "terminate called without an active exception",
exit code 134). Each state runs in its own subprocess on a tiny random model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
EXIT_WITHIN = 20.0  # s from the script's last line to the end of the process

SETUP = """
import atexit, sys, threading, time


# registered before the package's own exit hook, so it runs after it: which workers still run then
@atexit.register
def report():
    print("workers at exit:", [t.name for t in threading.enumerate() if t.name == "headpursuit-worker"], flush=True)


sys.path.insert(0, {tests!r})
import torch, transformers as tf
from conftest import tiny_config
from support import tiny_tokenizer
import headpursuit_widget as hp
from headpursuit_widget.widget import answers, session

real_generate = answers.generate

tok = tiny_tokenizer()
torch.manual_seed(0)
module = tf.AutoModelForCausalLM.from_config(tiny_config("llama", len(tok)))
module.generation_config.pad_token_id = tok.pad_token_id
m = hp.wrap(module, tok, name="tiny")


# wraps owner.name so that the returned Event is set once the background job is inside it
def started(owner, name):
    event, real = threading.Event(), getattr(owner, name)

    def wrapped(*args, **kwargs):
        event.set()
        return real(*args, **kwargs)

    setattr(owner, name, wrapped)
    return event


# hp.generate whose tokens take 50 ms each to stream: the answer is still streaming at the exit
def slow_tokens(*args, on_token=None, **kwargs):

    def tick(i, piece):
        time.sleep(0.05)
        on_token(i, piece)

    return real_generate(*args, on_token=tick, **kwargs)
"""

STATES = {
    # the first ranking has started on the worker (Session.rank entered)
    "ranking": """
ranking = started(session.Session, "rank")
w = hp.HeadPursuit(m, concept="colours")
assert ranking.wait(120)
""",
    # a ranking made earlier and a long answer: the baseline is streaming when the script ends
    "generating": """
module.generation_config.eos_token_id = None  # the answer runs to max_new_tokens
answers.generate = slow_tokens
streaming = started(answers, "generate")
r = hp.rank_heads(m, concept="colours", k=2, n_null=2, refine=False, progress=False)
w = hp.HeadPursuit(m, ranking=r, prompt="Name a colour:", max_new_tokens=200, verify=False)
assert streaming.wait(120)
""",
    # no answers to generate: the verdict's check of the top heads has started (hp.verify entered)
    "verifying": """
verifying = started(hp, "verify")
r = hp.rank_heads(m, concept="colours", k=2, n_null=2, refine=False, progress=False)
w = hp.HeadPursuit(m, ranking=r, prompt="")
assert verifying.wait(120)
""",
    # the script of the issue: wait for the verdict, print it, end
    "verdict": """
w = hp.HeadPursuit(m, concept="colours", prompt="")
assert w.wait(timeout=None, verdict=True)
assert w.verdict_label, w.verdict
print("verdict:", w.verdict)
""",
}


def run_script(state: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run the state's script; -> (the process, seconds from its last line to its end)."""
    script = textwrap.dedent(SETUP.format(tests=str(TESTS))) + textwrap.dedent(STATES[state])
    script += 'print("ending at", time.time(), flush=True)\n'
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    ended = time.time()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ending at ")]
    return proc, (ended - float(lines[-1].split()[-1])) if lines else float("inf")


@pytest.mark.subprocess
@pytest.mark.parametrize("state", list(STATES))
def test_script_exits_cleanly(state):
    proc, exit_seconds = run_script(state)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "terminate called" not in proc.stderr
    assert "workers at exit: []" in proc.stdout, proc.stdout[-2000:]  # stopped and joined before teardown
    assert exit_seconds < EXIT_WITHIN, f"{state}: the exit took {exit_seconds:.1f} s"


def test_close_stops_and_joins_the_background_work(make_tiny):
    import headpursuit_widget as hp

    w = hp.HeadPursuit(make_tiny("llama"), concept="colours")
    worker = w._worker
    start = time.monotonic()
    w.close()
    assert time.monotonic() - start < EXIT_WITHIN
    assert worker._thread is None or not worker._thread.is_alive()
    worker.submit("rank", lambda cancel: pytest.fail("a closed widget starts no new work"))
    assert worker.wait(1)
