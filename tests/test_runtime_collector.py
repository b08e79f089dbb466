"""collector_paused: the cycle collector is off inside, back as it was after the last caller.
collector_frozen: what is alive at its start is frozen inside, given back after unless something
was frozen before."""

from __future__ import annotations

import gc
import threading

from fhirhub.runtime import collector_frozen, collector_paused


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


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_frozen_inside_and_given_back_after() -> None:
    gc.unfreeze()
    kept = _Node()
    with collector_frozen():
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # out of the collector's sight
        made = _Node()  # made inside: collected as usual
        assert any(o is made for o in gc.get_objects())
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())


def test_frozen_before_stays_frozen() -> None:
    gc.unfreeze()
    gc.freeze()  # as tune_collector leaves a server's worker
    try:
        with collector_frozen():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_given_back_after_an_error() -> None:
    gc.unfreeze()
    try:
        with collector_frozen():
            raise ValueError
    except ValueError:
        pass
    assert gc.get_freeze_count() == 0
