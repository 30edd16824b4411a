"""Process start-up helpers."""

from __future__ import annotations

import gc
import weakref

from services.common.runtime import freeze_startup_objects


class _Node:
    partner: object = None


def test_start_up_cycles_are_collected_and_what_is_alive_is_frozen() -> None:
    gone, other = _Node(), _Node()
    gone.partner, other.partner = other, gone  # a cycle nothing refers to any more
    collected = weakref.ref(gone)
    del gone, other
    kept = _Node()
    try:
        freeze_startup_objects()
        assert collected() is None
        assert gc.get_freeze_count() > 0
        assert not _tracked(kept)
    finally:
        gc.unfreeze()
    assert _tracked(kept)


def _tracked(thing: object) -> bool:
    """Whether a collection can reach `thing` (frozen objects are out of its reach)."""
    return any(o is thing for o in gc.get_objects())
