"""How the guard tunes Python's cyclic garbage collector, in one place.

The guard's hot paths allocate many objects that reference counting frees on
its own (decoded profiles, rows, events); the cyclic collector only walks them
again and again. Each tuning below says where it applies and why.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The collector's first-generation threshold while screening (Python's is 700). A batch
# keeps hundreds of decoded profiles alive while it is decided, and at 700 the collector
# would walk them again and again. Screening makes almost no reference cycles
# (refcounting frees a batch), so collecting rarely costs little memory: at most this
# many container objects wait for the collector.
SCREEN_THRESHOLD = 100_000

_frozen = threading.Event()


def freeze_start_up_heap() -> None:
    """Move the objects start-up built out of the collector's reach, once per process."""
    # The policy, SQLAlchemy, Flask and the modules are some 100,000 objects that live as
    # long as the process, and a full collection that walks them all stalls a worker
    # mid-load (the p99 of /v1/check). Frozen, a full pass walks only what requests left
    # behind. Once per process: one that builds many apps (the tests) pins only the first
    # one's, after collecting its garbage so that none of it is pinned.
    if _frozen.is_set():
        return
    _frozen.set()
    gc.collect()
    gc.freeze()


@contextmanager
def paused() -> Iterator[None]:
    """Pause the collector for the block; resume it after if it ran before."""
    # An ingest batch holds thousands of rows, events and profiles alive at once, all
    # freed by reference counting when it ends. While it runs they survive collection
    # after collection and fill the oldest generation, whose full collections walk the
    # whole heap each time. Paused, the collector sees none of them.
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


@contextmanager
def collecting_rarely() -> Iterator[None]:
    """Raise the collector's first threshold while the block screens; restore it after."""
    before = gc.get_threshold()
    gc.set_threshold(SCREEN_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def collect_rarely_from_now() -> None:
    """Raise the collector's first threshold for the rest of this process (a screen worker)."""
    gc.set_threshold(SCREEN_THRESHOLD, *gc.get_threshold()[1:])
