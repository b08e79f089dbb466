"""collector_paused: the cycle collector is off inside, back as it was after the last caller."""

from __future__ import annotations

import gc
import threading

from fhirhub.runtime import collector_paused


def test_paused_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer caller is still inside
    assert gc.isenabled()


def test_restored_after_an_error() -> None:
    try:
        with collector_paused():
            raise ValueError
    except ValueError:
        pass
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_threads_overlapping() -> None:
    inside = threading.Barrier(2)
    leave = threading.Event()
    seen: list[bool] = []

    def second() -> None:
        with collector_paused():
            inside.wait()
            leave.wait()
        seen.append(gc.isenabled())

    t = threading.Thread(target=second)
    with collector_paused():
        t.start()
        inside.wait()
    assert not gc.isenabled()  # the other thread is still inside
    leave.set()
    t.join()
    assert seen == [True]
    assert gc.isenabled()
