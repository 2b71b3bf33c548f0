"""The widget's background worker: latest request of a kind wins, one Cancel says why."""

from __future__ import annotations

import threading

from headpursuit_widget.widget.worker import CLOSED, STOPPED, SUPERSEDED, Cancel, Worker


def test_cancel_keeps_the_first_reason():
    c = Cancel(seq=7)
    assert not c.is_set() and c.reason is None and c.seq == 7
    c.set(STOPPED)
    c.set(CLOSED)
    assert c.is_set() and c.reason == STOPPED


def test_a_new_request_supersedes_the_running_one_and_stop_names_itself():
    errors, ran, started = [], [], threading.Event()
    worker = Worker(errors.append)

    def held(cancel):
        started.set()
        assert cancel.wait(30)
        ran.append(("held", cancel.reason, cancel.seq))

    worker.submit("generate", held)
    assert started.wait(10)
    worker.submit("generate", lambda cancel: ran.append(("next", cancel.reason, cancel.seq)))
    assert worker.wait(10)
    assert ran == [("held", SUPERSEDED, 1), ("next", None, 2)] and errors == []

    started.clear()
    worker.submit("generate", held)
    assert started.wait(10)
    assert worker.cancel("generate", STOPPED)
    assert worker.wait(10)
    assert ran[-1] == ("held", STOPPED, 3)
    assert not worker.cancel("generate", STOPPED)  # nothing running


def test_errors_go_to_on_error_and_the_worker_goes_on():
    errors, ran = [], []
    worker = Worker(errors.append)

    def broken(cancel):
        raise RuntimeError("boom")

    worker.submit("rank", broken)
    worker.submit("generate", lambda cancel: ran.append(cancel.seq))
    assert worker.wait(10)
    assert [str(e) for e in errors] == ["boom"] and ran == [2]  # "rank" runs first
