"""What a long-running fhirhub process (the server's workers, the MLLP listener) sets up for
itself once it has built what it serves.

:func:`tune_collector` tunes Python's cycle collector (tests and one-shot commands keep the
interpreter's defaults):

- ``gc.freeze()``: the modules, FHIR model classes and settings (about 220,000 objects) live
  as long as the process, yet every full collection walked them again: 100 ms each, ten times
  in 230 Bundles, about 5 ms a Bundle.
- A young generation of 20,000 objects instead of 700: validating a Bundle allocates hundreds
  of thousands of short-lived objects, and a collection every 700 of them cost about 1.5 ms a
  Bundle. Memory grows by at most that many unreachable objects between two collections.

:func:`collector_paused` stops the collector while a large structure without cycles is built
(the indicators' persons and events: millions of objects, each freed by its reference count).
Every young collection would walk the structure built so far again; in the 200,000-person
catalogue that was a quarter of the time.

:func:`collector_frozen` leaves the objects alive at its start out of the collector's walks for
the block (such a structure, built before it and kept through it: the patient index rebuild's
features of every record). What the block makes and drops is collected as usual.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_GENERATION = 20_000
OLDER_GENERATIONS = (20, 40)


def tune_collector() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *OLDER_GENERATIONS)


_paused_lock = threading.Lock()
_paused = 0  # callers inside collector_paused, in every thread
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off for the block, and back as it was once the last caller inside
    one (any thread) has left. Unreachable cycles made meanwhile wait for the next collection."""
    global _paused, _was_enabled
    with _paused_lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()


@contextmanager
def collector_frozen() -> Iterator[None]:
    """Every object alive now out of the collector's sight for the block (``gc.freeze``), given
    back after (``gc.unfreeze``) unless something was frozen before (``tune_collector``): that
    stays so. Frozen objects are still freed by their reference counts; only a cycle among them
    waits for the unfreezing."""
    before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if before == 0:
            gc.unfreeze()
